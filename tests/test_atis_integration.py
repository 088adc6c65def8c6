"""Train and evaluate on the real ATIS benchmark in ../shared/datasets (skipped without it).

The quick test trains a small model for a few epochs; the slow one is the issue's
acceptance run: the default model must reach test slot F1 >= 0.945 at the best-dev epoch,
and evaluate.py must reproduce that number from the checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slotfill.cli import evaluate_checkpoint
from slotfill.training import train
from tests.conftest import SHARED, compose_eval, compose_train

pytestmark = pytest.mark.skipif(not (SHARED / "atis" / "train" / "seq.in").is_file(), reason="../shared/datasets/atis is absent")


@pytest.fixture
def shared_data(monkeypatch):
    monkeypatch.setenv("SLOTFILL_DATA", str(SHARED))


def _train_and_reevaluate(overrides: list[str], tmp_path: Path, small: bool = True) -> tuple[dict, float]:
    cfg = compose_train(["data=atis", *overrides], small=small)
    assert cfg.data.dir == str(SHARED / "atis")
    run = tmp_path / "run"
    results = train(cfg, run)
    ecfg = compose_eval([f"ckpt_path={run / 'checkpoints' / 'best.pt'}", "data=atis"])
    f1 = evaluate_checkpoint(ecfg, tmp_path / "eval")
    return results, f1


def test_atis_quick(shared_data, tmp_path):
    results, f1 = _train_and_reevaluate(
        ["trainer.max_epochs=4", "model.hidden_size=64", "model.embedding_dim=64", "model.dropout=0.2",
         "vocab.unk_dropout=0", "trainer.batch_size=32"], tmp_path
    )
    assert results["data"] == {"train": 4478, "dev": 500, "test": 893}
    assert results["test"]["f1"] > 0.80
    assert abs(f1 - results["test"]["f1"]) < 1e-4
    scored = json.loads((tmp_path / "eval" / "results.json").read_text())
    # the six test-only ATIS slot tags stay gold (misses), none is renamed or dropped
    assert len(scored["unseen_gold_tags"]) == 6
    assert "booking_class" in scored["test"]["per_slot"]


@pytest.mark.slow
def test_atis_default_model_reaches_0945(shared_data, tmp_path):
    # one torch thread: the setting of the README's table (float sums, and so the trajectory,
    # depend on the thread count); seed 0 gave test F1 0.9501 there
    results, f1 = _train_and_reevaluate(["logger=tensorboard", "threads=1"], tmp_path, small=False)
    print(f"ATIS default model: test slot F1 {results['test']['f1']:.4f} at best-dev epoch {results['best_epoch']}")
    assert results["test"]["f1"] >= 0.945
    assert abs(f1 - results["test"]["f1"]) < 1e-4
