"""The two scripts as a user runs them: one-line errors, exit codes, JSON tagging."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT

TINY = ["model.hidden_size=8", "model.embedding_dim=8", "trainer.max_epochs=2", "trainer.batch_size=4", "device=cpu"]


def run(script: str, *args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=ROOT, input=stdin, text=True,
        capture_output=True, env=full_env, timeout=300,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    from tests.conftest import TINY_DEV, TINY_TEST, TINY_TRAIN, write_jointbert

    root = tmp_path_factory.mktemp("cli")
    corpus = write_jointbert(root / "corpus", {"train": TINY_TRAIN, "dev": TINY_DEV, "test": TINY_TEST})
    proc = run("train.py", "data=folder", f"data.dir={corpus}", f"hydra.run.dir={root / 'run'}", *TINY)
    assert proc.returncode == 0, proc.stderr
    assert "test slot F1" in proc.stdout and str(root / "run") in proc.stdout
    return root / "run"


def test_train_then_evaluate_reproduces_test_f1(trained_run: Path, tmp_path: Path):
    results = json.loads((trained_run / "results.json").read_text())
    proc = run("evaluate.py", f"ckpt_path={trained_run / 'checkpoints' / 'best.pt'}", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    scored = json.loads((tmp_path / "results.json").read_text())
    assert abs(scored["test"]["f1"] - results["test"]["f1"]) < 1e-4
    assert "micro avg" in proc.stdout and "test: slot F1" in proc.stdout
    assert (tmp_path / "predictions" / "test.conll").is_file()


def test_text_and_stdin_prediction_print_json(trained_run: Path, tmp_path: Path):
    ckpt = f"ckpt_path={trained_run / 'checkpoints' / 'best.pt'}"
    proc = run("evaluate.py", ckpt, "text=show flights from boston to denver", f"hydra.run.dir={tmp_path / 'a'}")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["tokens"] == ["show", "flights", "from", "boston", "to", "denver"] and len(out["tags"]) == 6
    proc = run("evaluate.py", ckpt, "text=-", f"hydra.run.dir={tmp_path / 'b'}", stdin="flights to dallas\n\nfare from boston\n")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert [len(x["tokens"]) for x in lines] == [3, 0, 3]


def test_the_command_lines_start_without_torch_or_seqeval():
    # A config error is reported before the ~2 s of torch and scikit-learn imports: the package
    # and the command-line module import neither, and the metrics import seqeval when scoring.
    code = (
        "import sys, slotfill, slotfill.cli, slotfill.metrics\n"
        "heavy = sorted(m for m in ('torch', 'seqeval', 'sklearn') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "from slotfill import SlotTagger\n"
        "assert SlotTagger.__module__ == 'slotfill.inference'\n"
        "assert slotfill.metrics.slot_scores([['B-a']], [['B-a']])['f1'] == 1.0\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_console_script_module_is_equivalent():
    from slotfill.cli import conf_dir, eval_main, train_main

    assert Path(conf_dir()) == ROOT / "conf"
    assert callable(train_main) and callable(eval_main)


def test_missing_checkpoint_is_one_line(tmp_path):
    proc = run("evaluate.py", f"ckpt_path={tmp_path / 'nope.pt'}", f"hydra.run.dir={tmp_path / 'e'}")
    assert_one_line_error(proc, "nope.pt", "checkpoint not found")


def test_truncated_checkpoint_is_one_line(trained_run, tmp_path):
    data = (trained_run / "checkpoints" / "best.pt").read_bytes()
    bad = tmp_path / "cut.pt"
    bad.write_bytes(data[: len(data) // 2])
    proc = run("evaluate.py", f"ckpt_path={bad}", f"hydra.run.dir={tmp_path / 'e'}")
    assert_one_line_error(proc, "cut.pt", "not a readable checkpoint")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED_MARKER",))


def test_checkpoint_with_pickled_code_is_refused_and_nothing_runs(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "payload": _Exploit()}, evil)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), f"ckpt_path={evil}", f"hydra.run.dir={tmp_path / 'e'}"],
        cwd=tmp_path, text=True, capture_output=True, timeout=120,
    )
    assert_one_line_error(proc, "evil.pt", "refused to load")
    assert not (tmp_path / "PWNED_MARKER").exists()


def test_bad_data_is_one_line_naming_file_and_line(tmp_path):
    from tests.conftest import TINY_DEV, TINY_TEST, TINY_TRAIN, write_jointbert

    corpus = write_jointbert(tmp_path / "c", {"train": TINY_TRAIN, "dev": TINY_DEV, "test": TINY_TEST})
    lines = (corpus / "train" / "seq.out").read_text().splitlines()
    lines[2] = lines[2] + " O"
    (corpus / "train" / "seq.out").write_text("\n".join(lines) + "\n")
    proc = run("train.py", "data=folder", f"data.dir={corpus}", f"hydra.run.dir={tmp_path / 'r'}", *TINY)
    assert_one_line_error(proc, str(corpus / "train" / "seq.out") + ":3")


def test_config_error_is_one_line(tmp_path):
    proc = run("train.py", "model.cell=transformer", f"hydra.run.dir={tmp_path / 'r'}")
    assert_one_line_error(proc, "model.cell='transformer' is unknown")


def test_full_error_shows_traceback(tmp_path):
    proc = run("train.py", "model.cell=transformer", f"hydra.run.dir={tmp_path / 'r'}", env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_missing_required_value_is_one_line(tmp_path):
    proc = run("evaluate.py", f"hydra.run.dir={tmp_path / 'e'}")
    assert_one_line_error(proc, "ckpt_path is required")
    proc = run("train.py", "data=folder", f"hydra.run.dir={tmp_path / 't'}")
    assert_one_line_error(proc, "data.dir")
