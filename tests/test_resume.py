"""Never lose a run: exact resume after a stop signal or SIGKILL, atomic checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import slotfill.checkpoint as checkpoint_module
import slotfill.training as training
from slotfill.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from slotfill.errors import CheckpointError, SlotfillError
from slotfill.training import TrainingInterrupted, run
from tests.conftest import ROOT, compose_train


def _comparable(results: dict) -> dict:
    keep = {k: v for k, v in results.items() if k not in ("train_seconds", "seconds_per_epoch", "tokens_per_second", "resumed", "run_dir", "config")}
    keep["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in results["history"]]
    return keep


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_checkpoint(a)["model_state"], load_checkpoint(b)["model_state"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


TRAIN = ["vocab.unk_dropout=0.5", "vocab.slot_unk_dropout=0.2", "vocab.slot_swap=0.5", "model.dropout=0.3", "trainer.max_epochs=3", "trainer.patience=10",
         "trainer.batch_size=2", "scheduler=plateau"]


@pytest.mark.parametrize(
    "extra", [[], ["trainer.ema_decay=0.9"], ["threads=2"]], ids=["plain", "weight-average", "own-lstm-kernel"]
)
def test_stop_signal_saves_and_resume_is_exact(extra, tiny_corpus, tmp_path, monkeypatch, request):
    if "threads=2" in extra:  # lstm_kernel=auto then trains with slotfill's kernel, and the resumed run too
        request.getfixturevalue("own_lstm_kernel")
        request.addfinalizer(lambda: torch.set_num_threads(1))  # training sets the run's threads
    data = ["data=folder", f"data.dir={tiny_corpus}", *extra]
    reference = run(compose_train(data + TRAIN), tmp_path / "ref")

    calls = {"n": 0}
    real_clip = training.clip_grad_norm

    def clip_and_signal(params, max_norm):
        calls["n"] += 1
        if calls["n"] == 5:  # epoch 2, second batch: a SIGTERM arrives mid-step
            os.kill(os.getpid(), signal.SIGTERM)
        return real_clip(params, max_norm)

    monkeypatch.setattr(training, "clip_grad_norm", clip_and_signal)
    with pytest.raises(TrainingInterrupted, match=r"stopped by SIGTERM.*resume with: python train.py resume="):
        run(compose_train(data + TRAIN), tmp_path / "cut")
    monkeypatch.setattr(training, "clip_grad_norm", real_clip)
    last = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert (last["loop_state"]["epoch"], last["loop_state"]["batch_in_epoch"], last["loop_state"]["step"]) == (2, 2, 5)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored

    # As if cut by an earlier slotfill: options added since are absent from the saved config.
    del last["config"]["model"]["intent_slot_bias"], last["config"]["trainer"]["ensemble"]
    save_checkpoint(last, tmp_path / "cut" / "checkpoints" / "last.pt")
    resumed = run(compose_train([f"resume={tmp_path / 'cut'}"]), tmp_path / "elsewhere")
    assert resumed["resumed"] and resumed["run_dir"] == str(tmp_path / "cut")
    assert _comparable(resumed) == _comparable(reference)
    assert _same_weights(tmp_path / "cut" / "checkpoints" / "best.pt", tmp_path / "ref" / "checkpoints" / "best.pt")
    assert json.loads((tmp_path / "cut" / "results.json").read_text())["test"] == reference["test"]
    assert resumed["lstm_kernel"] == reference["lstm_kernel"] == ("slotfill" if "threads=2" in extra else "torch")

    with pytest.raises(SlotfillError, match="has finished; nothing to resume"):
        run(compose_train([f"resume={tmp_path / 'cut'}"]), tmp_path / "again")


def test_resume_auto_starts_fresh_without_checkpoint_and_rejects_weights_only(tiny_corpus, tmp_path):
    results = run(compose_train(["data=folder", f"data.dir={tiny_corpus}", "resume=auto"]), tmp_path / "run")
    assert results["resumed"] is False
    with pytest.raises(SlotfillError, match="no training state"):
        run(compose_train([f"resume={tmp_path / 'run' / 'checkpoints' / 'best.pt'}"]), tmp_path / "x")
    with pytest.raises(SlotfillError, match="no such run folder"):
        run(compose_train([f"resume={tmp_path / 'missing'}"]), tmp_path / "y")


# -- subprocess tests: the real scripts, killed for real ------------------------------------

SUB = ["model.hidden_size=16", "model.embedding_dim=16", "trainer.max_epochs=4", "trainer.patience=10",
       "trainer.batch_size=16", "trainer.checkpoint_every_n_steps=10", "device=cpu", "threads=1", "logger=none"]


def _train(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_mid_epoch_checkpoint(proc: subprocess.Popen, path: Path, epoch: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "training ended before it could be interrupted"
        if path.is_file():
            try:
                loop = torch.load(path, weights_only=True)["loop_state"]
            except Exception:  # noqa: BLE001 - a file being replaced is simply read again
                loop = None
            if loop and loop["epoch"] >= epoch and loop["batch_in_epoch"] > 0:
                return
        time.sleep(0.02)
    raise AssertionError("no mid-epoch checkpoint appeared")


def test_sigkill_mid_epoch_then_resume_gives_identical_results(tmp_path):
    ref = _train(*SUB, f"hydra.run.dir={tmp_path / 'ref'}")  # runs beside the cut run (one thread each)
    try:
        proc = _train(*SUB, f"hydra.run.dir={tmp_path / 'cut'}")
        _wait_for_mid_epoch_checkpoint(proc, tmp_path / "cut" / "checkpoints" / "last.pt", epoch=2)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        assert not (tmp_path / "cut" / "results.json").exists()
    except BaseException:
        ref.kill()  # leave no training process behind a failed test
        raise
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err

    again = _train(f"resume={tmp_path / 'cut'}", f"hydra.run.dir={tmp_path / 'resume-call'}")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert str(tmp_path / "cut") in out
    a = json.loads((tmp_path / "ref" / "results.json").read_text())
    b = json.loads((tmp_path / "cut" / "results.json").read_text())
    assert _comparable(a) == _comparable(b)
    assert _same_weights(tmp_path / "ref" / "checkpoints" / "best.pt", tmp_path / "cut" / "checkpoints" / "best.pt")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stop_signal_exits_nonzero_with_resume_command(signum, tmp_path):
    proc = _train(*SUB, f"hydra.run.dir={tmp_path / 'run'}")
    _wait_for_mid_epoch_checkpoint(proc, tmp_path / "run" / "checkpoints" / "last.pt", epoch=1)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert f"resume with: python train.py resume={tmp_path / 'run'}" in err
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert not state["loop_state"]["finished"]


# -- checkpoint files ------------------------------------------------------------------------

def test_interrupted_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    good = {"format_version": FORMAT_VERSION, "model_args": {}, "model_state": {"w": torch.ones(3)}, "vocab": {}, "tags": ["O"]}
    save_checkpoint(good, path)
    before = path.read_bytes()

    def crash_midway(obj, handle):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # the process dies in the middle of writing

    monkeypatch.setattr(checkpoint_module.torch, "save", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({**good, "model_state": {"w": torch.zeros(3)}}, path)
    assert path.read_bytes() == before
    assert torch.equal(load_checkpoint(path)["model_state"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


@pytest.mark.parametrize(
    "content,message",
    [
        ({"format_version": FORMAT_VERSION + 1, "model_args": {}, "model_state": {}, "vocab": {}, "tags": []}, "newer than this slotfill"),
        ({"format_version": 0, "model_args": {}, "model_state": {}, "vocab": {}, "tags": []}, "older format"),
        ({"weights": torch.ones(2)}, "not a slotfill checkpoint"),
    ],
)
def test_foreign_and_versioned_checkpoints_are_refused(content, message, tmp_path):
    path = tmp_path / "x.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_text_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_preemption_signal_saves_then_hands_over_to_the_previous_handler(tiny_corpus, tmp_path, monkeypatch):
    """On Slurm, submitit's SIGUSR1 handler requeues the job: it must run after our save."""
    seen: list[tuple[int, bool]] = []
    last = tmp_path / "run" / "checkpoints" / "last.pt"

    def requeue(signum, frame):  # stands in for submitit's handler
        seen.append((signum, last.is_file() and load_checkpoint(last)["loop_state"]["step"] == 3))

    previous = signal.signal(signal.SIGUSR1, requeue)
    try:
        calls = {"n": 0}
        real_clip = training.clip_grad_norm

        def clip_and_preempt(params, max_norm):
            calls["n"] += 1
            if calls["n"] == 3:
                os.kill(os.getpid(), signal.SIGUSR1)
            return real_clip(params, max_norm)

        monkeypatch.setattr(training, "clip_grad_norm", clip_and_preempt)
        with pytest.raises(TrainingInterrupted, match="SIGUSR1"):
            run(compose_train(["data=folder", f"data.dir={tiny_corpus}"] + TRAIN), tmp_path / "run")
        assert seen == [(signal.SIGUSR1, True)]
        assert signal.getsignal(signal.SIGUSR1) is requeue
    finally:
        signal.signal(signal.SIGUSR1, previous)
    resumed = run(compose_train(["resume=auto"]), tmp_path / "run")  # what a requeued job runs
    assert resumed["resumed"] and resumed["steps"] == 9
