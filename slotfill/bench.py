"""``python -m slotfill.bench``: slotfill's training and inference speed against a plain baseline.

Both sides run on the same machine in the same invocation, each in its own worker process
(``python -m slotfill.bench --worker JOB.json``) so that their peak resident memory
(``ru_maxrss``) does not mix. Each worker runs, in this order: the main measurement (one
warm-up epoch, then ``--epochs`` measured epochs; inference on the test split), records its
peak memory, then the scaling runs and the ``--to-accuracy`` runs in the same (warm) process.
The two workers take turns (:class:`Baton`): one epoch or one measurement of one side, then
the other's, so that the two are never timed at once and a slow minute of the machine falls
on both sides' figures rather than on one side's.

slotfill is measured through the product itself: ``slotfill.training.train`` with a config
composed from ``conf/`` (per-epoch training seconds from ``results["history"]``, which
exclude dev evaluation) and ``SlotTagger.predict`` for inference; then the same checkpoint
exported by ``slotfill.export`` and served one sentence per call by the export's own runner
in onnxruntime (``--no-onnx`` skips it). The baseline is :mod:`slotfill.bench_baseline`.
A side's peak memory covers everything its main measurement does; for slotfill that
includes what ``train`` does after its epochs (scoring dev and test with both decodings at
``trainer.eval_batch_size``), but not the export.

Examples::

    python -m slotfill.bench                                    # data/airline, default BiLSTM
    python -m slotfill.bench --data /work/shared/datasets/atis --epochs 3
    SLOTFILL_DATA=../shared/datasets python -m slotfill.bench --data atis --json
    python -m slotfill.bench --model "model.hidden_size=100 model.cell=gru" --no-scaling
    python -m slotfill.bench --to-accuracy 30                   # + test F1 after every epoch
    python -m slotfill.bench --to-accuracy 25 --accuracy-seeds 0,1,2,3,4 --no-scaling
    python -m slotfill.bench --to-accuracy 25 --accuracy-recipe "trainer.lr=0.003 scheduler=plateau"

``--accuracy-recipe`` changes only slotfill's to-accuracy runs: the main measurement stays like
for like (``--model`` values are mirrored onto the baseline), and the baseline keeps its plain
settings, so the to-accuracy figures compare slotfill trained as its user would train it for
speed with the loop written the plain way.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from slotfill.data.example import Example
from slotfill.machine import processor

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
FACTORS = (1, 4, 16)
LENGTHS = (10, 40, 160)
QUICK_FACTORS = (1, 2)
SYNTHETIC_TOKENS = 16_384  # tokens per synthetic fixed-length corpus (about: whole batches)
INFERENCE_REPEATS = 10  # batch-256 passes over the test split; their median is reported
QUICK_SYNTHETIC_TOKENS = 640
ACCURACY_EPOCHS = 30  # --to-accuracy without a number
# slotfill's to-accuracy run goes on to this many times the baseline's epochs: the target is
# a wall time, so slotfill may take more (faster) epochs to reach the baseline's best F1.
ACCURACY_OVERRUN = 2


# --------------------------------------------------------------------------- arithmetic


def training_flops(
    tokens: int,
    utterances: int,
    *,
    input_size: int,
    hidden_size: int,
    num_tags: int,
    num_intents: int = 0,
    cell: str = "lstm",
    bidirectional: bool = True,
    num_layers: int = 1,
) -> dict[str, int]:
    """Matrix-product FLOP of one training epoch (forward + backward).

    A multiply-add is 2 FLOP. With G gates (LSTM 4, GRU 3, Elman RNN 1), hidden size H,
    d directions, layer input size D_l (D_0 = ``input_size``, D_l = d*H above), C slot tags
    and I intents, one forward pass over an epoch of N real tokens and U utterances costs::

        forward = N * [ sum_l d * (2*G*H*D_l + 2*G*H*H) + 2*(d*H)*C ] + U * 2*(d*H)*I
        training = forward + backward = 3 * forward      (backward = 2 x forward)

    i.e. the input and recurrent products of every layer and direction at every real token,
    the slot output layer at every real token and the intent layer once per utterance.
    Padding, biases, gate nonlinearities, embeddings (and a character CNN's convolutions),
    softmax and the optimizer are not counted: this is the arithmetic a perfect
    implementation cannot avoid.
    """
    gates = GATES[cell]
    directions = 2 if bidirectional else 1
    per_token = 0
    layer_input = input_size
    for _ in range(num_layers):
        per_token += directions * (2 * gates * hidden_size * layer_input + 2 * gates * hidden_size * hidden_size)
        layer_input = directions * hidden_size
    per_token += 2 * layer_input * num_tags
    forward = tokens * per_token + utterances * 2 * layer_input * num_intents
    return {"forward": forward, "training": 3 * forward}


def matmul_gflops(threads: int, size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """Measured fp32 rates (GFLOP/s) of a ``size`` x ``size`` product on ``threads`` threads.

    Two kernels: ``torch.mm`` (MKL in PyTorch's CPU wheels) and oneDNN's (the library that
    runs PyTorch's fused LSTM, called as :func:`slotfill.model.heads.dense` does). They
    differ a lot on some processors: MKL takes a slower path on AMD's (190 against 435
    GFLOP/s on this project's machines); the floor uses the faster. Each rate is the median
    of ``repeats`` timed products after one warm-up; ``2 * size**3`` FLOP each.
    """
    from slotfill.model.heads import _ONEDNN_LINEAR

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    kernels: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"torch.mm": lambda a, b: torch.mm(a, b.T)}
    if _ONEDNN_LINEAR is not None:
        kernels["oneDNN"] = lambda a, b: _ONEDNN_LINEAR(a, b, None, "none", [], "")
    rates: dict[str, float] = {}
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=gen)
        b = torch.randn(size, size, generator=gen)
        with torch.inference_mode():
            for name, product in kernels.items():
                product(a, b)
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    product(a, b)
                    times.append(time.perf_counter() - start)
                rates[name] = 2 * size**3 / statistics.median(times) / 1e9
    finally:
        torch.set_num_threads(previous)
    return rates


# --------------------------------------------------------------------------- data


def resolve_data(data: str) -> Path:
    """A JointBERT folder: ``data`` itself, ``$SLOTFILL_DATA/<data>`` for ``atis``/``snips``, or the checkout's ``data/...``."""
    candidates = [Path(data)]
    if data in ("atis", "snips"):
        candidates.append(Path(os.environ.get("SLOTFILL_DATA", "data")) / data)
    if not Path(data).is_absolute():
        candidates.append(ROOT / data)
    for path in candidates:
        if (path / "train" / "seq.in").is_file():
            return path.resolve()
    raise SystemExit(f"error: --data {data}: no JointBERT folder (train/seq.in, dev/, test/) found -- "
                     "give a dataset folder, or atis/snips with SLOTFILL_DATA set")


def read_splits(root: Path) -> dict[str, list[Example]]:
    from slotfill.data.readers import read_jointbert

    return read_jointbert(root, ("train", "dev", "test"))


def write_jointbert(root: Path, splits: dict[str, Sequence[Example]]) -> Path:
    """Write examples as a JointBERT folder (``label`` only when every example has an intent)."""
    for split, examples in splits.items():
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "seq.in").write_text("".join(" ".join(ex.tokens) + "\n" for ex in examples), encoding="utf-8")
        (folder / "seq.out").write_text("".join(" ".join(ex.tags) + "\n" for ex in examples), encoding="utf-8")
        if all(ex.intent is not None for ex in examples):
            (folder / "label").write_text("".join(f"{ex.intent}\n" for ex in examples), encoding="utf-8")
    return root


def replicated_corpus(splits: dict[str, list[Example]], factor: int, root: Path, eval_size: int = 32) -> Path:
    """The training split repeated ``factor`` times; small dev/test to keep evaluation cheap."""
    return write_jointbert(root, {
        "train": splits["train"] * factor,
        "dev": splits["dev"][:eval_size],
        "test": splits["test"][:eval_size],
    })


def synthetic_utterances(tokens: int, length: int, batch_size: int) -> int:
    """Utterances of ``length`` tokens for a fixed-length scaling corpus of about ``tokens``
    tokens, in whole batches (at least one).

    A last, partly filled batch costs nearly a full batch's time (the same number of
    sequential steps), which would count against long utterances: 16,384 tokens make 102
    utterances of 160 tokens, three batches of 32 and one of 6 (+25% time per token), but
    1,638 of 10 tokens lose only 0.6%.
    """
    return batch_size * max(1, round(tokens / length / batch_size))


def synthetic_corpus(
    train: Sequence[Example], length: int, utterances: int, root: Path, seed: int = 0
) -> Path:
    """Utterances of exactly ``length`` random training words; tags ``O`` or a random ``B-x``.

    Every tag sequence is valid IOB2 (a ``B-x`` may follow anything). Intents, when the data
    has them, are random training intents.
    """
    rng = random.Random(seed)
    words = sorted({tok for ex in train for tok in ex.tokens})
    begins = sorted({t for ex in train for t in ex.tags if t.startswith("B-")}) or ["O"]
    intents = sorted({ex.intent for ex in train}) if all(ex.intent is not None for ex in train) else None

    def make(n: int) -> list[Example]:
        out = []
        for _ in range(n):
            tokens = tuple(rng.choice(words) for _ in range(length))
            tags = tuple("O" if rng.random() < 0.7 else rng.choice(begins) for _ in range(length))
            out.append(Example(tokens, tags, rng.choice(intents) if intents else None))
        return out

    return write_jointbert(root, {"train": make(utterances), "dev": make(4), "test": make(4)})


# --------------------------------------------------------------------------- measurements


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (``ru_maxrss``), in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def machine_cpu_seconds() -> dict[str, float] | None:
    """CPU seconds the whole machine has spent busy and stolen since boot (Linux ``/proc/stat``).

    ``busy`` is user + nice + system + irq + softirq over all cores; ``steal`` is time the
    hypervisor gave this VM's virtual cores to someone else. ``None`` where there is no
    ``/proc/stat`` (macOS, Windows).
    """
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return {"busy": (user + nice + system + irq + softirq) / tick, "steal": steal / tick}


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class CpuAccount:
    """What else used the machine's cores while the benchmark ran, in cores on average.

    The load average lags by about a minute (a run that has just ended still counts), so
    this measures instead: the machine's busy CPU time over the run less the benchmark's own
    (this process and its workers, which have exited by :meth:`stop`), and the time stolen
    by the hypervisor, each divided by the wall time.
    """

    def __init__(self) -> None:
        self.wall, self.machine, self.own = time.monotonic(), machine_cpu_seconds(), own_cpu_seconds()

    def stop(self) -> dict[str, float | None]:
        wall = time.monotonic() - self.wall
        machine, own = machine_cpu_seconds(), own_cpu_seconds() - self.own
        if self.machine is None or machine is None or wall <= 0:
            return {"seconds": wall, "other_cores": None, "steal_cores": None}
        other = machine["busy"] - self.machine["busy"] - own
        return {"seconds": wall, "other_cores": max(other, 0.0) / wall,
                "steal_cores": (machine["steal"] - self.machine["steal"]) / wall}


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of a non-empty sequence."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def seqeval_f1(examples: Sequence[Example], predicted: Sequence[Sequence[str]]) -> float:
    """Slot F1 exactly as slotfill reports it (:func:`slotfill.metrics.slot_scores`, conlleval mode)."""
    from slotfill.metrics import slot_scores

    return slot_scores([list(ex.tags) for ex in examples], [list(p) for p in predicted])["f1"]


def measure_inference(
    predict: Callable[[Sequence[Example], int], list[list[str]]],
    examples: Sequence[Example],
    repeats: int = 3,
    big_batch: int | None = 256,
) -> dict[str, Any]:
    """Tokenised sentences -> tag strings, at batch 1 and at ``big_batch``.

    Batch 1 is one ``predict`` call per sentence (as a server tagging one request would);
    its sentences/s is the number of sentences over the sum of the calls' times, and the
    calls' times give the latency percentiles. ``big_batch`` is one call over the whole
    split, median of ``repeats`` (``None``: not measured). Returns the predictions too: of
    the last big-batch call, or the batch-1 calls'.
    """
    examples = list(examples)
    predict(examples[:16], 1)  # warm-up
    if big_batch:
        predict(examples, big_batch)
    latencies, predicted = [], []
    for ex in examples:
        start = time.perf_counter()
        tags = predict([ex], 1)
        latencies.append(time.perf_counter() - start)
        if not big_batch:  # otherwise the big-batch call's predictions are returned
            predicted += tags
    out = {
        "sentences": len(examples),
        "batch1_sentences_per_second": len(examples) / sum(latencies),
        "latency_p50_ms": 1000 * percentile(latencies, 50),
        "latency_p99_ms": 1000 * percentile(latencies, 99),
    }
    if big_batch:
        times = []
        for _ in range(max(repeats, 1)):
            start = time.perf_counter()
            predicted = predict(examples, big_batch)
            times.append(time.perf_counter() - start)
        out[f"batch{big_batch}_sentences_per_second"] = len(examples) / statistics.median(times)
    if [len(p) for p in predicted] != [len(ex) for ex in examples]:
        raise RuntimeError("predictions do not align with the sentences")
    out["predicted"] = predicted
    return out


def measure_onnx_serving(ckpt: Path, examples: Sequence[Example], threads: int, out_dir: Path) -> dict[str, Any]:
    """Batch-1 inference through ``slotfill.export``'s ONNX model and its standalone runner.

    The checkpoint is exported as a user would (``python -m slotfill.export``), and the
    export folder's own ``predict.py`` (which does not import slotfill) tags one sentence
    per call in onnxruntime. Returns the batch-1 figures and the predictions, or
    ``{"skipped": reason}`` when onnx/onnxruntime are not installed (the ``[export]`` extra).
    """
    import importlib.util

    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        return {"skipped": f"{err.name} is not installed (pip install -e '.[export]')"}
    from slotfill.export import export_checkpoint

    folder = export_checkpoint(ckpt, "onnx", out_dir)
    spec = importlib.util.spec_from_file_location("slotfill_export_runner", folder / "predict.py")
    runner_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner_module)  # type: ignore[union-attr]
    runner = runner_module.ExportedTagger(folder, threads=threads)
    tag = lambda exs, bs: [r["tags"] for r in runner.tag([list(ex.tokens) for ex in exs])]  # noqa: E731
    return measure_inference(tag, examples, big_batch=None)


def epoch_summary(seconds: Sequence[float], tokens: int) -> dict[str, Any]:
    """Warm-up epoch dropped; the median of the rest."""
    measured = list(seconds[1:]) or list(seconds)
    median = statistics.median(measured)
    return {
        "seconds_per_epoch": median,
        "tokens_per_second": tokens / median,
        "tokens_per_epoch": tokens,
        "epoch_seconds": measured,
        "warmup_seconds": seconds[0],
    }


def accuracy_summary(f1: Sequence[float], seconds: Sequence[float], epochs: int | None = None) -> dict[str, Any]:
    """Per-epoch test F1 and cumulative training seconds; the best F1 of the first ``epochs``
    epochs (default: all) and when it was first reached."""
    cumulative, total = [], 0.0
    for s in seconds:
        total += s
        cumulative.append(total)
    within = list(f1[:epochs] if epochs else f1)
    best = max(within)
    best_epoch = within.index(best) + 1
    return {"f1": list(f1), "cumulative_seconds": cumulative, "best_f1": best, "best_epoch": best_epoch,
            "seconds_to_best": cumulative[best_epoch - 1]}


def time_to_target(f1: Sequence[float], cumulative_seconds: Sequence[float], target: float) -> tuple[int, float] | None:
    """(epoch, cumulative seconds) of the first epoch whose F1 reaches ``target``; None if none does."""
    return next(((i + 1, t) for i, (f, t) in enumerate(zip(f1, cumulative_seconds)) if f >= target), None)


def compare_accuracy(seed: int, slotfill: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """One seed's to-accuracy runs (:func:`accuracy_summary` of each side): slotfill's time to
    the baseline's best F1 over the baseline's time to it."""
    target = baseline["best_f1"]
    epoch, reached = time_to_target(slotfill["f1"], slotfill["cumulative_seconds"], target) or (None, None)
    return {
        "seed": seed, "slotfill": slotfill, "baseline": baseline, "slotfill_epochs": len(slotfill["f1"]),
        "target_f1": target, "slotfill_epoch_to_target": epoch, "slotfill_seconds_to_target": reached,
        "baseline_seconds_to_best": baseline["seconds_to_best"], "ratio": ratio(reached, baseline["seconds_to_best"]),
    }


def accuracy_over_seeds(runs: Sequence[dict[str, Any]], epochs: int) -> dict[str, Any]:
    """Seeds summarised: each side's mean best F1 of the first ``epochs`` epochs and mean F1 at
    epoch ``epochs`` (the accuracy comparison at equal epochs), and the time ratios.

    A seed whose slotfill run never reaches the baseline's best has no ratio (``None``); it
    counts above every ratio in the median, and makes the worst ratio ``None``; so does the
    median when it falls on such a seed.
    """
    ratios = [r["ratio"] for r in runs]
    reached = [q for q in ratios if q is not None]
    middle = statistics.median(math.inf if q is None else q for q in ratios)
    return {
        "seeds": [r["seed"] for r in runs],
        "best_f1_mean": {side: statistics.fmean(r[side]["best_f1"] for r in runs) for side in ("slotfill", "baseline")},
        "f1_at_epochs_mean": {side: statistics.fmean(r[side]["f1"][epochs - 1] for r in runs)
                              for side in ("slotfill", "baseline")},
        "ratios": ratios,
        "reached": len(reached),
        "ratio_median": middle if math.isfinite(middle) else None,
        "ratio_worst": max(reached) if len(reached) == len(ratios) else None,
    }


# --------------------------------------------------------------------------- turn-taking


class Baton:
    """Strict turn-taking between the two worker processes, over a pair of pipes.

    A worker runs only while it holds the baton. :meth:`turn` hands it to the other worker
    and blocks until it comes back, so the two sides' epochs and measurements alternate and
    are never timed at the same moment. Run one after the other, minutes apart, each side
    met the machine in another state: over six such runs on a 2-core VM the baseline's
    epochs took 3.46-4.50 s and slotfill's 1.13-1.89 s, and the training ratio ranged over
    2.1-3.4x. In turns, a slow spell slows both.

    When the other worker finishes (:meth:`finish`) or dies (end of file, broken pipe),
    this one runs on alone: its remaining turns return at once.

    Args:
        take_fd: the pipe end this worker reads the baton from; ``None``: no other worker.
        give_fd: the pipe end it writes the baton to.
    """

    _TOKEN, _DONE = b"1", b"0"

    def __init__(self, take_fd: int | None = None, give_fd: int | None = None):
        self._take, self._give = take_fd, give_fd
        self.alone = take_fd is None or give_fd is None
        self.turns = 0  # hand-overs made

    def take(self) -> None:
        """Block until the other worker hands over (or finishes, or dies)."""
        if self.alone:
            return
        if os.read(self._take, 1) != self._TOKEN:  # b"0": it finished; b"": it exited
            self.alone = True

    def turn(self) -> None:
        """Let the other worker run its next step, then carry on."""
        if self.alone:
            return
        try:
            os.write(self._give, self._TOKEN)
        except BrokenPipeError:  # the other worker is gone
            self.alone = True
            return
        self.turns += 1
        self.take()

    def finish(self) -> None:
        """Hand over for good: the other worker runs on alone."""
        if not self.alone:
            try:
                os.write(self._give, self._DONE)
            except BrokenPipeError:
                pass
        self.alone = True
        for fd in (self._take, self._give):
            if fd is not None:
                os.close(fd)
        self._take = self._give = None


# --------------------------------------------------------------------------- slotfill side


def compose_slotfill(data_dir: Path, job: dict[str, Any], epochs: int, extra: Sequence[str] = ()) -> DictConfig:
    """slotfill's train config from ``conf/`` with the benchmark's overrides."""
    from hydra import compose, initialize_config_dir

    from slotfill.cli import conf_dir

    overrides = [
        "data=folder", f"data.dir={data_dir}", "data.name=bench", "logger=none", "logger.gradient_flow=false",
        "device=cpu", f"threads={job['threads']}", f"trainer.batch_size={job['batch_size']}",
        f"trainer.max_epochs={epochs}", "trainer.patience=1000", "trainer.progress=false", f"seed={job['seed']}",
        *job["overrides"], *extra,
    ]
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        return compose("train", overrides=overrides)


def slotfill_train(
    data_dir: Path, job: dict[str, Any], epochs: int, run_dir: Path, baton: Baton,
    callback: Callable[[Any, int], None] | None = None,
) -> dict[str, Any]:
    """``slotfill.training.train`` for ``epochs`` epochs on ``data_dir``; its ``results`` dict.

    After every epoch (and ``callback``) the other side takes a turn; ``train`` times epochs
    without what runs between them.
    """
    from slotfill.training import train

    def after_epoch(model: Any, epoch: int) -> None:
        if callback is not None:
            callback(model, epoch)
        baton.turn()

    return train(compose_slotfill(data_dir, job, epochs), run_dir, epoch_callback=after_epoch)


def slotfill_worker(job: dict[str, Any], tmp: Path, baton: Baton) -> dict[str, Any]:
    """slotfill's side: training and inference, peak memory, then scaling and to-accuracy runs."""
    from slotfill.evaluation import predict
    from slotfill.inference import SlotTagger

    data_dir = Path(job["data"])
    splits = read_splits(data_dir)
    tokens = sum(len(ex) for ex in splits["train"])
    out: dict[str, Any] = {}

    log.info("slotfill: training %d warm-up + %d measured epochs", 1, job["epochs"])
    results = slotfill_train(data_dir, job, 1 + job["epochs"], tmp / "main", baton)
    out["train"] = epoch_summary([h["seconds"] for h in results["history"]], tokens)
    out["params"] = results["params"]
    out["lstm_kernel"] = results["lstm_kernel"]  # "slotfill" or "torch": lstm_kernel=auto decides by the threads
    tagger = SlotTagger.load(tmp / "main" / "checkpoints" / "last.pt")  # after the last epoch, as the baseline
    log.info("slotfill: inference on %d test sentences", len(splits["test"]))
    baton.turn()
    inference = measure_inference(lambda exs, bs: tagger.predict(exs, batch_size=bs).tags, splits["test"], job["inference_repeats"])
    predicted = inference.pop("predicted")
    out["test_f1"] = seqeval_f1(splits["test"], predicted)
    out["inference"] = inference
    out["peak_rss_mib"] = peak_rss_mib()  # before the export, which the baseline has no part of
    if job["onnx"]:
        log.info("slotfill: ONNX export served by onnxruntime, batch 1")
        baton.turn()
        serving = measure_onnx_serving(tmp / "main" / "checkpoints" / "last.pt", splits["test"], job["threads"], tmp / "onnx")
        if "predicted" in serving:
            same = sum(a == b for a, b in zip(serving.pop("predicted"), predicted))
            serving["same_tags_as_pytorch"] = same / len(predicted)
        out["onnx_serving"] = serving

    if job["scaling"]:
        out["scaling"] = {"replicated_tokens_per_second": {}, "length_us_per_token": {}}
        for factor in job["factors"]:
            folder = replicated_corpus(splits, factor, tmp / f"x{factor}")
            log.info("slotfill: scaling, training corpus x%d", factor)
            history = slotfill_train(folder, job, 1, tmp / f"run-x{factor}", baton)["history"]
            out["scaling"]["replicated_tokens_per_second"][str(factor)] = factor * tokens / history[0]["seconds"]
        for length in job["lengths"]:
            n = synthetic_utterances(job["synthetic_tokens"], length, job["batch_size"])
            folder = synthetic_corpus(splits["train"], length, n, tmp / f"len{length}", job["seed"])
            log.info("slotfill: scaling, %d utterances of %d tokens", n, length)
            history = slotfill_train(folder, job, 1, tmp / f"run-len{length}", baton)["history"]
            out["scaling"]["length_us_per_token"][str(length)] = 1e6 * history[0]["seconds"] / (n * length)

    if job["accuracy_epochs"]:
        from slotfill.data.batching import EncodedSplit
        from slotfill.training import intent_labels
        from slotfill.vocab import Normalizer, TagSet, Vocab

        # The to-accuracy runs' job: the recipe's overrides after the job's own.
        job = {**job, "overrides": [*job["overrides"], *job["accuracy_overrides"]]}
        # The vocabulary, tags and intents train() builds from the same data and config.
        cfg = compose_slotfill(data_dir, job, job["accuracy_epochs"])
        vocab = Vocab.build((ex.tokens for ex in splits["train"]), Normalizer(cfg.vocab.lowercase, cfg.vocab.digits),
                            cfg.vocab.min_freq, chars=cfg.model.char_filters > 0)
        tagset = TagSet.build(ex.tags for ex in splits["train"])
        labels = intent_labels(cfg.model.intent, splits["train"])
        test = EncodedSplit(splits["test"], vocab)
        epochs = job["accuracy_epochs"] * ACCURACY_OVERRUN

        def accuracy_run(seed: int) -> dict[str, Any]:
            f1: list[float] = []

            def score_test(model: Any, epoch: int) -> None:
                f1.append(seqeval_f1(splits["test"], predict(model, test, vocab, tagset, labels).tags))

            log.info("slotfill: to-accuracy, seed %d, %d epochs (the baseline's %d, then on)",
                     seed, epochs, job["accuracy_epochs"])
            results = slotfill_train(data_dir, {**job, "seed": seed}, epochs, tmp / f"accuracy-{seed}", baton, score_test)
            trained = results["config"]  # what the run trained with, recipe included
            return {**accuracy_summary(f1, [h["seconds"] for h in results["history"]], job["accuracy_epochs"]),
                    "lr": trained["trainer"]["lr"], "scheduler": trained["scheduler"]["name"],
                    "lstm_kernel": results["lstm_kernel"]}

        out["to_accuracy"] = [accuracy_run(seed) for seed in job["accuracy_seeds"]]
    return out


# --------------------------------------------------------------------------- baseline side


def baseline_worker(job: dict[str, Any], tmp: Path, baton: Baton) -> dict[str, Any]:
    """The baseline's side, measured the same way as :func:`slotfill_worker`, turn for turn."""
    from slotfill.bench_baseline import BaselineSpec, BaselineTrainer, train_epochs

    spec = BaselineSpec(**job["spec"])
    splits = read_splits(Path(job["data"]))
    torch.set_num_threads(job["threads"])
    out: dict[str, Any] = {}

    log.info("baseline: training %d warm-up + %d measured epochs", 1, job["epochs"])
    trainer = BaselineTrainer(splits["train"], spec, job["batch_size"], job["seed"])
    history = train_epochs(trainer, 1 + job["epochs"], lambda epoch, stats: baton.turn())
    out["train"] = epoch_summary([h["seconds"] for h in history], trainer.data.num_tokens)
    out["params"] = sum(p.numel() for p in trainer.model.parameters())
    log.info("baseline: inference on %d test sentences", len(splits["test"]))
    baton.turn()
    inference = measure_inference(trainer.predict, splits["test"], job["inference_repeats"])
    out["test_f1"] = seqeval_f1(splits["test"], inference.pop("predicted"))
    out["inference"] = inference
    out["peak_rss_mib"] = peak_rss_mib()
    del trainer

    if job["scaling"]:
        out["scaling"] = {"replicated_tokens_per_second": {}, "length_us_per_token": {}}
        tokens = sum(len(ex) for ex in splits["train"])
        for factor in job["factors"]:
            log.info("baseline: scaling, training corpus x%d", factor)
            baton.turn()
            stats = BaselineTrainer(splits["train"] * factor, spec, job["batch_size"], job["seed"]).train_epoch()
            out["scaling"]["replicated_tokens_per_second"][str(factor)] = factor * tokens / stats["seconds"]
        for length in job["lengths"]:
            n = synthetic_utterances(job["synthetic_tokens"], length, job["batch_size"])
            folder = synthetic_corpus(splits["train"], length, n, tmp / f"len{length}", job["seed"])
            log.info("baseline: scaling, %d utterances of %d tokens", n, length)
            baton.turn()
            stats = BaselineTrainer(read_splits(folder)["train"], spec, job["batch_size"], job["seed"]).train_epoch()
            out["scaling"]["length_us_per_token"][str(length)] = 1e6 * stats["seconds"] / (n * length)

    if job["accuracy_epochs"]:

        def accuracy_run(seed: int) -> dict[str, Any]:
            log.info("baseline: to-accuracy, seed %d, %d epochs", seed, job["accuracy_epochs"])
            trainer = BaselineTrainer(splits["train"], spec, job["batch_size"], seed)
            f1: list[float] = []

            def score_test(epoch: int, stats: dict[str, float]) -> None:
                f1.append(seqeval_f1(splits["test"], trainer.predict(splits["test"])))
                baton.turn()

            history = train_epochs(trainer, job["accuracy_epochs"], score_test)
            return accuracy_summary(f1, [h["seconds"] for h in history])

        out["to_accuracy"] = [accuracy_run(seed) for seed in job["accuracy_seeds"]]
    return out


def run_worker(job_path: Path) -> None:
    """Worker entry point: run the job file's side and write its JSON result to ``job["out"]``.

    The side starts when it first holds the baton (``job["baton"]``: its take and give pipe
    ends) and hands it over for good when done, even when it fails.
    """
    job = json.loads(job_path.read_text(encoding="utf-8"))
    torch.set_num_threads(job["threads"])
    baton = Baton(*job.get("baton", (None, None)))
    try:
        baton.take()
        with tempfile.TemporaryDirectory(prefix=f"slotfill-bench-{job['side']}-") as tmp:
            worker = slotfill_worker if job["side"] == "slotfill" else baseline_worker
            result = worker(job, Path(tmp), baton)
        result["threads"] = torch.get_num_threads()
        result["turns"] = baton.turns
        Path(job["out"]).write_text(json.dumps(result), encoding="utf-8")
    finally:
        baton.finish()


def spawn_pair(jobs: Sequence[dict[str, Any]], tmp: Path) -> list[dict[str, Any]]:
    """Run two sides, each in a fresh ``python -m slotfill.bench --worker`` process, taking
    turns (the first job starts); their results in the jobs' order.

    Each worker's stderr (progress) passes through; its stdout goes to a file (kept off ours
    for ``--json``) whose end is shown if it fails. When one fails, the other is stopped.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    first_r, first_w = os.pipe()  # the first job takes the baton from here; the second gives it here
    second_r, second_w = os.pipe()
    ends = [(first_r, second_w), (second_r, first_w)]
    procs, logs = [], []
    try:
        for job, (take_fd, give_fd) in zip(jobs, ends):
            job_path = tmp / f"{job['side']}-job.json"
            job["out"] = str(tmp / f"{job['side']}-result.json")
            job["baton"] = [take_fd, give_fd]
            job_path.write_text(json.dumps(job), encoding="utf-8")
            cmd = [sys.executable, "-m", "slotfill.bench", "--worker", str(job_path)]
            if job.get("verbose"):
                cmd.append("--verbose")
            log_path = tmp / f"{job['side']}-stdout.txt"
            logs.append(log_path)
            with log_path.open("wb") as out:
                procs.append(subprocess.Popen(cmd, env=env, stdout=out, pass_fds=(take_fd, give_fd)))
        os.write(first_w, Baton._TOKEN)  # the first side starts
    except BaseException:  # a worker that did start must not run on alone, unseen
        _stop(procs)
        raise
    finally:
        for fd in (first_r, first_w, second_r, second_w):
            os.close(fd)  # only the workers hold the pipes now: a worker's exit is seen as end of file
    while True:
        codes = [proc.poll() for proc in procs]
        failed = next((i for i, code in enumerate(codes) if code not in (None, 0)), None)
        if failed is not None or all(code == 0 for code in codes):
            break
        time.sleep(0.1)
    if failed is not None:
        _stop(procs)
        job, proc = jobs[failed], procs[failed]
        tail = logs[failed].read_text(encoding="utf-8", errors="replace")[-2000:]
        raise SystemExit(f"error: the {job['side']} worker failed (exit {proc.returncode}){tail and ': ' + tail}")
    return [json.loads(Path(job["out"]).read_text(encoding="utf-8")) for job in jobs]


def _stop(procs: Sequence[subprocess.Popen]) -> None:
    """End the workers still running and reap them all."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
        proc.wait()


# --------------------------------------------------------------------------- orchestration


def model_overrides(values: Sequence[str] | None) -> list[str]:
    """``--model`` values split on whitespace; a bare ``key=value`` becomes ``model.key=value``."""
    out = []
    for value in values or []:
        for item in shlex.split(value):
            key = item.split("=", 1)[0].lstrip("+~")
            out.append(item if "." in key or key in ("model", "optim", "vocab", "trainer", "scheduler") else f"model.{item}")
    return out


def baseline_spec(cfg: Any) -> dict[str, Any]:
    """The baseline's sizes from slotfill's composed config; warns about what it cannot mirror."""
    from slotfill.bench_baseline import BaselineSpec

    m, t, v = cfg.model, cfg.trainer, cfg.vocab
    unsupported = []
    if m.head != "softmax":
        unsupported.append(f"model.head={m.head}")
    if m.context_window:
        unsupported.append(f"model.context_window={m.context_window}")
    if m.char_filters:
        unsupported.append(f"model.char_filters={m.char_filters}")
    if m.pretrained_vectors:
        unsupported.append("model.pretrained_vectors")
    if m.attention:
        unsupported.append("model.attention")
    if m.locked_dropout:
        unsupported.append("model.locked_dropout")
    if m.cell == "rnn" and m.nonlinearity != "tanh":
        unsupported.append(f"model.nonlinearity={m.nonlinearity}")
    if t.loss_reduction != "sum":
        unsupported.append(f"trainer.loss_reduction={t.loss_reduction}")
    if not cfg.optim._target_.endswith(".Adam"):
        unsupported.append(f"optim={cfg.optim._target_}")
    if cfg.scheduler.name != "none":
        unsupported.append(f"scheduler={cfg.scheduler.name}")
    if unsupported:
        log.warning("the baseline does not mirror %s: the comparison is not like for like", ", ".join(unsupported))
    return BaselineSpec(
        embedding_dim=m.embedding_dim, hidden_size=m.hidden_size, num_layers=m.num_layers,
        bidirectional=m.bidirectional, cell=m.cell, dropout=m.dropout, embedding_dropout=m.embedding_dropout,
        output_dropout=m.output_dropout, intent=m.intent, intent_loss_weight=m.intent_loss_weight,
        lowercase=v.lowercase, digits=v.digits, min_freq=v.min_freq, lr=t.lr, clip_norm=t.clip_norm,
    ).to_dict()


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or ``None`` when either is missing or ``b`` is 0."""
    return a / b if a is not None and b not in (None, 0) else None


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Both workers, the FLOP count, the matmul rate and the comparison, as one dict."""
    from slotfill.training import intent_labels
    from slotfill.vocab import TagSet

    load_start = os.getloadavg()
    account = CpuAccount()
    data_dir = resolve_data(args.data)
    splits = read_splits(data_dir)
    overrides = model_overrides(args.model)
    if args.quick:
        overrides = ["model.hidden_size=16", "model.embedding_dim=16", *overrides]
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else 3)
    accuracy_epochs = args.to_accuracy
    if accuracy_epochs is not None and args.quick:
        accuracy_epochs = min(accuracy_epochs, 2)
    job = {
        "data": str(data_dir), "batch_size": args.batch_size, "threads": args.threads, "epochs": epochs,
        "seed": args.seed, "overrides": overrides, "scaling": args.scaling,
        "factors": list(QUICK_FACTORS if args.quick else FACTORS), "lengths": list(LENGTHS),
        "synthetic_tokens": QUICK_SYNTHETIC_TOKENS if args.quick else SYNTHETIC_TOKENS,
        "accuracy_epochs": accuracy_epochs or 0, "accuracy_seeds": args.accuracy_seeds or [args.seed],
        "accuracy_overrides": model_overrides(args.accuracy_recipe),
        "inference_repeats": 1 if args.quick else INFERENCE_REPEATS,
        "verbose": args.verbose, "onnx": args.onnx,
    }
    with tempfile.TemporaryDirectory(prefix="slotfill-bench-") as tmp:
        def composed(option: str, shown: Sequence[str], extra: Sequence[str] = ()) -> DictConfig:
            try:
                return compose_slotfill(data_dir, job, 1, extra)
            except Exception as err:  # Hydra's override and schema errors
                message = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
                raise SystemExit(f"error: {option} {' '.join(shown)}: {message}") from None

        cfg = composed("--model", model_overrides(args.model))
        if job["accuracy_overrides"]:
            composed("--accuracy-recipe", job["accuracy_overrides"], job["accuracy_overrides"])
            log.info("to-accuracy: slotfill trains with %s; the baseline keeps its own settings",
                     " ".join(job["accuracy_overrides"]))
        spec = baseline_spec(cfg)
        results = spawn_pair([{**job, "side": "slotfill"}, {**job, "side": "baseline", "spec": spec}], Path(tmp))
        sides = dict(zip(("slotfill", "baseline"), results))

    train = splits["train"]
    tokens, utterances = sum(len(ex) for ex in train), len(train)
    labels = intent_labels(cfg.model.intent, train)
    num_intents = len(labels) if labels is not None else 0
    m = cfg.model
    shape = dict(
        input_size=(m.embedding_dim + m.char_filters) * (2 * m.context_window + 1), hidden_size=m.hidden_size,
        num_tags=len(TagSet.build(ex.tags for ex in train)), num_intents=num_intents, cell=m.cell,
        bidirectional=m.bidirectional, num_layers=m.num_layers,
    )
    flops = training_flops(tokens, utterances, **shape)
    test = splits["test"]
    test_flops = training_flops(sum(len(ex) for ex in test), len(test), **shape)["forward"]
    size = 512 if args.quick else 2048
    log.info("timing a %dx%d fp32 matmul on %d thread(s)", size, size, args.threads)
    rates = matmul_gflops(args.threads, size, 2 if args.quick else 5)
    gflops = max(rates.values())
    floor = flops["training"] / (gflops * 1e9)
    # Tagging the test split cannot take less than its forward products at the matmul rate.
    test_floor = test_flops / (gflops * 1e9)

    report: dict[str, Any] = {
        "benchmark": {
            "data": str(data_dir), "train_utterances": utterances, "train_tokens": tokens,
            "test_utterances": len(splits["test"]), "batch_size": args.batch_size, "threads": args.threads,
            "measured_epochs": epochs, "warmup_epochs": 1, "seed": args.seed, "model_overrides": overrides,
            "quick": args.quick, "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg()), "cpu": account.stop(),
            "processor": processor(),
            # hand-overs between the two sides (each hands over once per epoch or measurement)
            "turns": {name: side["turns"] for name, side in sides.items()},
            "baseline_spec": spec,
        },
        "flops": {
            "forward_per_epoch": flops["forward"], "per_epoch": flops["training"],
            "matmul_size": size, "matmul_gflops": gflops,
            "matmul_gflops_by_kernel": rates,
            "floor_seconds_per_epoch": floor,
            "test_forward": test_flops, "test_floor_seconds": test_floor,
        },
    }
    for name, side in sides.items():
        side["floor_fraction"] = floor / side["train"]["seconds_per_epoch"]
        # The batch-256 time of the test split is len(test) / its sentences per second.
        side["inference"]["batch256_floor_fraction"] = test_floor * side["inference"]["batch256_sentences_per_second"] / len(test)
        report[name] = {k: side[k] for k in ("params", "train", "peak_rss_mib", "inference", "test_f1", "floor_fraction")}
    report["slotfill"]["lstm_kernel"] = sides["slotfill"]["lstm_kernel"]
    s, b = report["slotfill"], report["baseline"]
    report["ratio"] = {
        "seconds_per_epoch": ratio(s["train"]["seconds_per_epoch"], b["train"]["seconds_per_epoch"]),
        "tokens_per_second": ratio(s["train"]["tokens_per_second"], b["train"]["tokens_per_second"]),
        "peak_rss_mib": ratio(s["peak_rss_mib"], b["peak_rss_mib"]),
        **{k: ratio(s["inference"][k], b["inference"][k]) for k in (
            "batch1_sentences_per_second", "batch256_sentences_per_second", "latency_p50_ms", "latency_p99_ms")},
        "floor_fraction": ratio(s["floor_fraction"], b["floor_fraction"]),
    }
    serving = sides["slotfill"].get("onnx_serving")
    if serving is not None and "skipped" not in serving:
        for key in ("batch1_sentences_per_second", "latency_p50_ms", "latency_p99_ms"):
            serving[f"{key}_ratio"] = ratio(serving[key], b["inference"][key])
    report["onnx_serving"] = serving
    report["scaling"] = {name: side["scaling"] for name, side in sides.items()} if args.scaling else None
    report["to_accuracy"] = None
    if accuracy_epochs:
        runs = [compare_accuracy(seed, sa, ba) for seed, sa, ba in zip(
            job["accuracy_seeds"], sides["slotfill"]["to_accuracy"], sides["baseline"]["to_accuracy"])]
        report["to_accuracy"] = {"epochs": accuracy_epochs, "runs": runs, "slotfill_overrides": job["accuracy_overrides"],
                                 "summary": accuracy_over_seeds(runs, accuracy_epochs)}
    return report


# --------------------------------------------------------------------------- output


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def machine_busy(bench: dict[str, Any]) -> bool:
    """Whether other work competed for the cores of a multi-threaded run.

    Other work is the CPU time other processes used during the run (:class:`CpuAccount`),
    in cores on average. Without ``/proc/stat`` it is estimated from the load average: the
    1-minute load before the run, or the load at its end less the benchmark's own threads
    (which the end figure counts), whichever is larger.
    """
    others = (bench.get("cpu") or {}).get("other_cores")
    if others is None:
        others = max(bench["loadavg_start"][0], bench["loadavg_end"][0] - bench["threads"])
    return bench["threads"] > 1 and others + bench["threads"] > (bench["cpu_count"] or 1) + 0.5


def machine_use(bench: dict[str, Any]) -> str:
    """One phrase: what else ran during the benchmark, and the load average."""
    cpu = bench.get("cpu") or {}
    load = f"1-min load average {bench['loadavg_start'][0]:.2f} at start, {bench['loadavg_end'][0]:.2f} at end"
    if cpu.get("other_cores") is None:
        return load
    return (f"other processes used {cpu['other_cores']:.2f} cores and the hypervisor took "
            f"{cpu['steal_cores']:.2f} on average over the run's {cpu['seconds']:.0f} s ({load})")


def format_table(report: dict[str, Any]) -> str:
    """The human-readable report."""
    b = report["benchmark"]
    s, base, r, fl = report["slotfill"], report["baseline"], report["ratio"], report["flops"]
    lines = [
        f"slotfill benchmark: {b['data']} (train {b['train_utterances']:,} utterances, {b['train_tokens']:,} tokens), "
        f"batch {b['batch_size']}, {b['threads']} thread(s), torch {b['torch']}",
        f"model overrides: {' '.join(b['model_overrides']) or '(default config)'}; "
        f"params slotfill {s['params']:,}, baseline {base['params']:,}; slotfill's LSTM kernel: {s['lstm_kernel']} "
        f"(the baseline: PyTorch's nn.LSTM, packed)",
        f"training: median of {b['measured_epochs']} epoch(s) after {b['warmup_epochs']} warm-up; "
        f"inference on {s['inference']['sentences']} test sentences",
        f"the sides take turns, epoch by epoch and measurement by measurement "
        f"({b['turns']['slotfill'] + b['turns']['baseline']} hand-overs): never timed at once, and alike exposed to the machine's drift",
        f"machine: {b['processor']}, {b['cpu_count']} cores; {machine_use(b)}",
    ]
    if machine_busy(b):
        lines.append("warning: the machine is busy; with several threads per side, threads wait for each other "
                     "and times can be far off (try --threads 1)")
    lines += [
        "",
        f"{'':34}{'slotfill':>12}{'baseline':>12}{'slotfill/baseline':>20}",
    ]

    def row(label: str, a: float | None, c: float | None, q: float | None, digits: int = 2) -> None:
        lines.append(f"{label:34}{_fmt(a, digits):>12}{_fmt(c, digits):>12}{_fmt(q, 3):>20}")

    lines.append("training")
    row("  seconds / epoch", s["train"]["seconds_per_epoch"], base["train"]["seconds_per_epoch"], r["seconds_per_epoch"], 3)
    row("  tokens / second", s["train"]["tokens_per_second"], base["train"]["tokens_per_second"], r["tokens_per_second"])
    row("  peak RSS (MiB)", s["peak_rss_mib"], base["peak_rss_mib"], r["peak_rss_mib"], 1)
    row("  test slot F1 after training", s["test_f1"], base["test_f1"], ratio(s["test_f1"], base["test_f1"]), 4)
    lines.append("inference (tokenised sentences -> tag strings)")
    si, bi = s["inference"], base["inference"]
    row("  sentences / s, batch 1", si["batch1_sentences_per_second"], bi["batch1_sentences_per_second"], r["batch1_sentences_per_second"], 1)
    row("  sentences / s, batch 256", si["batch256_sentences_per_second"], bi["batch256_sentences_per_second"], r["batch256_sentences_per_second"], 1)
    row("  latency p50, batch 1 (ms)", si["latency_p50_ms"], bi["latency_p50_ms"], r["latency_p50_ms"], 3)
    row("  latency p99, batch 1 (ms)", si["latency_p99_ms"], bi["latency_p99_ms"], r["latency_p99_ms"], 3)
    serving = report.get("onnx_serving")
    if serving and "skipped" in serving:
        lines.append(f"serving (ONNX export in onnxruntime): skipped, {serving['skipped']}")
    elif serving:
        lines.append("serving: slotfill.export's ONNX model run by its predict.py in onnxruntime, one sentence per call")
        row("  sentences / s, batch 1", serving["batch1_sentences_per_second"], bi["batch1_sentences_per_second"],
            serving["batch1_sentences_per_second_ratio"], 1)
        row("  latency p50, batch 1 (ms)", serving["latency_p50_ms"], bi["latency_p50_ms"], serving["latency_p50_ms_ratio"], 3)
        row("  latency p99, batch 1 (ms)", serving["latency_p99_ms"], bi["latency_p99_ms"], serving["latency_p99_ms_ratio"], 3)
        lines.append(f"  same tags as slotfill's PyTorch predict: {100 * serving['same_tags_as_pytorch']:.1f}% of sentences")
    lines.append("arithmetic floor")
    lines.append(f"  FLOP / training epoch (fwd+bwd)   {fl['per_epoch'] / 1e9:.3f} GFLOP (forward {fl['forward_per_epoch'] / 1e9:.3f})")
    kernels = ", ".join(f"{k} {v:.1f}" for k, v in fl["matmul_gflops_by_kernel"].items())
    lines.append(f"  fp32 matmul {fl['matmul_size']}x{fl['matmul_size']}, {b['threads']} thread(s)  "
                 f"{fl['matmul_gflops']:.1f} GFLOP/s (the faster of {kernels})")
    lines.append(f"  floor (s / epoch)                 {fl['floor_seconds_per_epoch']:.4f}")
    row("  fraction of floor achieved", s["floor_fraction"], base["floor_fraction"], r["floor_fraction"], 4)
    lines.append(f"  FLOP / tagging the test split     {fl['test_forward'] / 1e9:.3f} GFLOP (forward), "
                 f"floor {1000 * fl['test_floor_seconds']:.1f} ms")
    row("  batch 256: fraction of floor", si["batch256_floor_fraction"], bi["batch256_floor_fraction"],
        ratio(si["batch256_floor_fraction"], bi["batch256_floor_fraction"]), 4)

    if report.get("scaling"):
        lines += ["", "scaling (one epoch each, in the warm worker; numbers, not assertions)"]
        for key, label, unit in (("replicated_tokens_per_second", "training corpus x", "tokens/s"),
                                 ("length_us_per_token", "utterances of length ", "us/token")):
            sides = {name: report["scaling"][name][key] for name in report["scaling"]}
            for point in next(iter(sides.values())):
                values = [sides[name].get(point) for name in ("slotfill", "baseline") if name in sides]
                q = ratio(values[0], values[1]) if len(values) == 2 else None
                row(f"  {label}{point} ({unit})", values[0], values[1] if len(values) > 1 else None, q, 1)

    acc = report.get("to_accuracy")
    if acc:
        n, runs, summary = acc["epochs"], acc["runs"], acc["summary"]
        lines += ["", f"to accuracy (test slot F1 after every epoch, untimed; baseline {n} epochs, "
                      f"slotfill up to {runs[0]['slotfill_epochs']})"]
        if acc["slotfill_overrides"]:
            lines.append(f"  slotfill's recipe: {' '.join(acc['slotfill_overrides'])} (the baseline: Adam at "
                         f"lr {b['baseline_spec']['lr']:g}, no schedule)")
        if len(runs) == 1:
            (one,) = runs
            sa, ba = one["slotfill"], one["baseline"]
            row(f"  best test F1, first {n} epochs", sa["best_f1"], ba["best_f1"], ratio(sa["best_f1"], ba["best_f1"]), 4)
            row("  epoch of best", sa["best_epoch"], ba["best_epoch"], None, 0)
            lines.append(f"  baseline reaches its best {one['target_f1']:.4f} after {one['baseline_seconds_to_best']:.1f} s of training")
            lines.append(f"  slotfill reaches its own best {sa['best_f1']:.4f} after {sa['seconds_to_best']:.1f} s")
            if one["slotfill_seconds_to_target"] is None:
                lines.append(f"  slotfill never reaches it in {one['slotfill_epochs']} epochs")
            else:
                lines.append(f"  slotfill first reaches it at epoch {one['slotfill_epoch_to_target']}, after "
                             f"{one['slotfill_seconds_to_target']:.1f} s (ratio slotfill/baseline {one['ratio']:.3f})")
        else:
            lines.append(f"  best (ep): best test F1 of the first {n} epochs, and its epoch; @{n}: F1 at epoch {n}")
            lines.append("  reached: slotfill's first epoch at the baseline's best; s: each side's training seconds to it")
            header = ["seed", "slotfill best (ep)", "baseline best (ep)", f"slotfill @{n}", f"baseline @{n}",
                      "reached", "slotfill s", "baseline s", "ratio"]
            table = [header]
            for one in runs:
                sa, ba = one["slotfill"], one["baseline"]
                reached = one["slotfill_epoch_to_target"]
                table.append([
                    str(one["seed"]), f"{sa['best_f1']:.4f} ({sa['best_epoch']})", f"{ba['best_f1']:.4f} ({ba['best_epoch']})",
                    f"{sa['f1'][n - 1]:.4f}", f"{ba['f1'][n - 1]:.4f}", "never" if reached is None else str(reached),
                    _fmt(one["slotfill_seconds_to_target"], 1), f"{one['baseline_seconds_to_best']:.1f}", _fmt(one["ratio"], 3),
                ])
            best, last = summary["best_f1_mean"], summary["f1_at_epochs_mean"]
            table.append(["mean", f"{best['slotfill']:.4f}", f"{best['baseline']:.4f}", f"{last['slotfill']:.4f}",
                          f"{last['baseline']:.4f}", "", "", "", ""])
            widths = [max(len(r[i]) for r in table) for i in range(len(header))]
            lines += ["  " + "  ".join(cell.rjust(w) for cell, w in zip(r, widths)).rstrip() for r in table]
            lines.append(f"  time ratio over {len(runs)} seeds: median {_fmt(summary['ratio_median'], 3)}, "
                         f"worst {_fmt(summary['ratio_worst'], 3)} ({summary['reached']} of {len(runs)} seeds reach "
                         f"the baseline's best; '-': a seed that never does)")
    return "\n".join(lines)


def seed_list(text: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2]: distinct integers, for ``--accuracy-seeds``."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 0,1,2,3,4") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: a seed is repeated")
    return seeds


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m slotfill.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/airline",
                   help="JointBERT dataset folder, or atis/snips under $SLOTFILL_DATA (default: data/airline)")
    p.add_argument("--model", action="append", metavar="OVERRIDES",
                   help='extra Hydra overrides for slotfill\'s model, e.g. "model.hidden_size=100 model.cell=gru" (repeatable)')
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", "--repeats", dest="epochs", type=int, default=None,
                   help="measured epochs after one warm-up epoch; the median is reported (default 3, --quick 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--scaling", action=argparse.BooleanOptionalAction, default=True,
                   help="replicated-corpus and fixed-length scaling runs (default: on)")
    p.add_argument("--to-accuracy", nargs="?", type=int, const=ACCURACY_EPOCHS, default=None, metavar="EPOCHS",
                   help=f"also train the baseline EPOCHS epochs (default {ACCURACY_EPOCHS}) and slotfill up to "
                        f"{ACCURACY_OVERRUN}x as many, scoring test F1 after each: slotfill's time to the baseline's best")
    p.add_argument("--accuracy-seeds", type=seed_list, default=None, metavar="S,S,...",
                   help="with --to-accuracy: one pair of to-accuracy runs per seed (e.g. 0,1,2,3,4), "
                        "summarised over seeds (default: --seed)")
    p.add_argument("--accuracy-recipe", action="append", metavar="OVERRIDES",
                   help='with --to-accuracy: Hydra overrides for slotfill\'s to-accuracy runs only, e.g. '
                        '"trainer.lr=0.003 scheduler=plateau" (repeatable); the baseline keeps its settings')
    p.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=True,
                   help="also time slotfill's ONNX export served by onnxruntime at batch 1 (default: on; "
                        "skipped without the [export] extra)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for tests")
    p.add_argument("--verbose", action="store_true", help="slotfill's own log lines too")
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("batch_size", "threads", "epochs", "to_accuracy"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.accuracy_seeds is not None and args.to_accuracy is None:
        p.error("--accuracy-seeds needs --to-accuracy")
    if args.accuracy_recipe is not None and args.to_accuracy is None:
        p.error("--accuracy-recipe needs --to-accuracy")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[bench] %(message)s", stream=sys.stderr)
    if not args.verbose:
        for name in ("slotfill.training", "slotfill.data", "slotfill.evaluation"):
            logging.getLogger(name).setLevel(logging.ERROR)
    if args.worker is not None:
        run_worker(args.worker)
        return
    report = run_benchmark(args)
    print(json.dumps(report, indent=2) if args.json else format_table(report))


if __name__ == "__main__":
    main()
