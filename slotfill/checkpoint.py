"""Self-describing checkpoints: plain values only, written atomically.

A checkpoint is a dict of tensors, lists, numbers and strings, so ``torch.load`` with
``weights_only=True`` reads it and opening one can never run code. It holds everything
needed to rebuild the model and its input pipeline: constructor arguments, vocabulary, tag
and intent sets, the normalisation, and the resolved training config.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from slotfill.errors import CheckpointError, first_line

FORMAT_VERSION = 1
# The oldest format that load_checkpoint still reads (migrating it to FORMAT_VERSION when
# they differ); 1 is the first format, so there is nothing to migrate yet.
MIN_FORMAT_VERSION = 1
_REQUIRED = ("format_version", "vocab", "tags")
_MODEL = ("model_args", "model_state")  # at the top, or in each of an ensemble's "members"


def _has_model(state: dict[str, Any]) -> bool:
    if "members" in state:
        members = state["members"]
        return isinstance(members, list) and bool(members) and all(
            isinstance(m, dict) and all(key in m for key in _MODEL) for m in members
        )
    return all(key in state for key in _MODEL)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically: a crash mid-write leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a slotfill checkpoint safely, or raise :class:`CheckpointError` saying why not."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "best.pt", path / "best.pt"):
            if candidate.is_file():
                path = candidate
                break
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found -- pass ckpt_path=<run dir>/checkpoints/best.pt")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = first_line(err)
        raise CheckpointError(
            f"{path}: refused to load: the file holds objects other than plain tensors and values "
            f"({first}); slotfill never unpickles code -- use a checkpoint written by slotfill"
        ) from None
    except Exception as err:  # noqa: BLE001 - any failure to parse means the file is not ours
        first = first_line(err)
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or not a PyTorch file: {first}) -- "
            "use <run dir>/checkpoints/best.pt or last.pt of a finished slotfill run"
        ) from None
    if not isinstance(state, dict) or any(key not in state for key in _REQUIRED) or not _has_model(state):
        raise CheckpointError(f"{path}: a PyTorch file, but not a slotfill checkpoint (keys missing)")
    version = state["format_version"]
    if isinstance(version, int) and version < MIN_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is an older format that this slotfill cannot "
            f"migrate (it reads {MIN_FORMAT_VERSION} to {FORMAT_VERSION}) -- retrain, or evaluate it with "
            f"the slotfill version that wrote it ({state.get('slotfill_version', '?')})"
        )
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this slotfill understands "
            f"({FORMAT_VERSION}) -- upgrade slotfill (the file says it was written by "
            f"slotfill {state.get('slotfill_version', '?')})"
        )
    return state
