"""From a data config to examples: picks the reader, downloads presets when missing."""

from __future__ import annotations

import logging
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


def load_splits(data: Any, splits: Sequence[str] = SPLITS) -> dict[str, list[Example]]:
    """Read the requested splits of the dataset that ``data`` (a ``DataConfig``) describes."""
    if data.format == "jointbert":
        root = Path(data.dir)
        if data.download and not root.exists():
            ensure_dataset(data.download, root)
        out = read_jointbert(root, tuple(splits), bio_repair=data.bio_repair)
    else:
        out = {split: read_path(data, data[split]) for split in splits}
    for split in splits:
        if not out[split]:
            where = Path(data.dir) / split if data.format == "jointbert" else Path(data[split])
            raise DataError(where, None, f"the {split} split holds no utterance", "check the file")
    log.info(
        "data %s: %s",
        getattr(data, "name", data.format),
        ", ".join(f"{split} {len(out[split])} utterances" for split in splits),
    )
    return out
