"""``trainer.ensemble=k``: train k taggers with consecutive seeds and decode them as one.

Member ``i`` of an ensemble run with ``seed=s`` is exactly the run ``seed=s*k+i`` of the same
config (``trainer.ensemble=1``), trained into ``members/<i>/`` as any run is (early stopping
on its own dev F1, ``best.pt``, ``results.json``). So ensemble seeds 0, 1, 2 use member seeds
0..k-1, k..2k-1, 2k..3k-1: no model is shared between two ensembles, and the single-model
runs of a seed sweep are the members of the ensembles.

The run folder then holds the ensemble's ``checkpoints/best.pt`` (every member's weights;
``evaluate.py`` and :class:`~slotfill.inference.SlotTagger` load it as an
:class:`~slotfill.model.ensemble.Ensemble`), its dev and test predictions, and a
``results.json`` with the ensemble's scores and each member's. ``resume=<run dir>`` (alone:
the folder's saved config is used), or the same command again in the same folder, keeps the
members that finished and resumes the others from their ``last.pt``. A stop signal
(SIGINT/SIGTERM/SIGUSR1) lets the members in training save their state, also in worker
processes, and ends with :class:`EnsembleInterrupted` (exit code 128 + signal).

With ``trainer.ensemble_jobs=j`` > 1, j members train at once, each in its own process; with
``threads=0`` each gets ``cores // j`` threads (the result of a member depends on its thread
count, so pin ``threads`` to compare runs).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import slotfill
from slotfill.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from slotfill.compare import flatten
from slotfill.data.loading import load_splits
from slotfill.errors import SlotfillError
from slotfill.evaluation import score_both_decodings, write_predictions
from slotfill.inference import ensemble_of
from slotfill.machine import environment
from slotfill.model import lstm_kernel
from slotfill.model.encoder import use_kernel
from slotfill.vocab import LabelSet, TagSet, Vocab

log = logging.getLogger(__name__)

MEMBERS = "members"
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1")


class EnsembleInterrupted(SlotfillError):
    """A stop signal reached an ensemble run: finished members stay, the others saved their state."""

    def __init__(self, signum: int, output_dir: Path):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name}: finished members are kept, members in training saved their "
            f"state in {output_dir / MEMBERS}/<i>/checkpoints/last.pt; resume with: python train.py resume={output_dir}"
        )


def member_seed(seed: int, size: int, index: int) -> int:
    return seed * size + index


def member_config(cfg: DictConfig, index: int, threads: int | None = None) -> DictConfig:
    """The single-tagger config of member ``index``: resolved, ``trainer.ensemble=1``, its own seed."""
    member = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    member.seed = member_seed(cfg.seed, cfg.trainer.ensemble, index)
    member.trainer.ensemble = 1
    member.trainer.ensemble_jobs = 1
    member.resume = "auto"  # an interrupted member continues from its own last.pt
    if threads is not None:
        member.threads = threads
    return member


def _finished(cfg: DictConfig, member_dir: Path) -> dict[str, Any] | None:
    """The results of a member that already finished in ``member_dir`` with this config, else ``None``."""
    path = member_dir / "results.json"
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if results.get("status") != "finished":
        return None
    from slotfill.training import with_schema_defaults

    wanted = flatten({k: v for k, v in OmegaConf.to_container(cfg).items() if k != "resume"})
    # An option added to slotfill after the member finished is absent from its config; at its
    # default it changes nothing, so the member is kept.
    saved = OmegaConf.to_container(with_schema_defaults(OmegaConf.create(results.get("config") or {})))
    found = flatten({k: v for k, v in saved.items() if k != "resume"})
    differs = sorted(k for k in found.keys() | wanted.keys() if found.get(k, _ABSENT) != wanted.get(k, _ABSENT))
    if differs:
        raise SlotfillError(
            f"{member_dir}: holds a finished run of another config ({', '.join(differs[:3])}"
            f"{', ...' if len(differs) > 3 else ''} differ) -- train the ensemble into a new run folder"
        )
    return results


_ABSENT = object()


def _train_member(cfg: DictConfig, member_dir: Path) -> dict[str, Any]:
    from slotfill.training import run

    return _finished(cfg, member_dir) or run(cfg, member_dir)


_stop_received: int | None = None  # in a worker process: a stop signal arrived outside ``train``


def _record_stop(signum: int, frame: Any) -> None:
    global _stop_received
    _stop_received = signum


def _record_stop_signals() -> None:
    """Worker initializer: outside ``train`` (which handles them itself) a stop signal is only
    recorded, and the worker then starts no further member."""
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), _record_stop)


def _member_process(container: dict[str, Any], member_dir: str, index: int) -> tuple[str, Any]:
    """Runs in a worker process: one member, with its own log file; errors come back as text,
    a stop signal (after the member saved its state) as ``("interrupted", signum)``."""
    from slotfill.training import TrainingInterrupted

    if _stop_received is not None:
        return "interrupted", _stop_received
    member_dir_path = Path(member_dir)
    member_dir_path.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter(f"[%(asctime)s][member {index}][%(name)s][%(levelname)s] - %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handlers = (logging.StreamHandler(sys.stderr), logging.FileHandler(member_dir_path / "train.log"))
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    try:
        return "ok", _train_member(OmegaConf.create(container), member_dir_path)
    except TrainingInterrupted as err:
        return "interrupted", err.signum
    except SlotfillError as err:
        return "error", str(err)
    finally:  # the worker trains the next member with that member's handlers only
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()


@contextmanager
def _forward_stop_signals(pool: ProcessPoolExecutor, futures: list[Future]) -> Iterator[tuple[list[int], Callable[[], None]]]:
    """While the members train in ``pool``: a stop signal to this process cancels the members
    not yet started and is passed on to the workers, whose ``train`` saves its state and stops.
    Yields the list of signals received and the function that sends the first one again."""
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)  # logged by the caller: a handler must not re-enter a write
        for future in futures:
            future.cancel()  # only those not started
        resend()

    def resend() -> None:
        # The pool has no public handle on its workers. A worker still setting up a member
        # only records the signal, so it is sent again until every member has stopped.
        for process in list(getattr(pool, "_processes", {}).values()):
            if process.is_alive():
                os.kill(process.pid, received[0])

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {getattr(signal, n): signal.signal(getattr(signal, n), forward) for n in STOP_SIGNALS}
    try:
        yield received, resend
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def train_ensemble(cfg: DictConfig, output_dir: str | Path) -> dict[str, Any]:
    """Train (or finish training) every member, then score the ensemble; returns its ``results.json``."""
    from slotfill.sweep import available_cores
    from slotfill.training import TrainingInterrupted, check_writable, resolve_device

    output_dir = Path(output_dir)
    check_writable(output_dir)
    size, jobs = cfg.trainer.ensemble, min(cfg.trainer.ensemble_jobs, cfg.trainer.ensemble)
    dirs = [output_dir / MEMBERS / str(i) for i in range(size)]
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
    seeds = [member_seed(cfg.seed, size, i) for i in range(size)]
    log.info("ensemble of %d taggers (seeds %s), %d at a time, in %s", size, ", ".join(map(str, seeds)), jobs, output_dir / MEMBERS)
    members: list[dict[str, Any]] = []
    if jobs == 1:
        for i, member_dir in enumerate(dirs):
            log.info("ensemble member %d of %d (seed %d)", i + 1, size, seeds[i])
            try:
                members.append(_train_member(member_config(cfg, i), member_dir))
            except TrainingInterrupted as err:
                raise EnsembleInterrupted(err.signum, output_dir) from None
    else:
        threads = cfg.threads or max(1, available_cores() // jobs)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_record_stop_signals) as pool:
            futures = [
                pool.submit(_member_process, OmegaConf.to_container(member_config(cfg, i, threads)), str(d), i)
                for i, d in enumerate(dirs)
            ]
            finished: dict[int, dict[str, Any]] = {}
            with _forward_stop_signals(pool, futures) as (received, resend):
                pending = set(range(size))
                while pending:
                    # Wake up often: the signal handler runs only when this (main) thread does.
                    wait([futures[i] for i in pending], timeout=0.5, return_when=FIRST_COMPLETED)
                    if received:
                        resend()
                    for i in sorted(i for i in pending if futures[i].done()):
                        pending.discard(i)
                        try:
                            status, value = futures[i].result()
                        except CancelledError:
                            continue
                        except BrokenProcessPool:
                            raise SlotfillError(
                                f"ensemble member {i} ({dirs[i]}): its process died -- finished members are kept; "
                                f"resume with: python train.py resume={output_dir}"
                            ) from None
                        if status == "error":
                            raise SlotfillError(f"ensemble member {i} ({dirs[i]}): {value}")
                        if status == "interrupted":
                            received.append(value)
                        else:
                            finished[i] = value
            if received:
                log.warning("received %s: the members in training saved their state", signal.Signals(received[0]).name)
                raise EnsembleInterrupted(received[0], output_dir)
            members = [finished[i] for i in range(size)]
    return score_ensemble(cfg, output_dir, dirs, members, resolve_device(cfg.device))


def score_ensemble(
    cfg: DictConfig, output_dir: Path, dirs: list[Path], members: list[dict[str, Any]], device: torch.device
) -> dict[str, Any]:
    """Build the ensemble from the members' ``best.pt``, score dev and test, write the run folder."""
    states = [load_checkpoint(d / "checkpoints" / "best.pt", map_location=device) for d in dirs]
    first = states[0]
    model = ensemble_of(states, dirs).to(device)
    kernel = lstm_kernel.resolve(cfg.lstm_kernel, cfg.model.cell, device, cfg.threads, cfg.model.bidirectional)
    use_kernel(model, kernel)
    model.set_tag_constraints(first["tags"])
    vocab, tagset = Vocab.from_state(first["vocab"]), TagSet.from_state(first["tags"])
    labels = LabelSet.from_state(first["intents"]) if first.get("intents") else None
    splits = load_splits(cfg.data, ["dev", "test"])
    results: dict[str, Any] = {"status": "finished"}
    for name in ("dev", "test"):
        results[name], preds = score_both_decodings(
            model, splits[name], vocab, tagset, labels, cfg.trainer.eval_batch_size, device
        )
        write_predictions(splits[name], preds, output_dir / "predictions" / f"{name}.conll")
    save_checkpoint(
        {
            "format_version": FORMAT_VERSION,
            "slotfill_version": slotfill.__version__,
            "members": [{"model_args": s["model_args"], "model_state": s["model_state"]} for s in states],
            "vocab": first["vocab"],
            "tags": first["tags"],
            "intents": first.get("intents"),
            "config": OmegaConf.to_container(cfg, resolve=True),
            "lstm_kernel": kernel,
            "best_f1": results["dev"]["f1"],
        },
        output_dir / "checkpoints" / "best.pt",
    )
    seconds = sum(m["train_seconds"] for m in members)
    tokens = sum(m["tokens_per_second"] * m["train_seconds"] for m in members)
    epochs = sum(m["epochs"] for m in members)
    results.update(
        {
            "best_epoch": None,
            "epochs": epochs,
            "stop_reason": "ensemble",
            "train_seconds": seconds,
            "seconds_per_epoch": seconds / max(epochs, 1),
            "tokens_per_second": tokens / seconds if seconds > 0 else 0.0,
            "params": sum(m["params"] for m in members),
            "steps": sum(m["steps"] for m in members),
            "ensemble": {
                "size": len(members),
                "members": [
                    {
                        "dir": str(d), "seed": m["config"]["seed"], "dev_f1": m["dev"]["f1"], "test_f1": m["test"]["f1"],
                        "best_epoch": m["best_epoch"], "epochs": m["epochs"], "train_seconds": m["train_seconds"],
                    }
                    for d, m in zip(dirs, members)
                ],
            },
            "run_dir": str(output_dir),
            "data": {"dev": len(splits["dev"]), "test": len(splits["test"])},
            "device": str(device),
            "environment": environment(),  # of the decoding; each member's results.json has its own
            "slotfill_version": slotfill.__version__,
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
    )
    for m in results["ensemble"]["members"]:
        log.info("member seed %d: dev F1 %.4f  test F1 %.4f", m["seed"], m["dev_f1"], m["test_f1"])
    log.info("ensemble of %d: dev F1 %.4f  test F1 %.4f", len(members), results["dev"]["f1"], results["test"]["f1"])
    (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results
