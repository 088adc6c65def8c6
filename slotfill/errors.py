"""Errors a user can act on.

Every exception here is printed by the entry points as a single line (no traceback unless
``HYDRA_FULL_ERROR=1``), so its message must say what is wrong and what to do.
"""

from __future__ import annotations

from pathlib import Path


class SlotfillError(Exception):
    """A problem with the user's input, config or files; the message is shown as is."""


class DataError(SlotfillError):
    """A data file cannot be read as asked.

    ``str(err)`` is ``"<path>:<line>: <problem>"`` (the line is omitted when the problem
    concerns the whole file), optionally followed by ``" -- <hint>"``.
    """

    def __init__(self, path: str | Path, line: int | None, problem: str, hint: str | None = None):
        self.path = str(path)
        self.line = line
        self.problem = problem
        self.hint = hint
        where = self.path if line is None else f"{self.path}:{line}"
        message = f"{where}: {problem}"
        if hint:
            message += f" -- {hint}"
        super().__init__(message)


class ConfigError(SlotfillError):
    """An invalid configuration value, caught before any data is read."""


class CheckpointError(SlotfillError):
    """A checkpoint file that is missing, damaged, foreign or of an unknown format."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
