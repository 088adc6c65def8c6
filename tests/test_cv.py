"""k-fold cross-validation: data.cv_folds / data.cv_fold cut train and dev from the train split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slotfill.cli import evaluate_checkpoint
from slotfill.compare import markdown, summarize
from slotfill.config import validate_data
from slotfill.data.loading import fold_indices, load_splits
from slotfill.errors import ConfigError, DataError
from slotfill.training import train
from tests.conftest import TINY_TEST, TINY_TRAIN, compose_eval, compose_train, write_jointbert


@given(n=st.integers(1, 60), folds=st.integers(2, 7), seed=st.integers(0, 3))
def test_folds_partition_the_data(n, folds, seed):
    held_out = []
    for fold in range(folds):
        train, held = fold_indices(n, folds, fold, seed)
        assert sorted(train + held) == list(range(n)), "each fold's two parts cover every utterance once"
        assert train == sorted(train) and held == sorted(held), "file order kept"
        held_out.append(held)
    assert sorted(i for held in held_out for i in held) == list(range(n)), "every utterance is held out exactly once"
    sizes = [len(h) for h in held_out]
    assert max(sizes) - min(sizes) <= 1


def test_folds_depend_on_cv_seed_only():
    assert fold_indices(50, 5, 1, 0) == fold_indices(50, 5, 1, 0)
    assert fold_indices(50, 5, 1, 0) != fold_indices(50, 5, 1, 1)
    with pytest.raises(ValueError):
        fold_indices(10, 5, 5)
    with pytest.raises(ValueError):
        fold_indices(10, 1, 0)


def _corpus(tmp_path: Path) -> Path:
    # 12 distinct training utterances; the dev folder holds a sentence that must never be read.
    train = [(f"{text} {i}", f"{tags} O", intent) for i in range(2) for text, tags, intent in TINY_TRAIN]
    return write_jointbert(tmp_path / "cv", {"train": train, "dev": [("never read", "O O", "atis_flight")], "test": TINY_TEST})


def test_load_splits_holds_out_one_fold_of_train(tmp_path):
    root = _corpus(tmp_path)
    full = load_splits(compose_train(["data=folder", f"data.dir={root}"]).data)
    assert [list(ex.tokens) for ex in full["dev"]] == [["never", "read"]]
    seen_dev = []
    for fold in range(3):
        data = compose_train(["data=folder", f"data.dir={root}", "data.cv_folds=3", f"data.cv_fold={fold}"]).data
        splits = load_splits(data)
        train_texts = [" ".join(ex.tokens) for ex in splits["train"]]
        dev_texts = [" ".join(ex.tokens) for ex in splits["dev"]]
        assert len(train_texts) == 8 and len(dev_texts) == 4
        assert not set(train_texts) & set(dev_texts)
        assert sorted(train_texts + dev_texts) == sorted(" ".join(ex.tokens) for ex in full["train"])
        assert [ex.tokens for ex in splits["test"]] == [ex.tokens for ex in full["test"]]
        assert load_splits(data, ["dev"])["dev"] == splits["dev"], "the dev split alone is the same fold"
        seen_dev += dev_texts
    assert sorted(seen_dev) == sorted(" ".join(ex.tokens) for ex in full["train"])


def test_cross_validation_needs_no_dev_split(tmp_path):
    root = _corpus(tmp_path)
    (root / "dev" / "seq.in").unlink()
    data = compose_train(["data=folder", f"data.dir={root}", "data.cv_folds=2"]).data
    assert len(load_splits(data)["dev"]) == 6


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["data.cv_folds=1"], "data.cv_folds=1 must be >= 2"), (["data.cv_folds=5", "data.cv_fold=5"], "data.cv_fold=5 must be in [0, 4]")],
)
def test_bad_fold_settings_are_config_errors(tiny_corpus, overrides, message):
    data = compose_train(["data=folder", f"data.dir={tiny_corpus}", *overrides]).data
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_data(data)


def test_more_folds_than_utterances_names_the_file(tiny_corpus):
    data = compose_train(["data=folder", f"data.dir={tiny_corpus}", "data.cv_folds=7"]).data
    with pytest.raises(DataError, match=r"train.*data.cv_folds=7 needs at least 7 training utterances, found 6"):
        load_splits(data)


def test_a_fold_run_trains_scores_and_evaluates_on_its_fold(tmp_path):
    root = _corpus(tmp_path)
    runs = tmp_path / "sweep"
    for fold in (0, 1):
        cfg = compose_train(["data=folder", f"data.dir={root}", "data.cv_folds=2", f"data.cv_fold={fold}", "trainer.max_epochs=1"])
        results = train(cfg, runs / str(fold))
        assert results["data"] == {"train": 6, "dev": 6, "test": len(TINY_TEST)}
        assert results["config"]["data"]["cv_fold"] == fold
        # evaluate.py reads the fold back from the checkpoint's config
        f1 = evaluate_checkpoint(compose_eval([f"ckpt_path={runs / str(fold)}", "split=dev"]), tmp_path / f"eval{fold}")
        assert f1 == pytest.approx(results["dev"]["f1"], abs=1e-12)
    summary = summarize(runs)
    assert len(summary.rows) == 1, "the folds of one configuration are one row"
    assert summary.rows[0]["seeds"] == ["0/f0", "0/f1"]
    dev = [json.loads((runs / str(f) / "results.json").read_text())["dev"]["f1"] for f in (0, 1)]
    assert summary.rows[0]["dev_f1_mean"] == pytest.approx(sum(dev) / 2)
    assert "Runs marked seed/fN are cross-validation folds" in markdown(summary)
