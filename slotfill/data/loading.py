"""From a data config to examples: picks the reader, downloads presets when missing."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slotfill.data.download import ensure_dataset
from slotfill.data.example import Example
from slotfill.data.readers import read_conll, read_iob, read_jointbert, read_jointbert_split
from slotfill.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


def read_path(data: Any, path: str | Path) -> list[Example]:
    """Read one file (``conll``/``iob``) or one split folder (``jointbert``) in ``data.format``."""
    path = Path(path)
    if data.format == "jointbert":
        if not path.is_dir():
            raise DataError(path, None, "not a folder", "a JointBERT split is a folder holding seq.in and seq.out")
        return read_jointbert_split(path, bio_repair=data.bio_repair)
    if not path.is_file():
        raise DataError(path, None, "file not found", "check the path in the data config")
    if data.format == "conll":
        delimiter = data.delimiter if data.delimiter else None
        return read_conll(
            path, token_column=data.token_column, tag_column=data.tag_column,
            delimiter=delimiter, bio_repair=data.bio_repair,
        )
    if data.format == "iob":
        return read_iob(path, bio_repair=data.bio_repair)
    raise ValueError(f"unknown data format {data.format!r}")


def cv_folds(data: Any) -> int:
    """``data.cv_folds`` (0: no cross-validation); configs saved before the option have none.

    The one reading of that key, for :func:`source_splits`, :func:`load_splits` and
    :func:`slotfill.config.validate_data`.
    """
    return int(getattr(data, "cv_folds", 0) or 0)


def source_splits(data: Any, splits: Sequence[str]) -> tuple[str, ...]:
    """The dataset splits that reading ``splits`` takes: ``dev`` comes from ``train`` under
    cross-validation (``data.cv_folds``); order kept, each once."""
    if not cv_folds(data):
        return tuple(splits)
    return tuple(dict.fromkeys("train" if s == "dev" else s for s in splits))


def split_path(data: Any, split: str) -> Path:
    """Where one split is read from: its folder (``jointbert``) or its file."""
    return Path(data.dir) / split if data.format == "jointbert" else Path(data[split])


def fold_indices(n: int, folds: int, fold: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """Training and held-out positions of fold ``fold`` of ``folds`` over ``n`` utterances.

    The positions are shuffled once with their own generator (``seed``), independent of the
    training seed, and fold i takes every ``folds``-th of them from the i-th: the folds
    partition the data, differ in size by at most one, and each run with the same ``n``,
    ``folds`` and ``seed`` holds out the same utterances. Both lists keep the file order.
    """
    if folds < 2 or not 0 <= fold < folds:
        raise ValueError(f"fold {fold} of {folds}: need folds >= 2 and 0 <= fold < folds")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held = set(order[fold::folds])
    return [i for i in range(n) if i not in held], sorted(held)


def load_splits(data: Any, splits: Sequence[str] = SPLITS) -> dict[str, list[Example]]:
    """Read the requested splits of the dataset that ``data`` (a ``DataConfig``) describes.

    With ``data.cv_folds`` = k >= 2, ``train`` and ``dev`` are cut from the train split (fold
    ``data.cv_fold`` is the dev split, the other k - 1 folds the training data; see
    :func:`fold_indices`); the dataset's own dev split is not read, and test is as it is.
    """
    k = cv_folds(data)
    wanted = source_splits(data, splits)
    if data.format == "jointbert":
        root = Path(data.dir)
        if data.download and not root.exists():
            ensure_dataset(data.download, root)
        out = read_jointbert(root, wanted, bio_repair=data.bio_repair)
    else:
        out = {split: read_path(data, data[split]) for split in wanted}
    for split in wanted:
        if not out[split]:
            raise DataError(split_path(data, split), None, f"the {split} split holds no utterance", "check the file")
    if k and "train" in out:
        pool = out.pop("train")
        if len(pool) < k:
            raise DataError(split_path(data, "train"), None, f"data.cv_folds={k} needs at least {k} training utterances, found {len(pool)}", "lower data.cv_folds")
        train, held = fold_indices(len(pool), k, data.cv_fold, data.cv_seed)
        log.info(
            "cross-validation: fold %d of %d (cv_seed %d) holds out %d of the %d training utterances as the dev split",
            data.cv_fold, k, data.cv_seed, len(held), len(pool),
        )
        for split, rows in (("train", train), ("dev", held)):
            if split in splits:
                out[split] = [pool[i] for i in rows]
    out = {split: out[split] for split in splits}
    log.info(
        "data %s: %s",
        getattr(data, "name", data.format),
        ", ".join(f"{split} {len(out[split])} utterances" for split in splits),
    )
    return out
