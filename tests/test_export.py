"""Export for serving: the exported model and its runner, without slotfill, tag as slotfill does."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slotfill.cli import checkpoint_arg
from slotfill.errors import SlotfillError
from slotfill.export import FORMATS, MODEL_FILES, check_format, export_checkpoint
from slotfill.inference import SlotTagger
from tests.conftest import ROOT, compose_train

AIRLINE = ROOT / "data" / "airline"
# One thread: on a busy 2-core machine two threads can make these tiny steps 50x slower.
SMALL = [
    "data=airline", f"data.dir={AIRLINE}", "trainer.max_epochs=2", "trainer.batch_size=32", "trainer.lr=0.01",
    "model.hidden_size=16", "model.embedding_dim=12", "model.dropout=0.1", "trainer.eval_batch_size=512", "threads=1",
]
# Three small models that between them cover every cell, one and two directions, two layers,
# the CRF head, BIO-constrained decoding, character features, a context window, no intent
# head, a (training-only) language-model head, the intent-conditioned slot bias, and each
# normaliser setting; and an ensemble of two CRF taggers with characters and intents (the
# shape of atis_ensemble and snips_ensemble), exported as one network.
MODELS = {
    "softmax": ["model.cell=lstm", "vocab.digits=zero", "model.lm_loss_weight=0.2", "model.intent_slot_bias=true"],
    "crf": [
        "model.cell=gru", "model.head=crf", "model.constrained_decoding=true", "vocab.digits=token",
        "vocab.lowercase=false", "model.intent=off", "model.attention=true",
    ],
    "chars": [
        "model.cell=rnn", "model.bidirectional=false", "model.num_layers=2", "model.char_filters=8",
        "model.char_dim=5", "model.context_window=1",
    ],
    "ensemble": [
        "trainer.ensemble=2", "model.head=crf", "model.constrained_decoding=true", "model.char_filters=8",
        "model.char_dim=5",
    ],
}
# Beyond the test split: case, digits, unseen words and characters, one word, empty lines.
EXTRA = [
    "Show FLIGHTS from Zürich to Boston on 12/25",
    "flights from boston to denver at 1030 pm on flight 747",
    "denver",
    "",
    "   ",
    "ATL 2 SFO fares under 300 dollars",
    "a-very-long-hyphenated-word-of-more-than-twenty-four-characters to dallas",
]
RUNTIME_MODULES = {"onnx": ("numpy", "onnxruntime"), "torchscript": ("numpy", "torch")}


def sentences() -> list[str]:
    return (AIRLINE / "test" / "seq.in").read_text(encoding="utf-8").splitlines() + EXTRA


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """``checkpoint(name)``: a small model of ``MODELS[name]`` trained on data/airline (once)."""
    from slotfill.training import run

    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            run_dir = tmp_path_factory.mktemp(f"export-{name}")
            threads = torch.get_num_threads()
            try:
                run(compose_train(SMALL + MODELS[name], small=False), run_dir)
            finally:
                torch.set_num_threads(threads)  # threads=1 must not outlive the fixture
            cache[name] = run_dir / "checkpoints" / "best.pt"
        return cache[name]

    return get


def require(fmt: str) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")


def clean_env(tmp_path: Path, fmt: str) -> dict[str, str]:
    """An environment with only the runtime's packages importable, and slotfill blocked.

    The runner runs with ``python -S`` (no site-packages, so no editable-install hook) and a
    PYTHONPATH of the folders that hold numpy and the runtime, after a stub ``slotfill`` that
    raises on import, in case slotfill is installed in those folders too.
    """
    stub = tmp_path / "no-slotfill" / "slotfill"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "__init__.py").write_text('raise ImportError("the export runner must not import slotfill")\n')
    paths = [str(stub.parent)]
    for module in RUNTIME_MODULES[fmt]:
        folder = str(Path(importlib.util.find_spec(module).origin).parents[1])
        if folder not in paths:
            paths.append(folder)
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(paths), "PYTHONNOUSERSITE": "1"}


def run_runner(export_dir: Path, env: dict[str, str], *args: str, stdin: str | None = None) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-S", "predict.py", *args], cwd=export_dir, env=env, input=stdin,
        text=True, capture_output=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_runner_tags_like_slotfill_without_slotfill(fmt, name, checkpoint, tmp_path):
    require(fmt)
    ckpt = checkpoint(name)
    out = export_checkpoint(ckpt, fmt, tmp_path / "export")
    files = {p.name for p in out.iterdir()}
    assert files == {MODEL_FILES[fmt], "vocab.json", "tags.json", "predict.py", "export.json", "README.md"}
    meta = json.loads((out / "export.json").read_text())
    assert meta["format"] == fmt and meta["source_checkpoint"] == str(ckpt.resolve())
    assert [i["name"] for i in meta["inputs"]] == (["words", "chars"] if name in ("chars", "ensemble") else ["words"])
    assert meta["members"] == (2 if name == "ensemble" else 1)
    assert [o["name"] for o in meta["outputs"]] == (["slot_scores"] if name == "crf" else ["slot_scores", "intent_scores"])

    env = clean_env(tmp_path, fmt)
    blocked = subprocess.run([sys.executable, "-S", "-c", "import slotfill"], cwd=out, env=env, capture_output=True, text=True)
    assert blocked.returncode != 0 and "ImportError" in blocked.stderr

    tagger = SlotTagger.load(ckpt)
    texts = sentences()
    expected = tagger.tag(texts)
    got = run_runner(out, env, stdin="\n".join(texts) + "\n")
    assert len(got) == len(expected) == len(texts)
    mismatches = [(e["text"], g["tags"], e["tags"]) for g, e in zip(got, expected) if g != e]
    assert not mismatches, f"{len(mismatches)} of {len(texts)} differ, first: {mismatches[0]}"
    assert any(r["slots"] for r in expected)  # the model tags something
    assert ("intent" in got[0]) == (name != "crf")

    # the other decoding, sentences as arguments
    constrained = not tagger.model.constrained_decoding
    some = texts[:40] + EXTRA[:3]
    flag = "--constrained" if constrained else "--unconstrained"
    assert run_runner(out, env, flag, *some) == tagger.tag(some, constrained=constrained)


def slotfill_env() -> dict[str, str]:
    """This environment, with this checkout importable from any folder and Hydra's short errors."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def test_cli_writes_the_default_folder_and_replaces_an_earlier_export(checkpoint, tmp_path):
    ckpt = checkpoint("softmax")
    proc = subprocess.run(
        [sys.executable, "-m", "slotfill.export", f"ckpt_path={ckpt.parent.parent}", "format=torchscript"],
        cwd=tmp_path, text=True, capture_output=True, timeout=300, env=slotfill_env(),
    )
    assert proc.returncode == 0, proc.stderr
    out = ckpt.parent / "export-torchscript"
    assert str(out) in proc.stdout and (out / "model.pt").is_file() and (out / "predict.py").is_file()
    assert list(tmp_path.iterdir()) == []  # Hydra wrote nothing into the working folder

    if importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime"):
        export_checkpoint(ckpt, "onnx", out)  # into the same folder: the TorchScript model goes
        assert (out / "model.onnx").is_file() and not (out / "model.pt").exists()
        assert json.loads((out / "export.json").read_text())["format"] == "onnx"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".export")]  # no staging left


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), proc.stderr
    return errors[0]


def test_bad_or_missing_ckpt_path_is_a_one_line_error(tmp_path):
    env = slotfill_env()
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "slotfill.export", *args], cwd=ROOT, env=env, text=True, capture_output=True, timeout=300
    )
    missing = one_line_error(run(f"ckpt_path={tmp_path / 'nope' / 'best.pt'}", "format=torchscript"))
    assert "checkpoint not found" in missing and "nope" in missing
    assert "ckpt_path is required" in one_line_error(run("format=torchscript"))
    assert not (tmp_path / "nope").exists()


def test_other_errors_say_what_to_do(checkpoint, tmp_path, monkeypatch):
    with pytest.raises(SlotfillError, match="format='tflite' is unknown"):
        export_checkpoint(tmp_path / "x.pt", "tflite")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(SlotfillError, match="garbage.pt: "):
        export_checkpoint(garbage, "torchscript")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(SlotfillError, match="not a slotfill export folder"):
        export_checkpoint(checkpoint("softmax"), "torchscript", taken)
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(SlotfillError, match=r'onnxruntime: pip install -e "\.\[export\]"'):
        check_format("onnx")


def test_export_config_composes_against_its_schema():
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    from tests.conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("export", overrides=["ckpt_path=x.pt"])
        assert (cfg.ckpt_path, cfg.format, cfg.out_dir) == ("x.pt", "onnx", None)
        listed = compose("export", overrides=["ckpt_path=[a/run0,a/run1]", "out_dir=y"])
        assert checkpoint_arg(listed.ckpt_path) == ["a/run0", "a/run1"] and checkpoint_arg(cfg.ckpt_path) == "x.pt"
        with pytest.raises(ConfigCompositionException):
            compose("export", overrides=["ckpt_path=x.pt", "outdir=y"])
