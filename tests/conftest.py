"""Shared fixtures: the real conf/ composed and shrunk, and tiny hand-made corpora."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

import slotfill.config  # noqa: F401  (registers the schemas)

# The tests train tiny models, which gain nothing from intra-op threads; on a busy or 2-core
# machine two threads per process spin against each other and run many times slower. Tests
# that measure threading set it themselves; subprocesses inherit OMP_NUM_THREADS.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED = ROOT.parent / "shared" / "datasets"

TINY_TRAIN = [
    ("show flights from boston to denver", "O O O B-fromloc.city_name O B-toloc.city_name", "atis_flight"),
    ("flights to new york from dallas", "O O B-toloc.city_name I-toloc.city_name O B-fromloc.city_name", "atis_flight"),
    ("what is the fare from denver to boston", "O O O O O B-fromloc.city_name O B-toloc.city_name", "atis_airfare"),
    ("list flights from dallas to boston on monday", "O O O B-fromloc.city_name O B-toloc.city_name O B-depart_date.day_name", "atis_flight"),
    ("cheapest fare to dallas", "B-cost_relative O O B-toloc.city_name", "atis_airfare"),
    ("flights from new york to denver", "O O B-fromloc.city_name I-fromloc.city_name O B-toloc.city_name", "atis_flight"),
]
TINY_DEV = [
    ("flights from boston to dallas", "O O B-fromloc.city_name O B-toloc.city_name", "atis_flight"),
    ("fare from dallas to new york", "O O B-fromloc.city_name O B-toloc.city_name I-toloc.city_name", "atis_airfare"),
]
TINY_TEST = [
    ("show flights from denver to boston on monday", "O O O B-fromloc.city_name O B-toloc.city_name O B-depart_date.day_name", "atis_flight"),
    ("flights from denver in first class", "O O B-fromloc.city_name O B-class_type I-class_type", "atis_flight"),
]


def write_jointbert(root: Path, splits: dict[str, list[tuple[str, str, str]]]) -> Path:
    for split, rows in splits.items():
        d = root / split
        d.mkdir(parents=True, exist_ok=True)
        (d / "seq.in").write_text("".join(r[0] + "\n" for r in rows), encoding="utf-8")
        (d / "seq.out").write_text("".join(r[1] + "\n" for r in rows), encoding="utf-8")
        (d / "label").write_text("".join(r[2] + "\n" for r in rows), encoding="utf-8")
    return root


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A six-utterance JointBERT folder (test has a slot type unseen in training)."""
    return write_jointbert(tmp_path / "tiny", {"train": TINY_TRAIN, "dev": TINY_DEV, "test": TINY_TEST})


@pytest.fixture(scope="session")
def own_lstm_kernel():
    """slotfill's C++ LSTM kernel, built (~15 s the first time on a machine) and loaded; the
    tests that need it are skipped only where there is no C++ compiler to build it."""
    import shutil

    from slotfill.model import lstm_kernel

    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler: slotfill's LSTM kernel cannot be built here (lstm_kernel=auto falls back)")
    lstm_kernel.load()


def compose_train(overrides: list[str] | None = None, small: bool = True):
    """The real train config on the CPU, shrunk (unless ``small=False``) to run in a second."""
    base = ["device=cpu", "logger=none"]
    if small:
        base += ["trainer.max_epochs=2", "model.hidden_size=16", "model.embedding_dim=12", "trainer.batch_size=4"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=base + (overrides or []))


def compose_eval(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("eval", overrides=["device=cpu", *overrides])
