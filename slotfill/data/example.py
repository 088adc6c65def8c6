"""The unit of data that flows from the readers to the model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One utterance.

    Attributes:
        tokens: the words, as read (normalisation happens later, in the vocabulary).
        tags: one BIO tag per token (``O``, ``B-type``, ``I-type``); ``None`` for raw text
            that is only to be tagged.
        intent: the utterance's intent label if the data has one (multi-intents keep their
            ``a#b`` form).
        source: ``"path:line"`` of the utterance, for messages.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...] | None = None
    intent: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.tags is not None and len(self.tags) != len(self.tokens):
            raise ValueError(
                f"{self.source or 'example'}: {len(self.tokens)} tokens but {len(self.tags)} tags"
            )

    def __len__(self) -> int:
        return len(self.tokens)
