"""Score a checkpoint, or tag new sentences with it.

    python evaluate.py ckpt_path=RUN/checkpoints/best.pt               # its test split
    python evaluate.py ckpt_path=RUN/checkpoints/best.pt data=atis split=dev
    python evaluate.py 'ckpt_path=[RUN0,RUN1,RUN2]'                     # three runs as one ensemble
    python evaluate.py ckpt_path=... file=path/to/test.conll data=conll data.train=... (format from data)
    python evaluate.py ckpt_path=... text="show flights from boston to denver"
    echo "flights to denver" | python evaluate.py ckpt_path=... text=-

Prints seqeval's per-slot report and writes predictions and results.json into the run
folder. Same as the ``slotfill-eval`` command.
"""

from slotfill.cli import eval_main

if __name__ == "__main__":
    eval_main()
