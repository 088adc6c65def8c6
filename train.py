"""Train a slot tagger.

    python train.py                                   # BiLSTM on the bundled corpus
    python train.py data=atis model.cell=gru          # ATIS (downloaded on first use)
    python train.py -m model.cell=rnn,gru,lstm seed=0,1,2   # a sweep

Writes config.yaml, results.json, checkpoints/ and TensorBoard events into the run folder
(``hydra.run.dir``) and prints dev/test slot F1. Same as the ``slotfill-train`` command.
"""

from slotfill.cli import train_main

if __name__ == "__main__":
    train_main()
