"""Token normalisation, word vocabulary and tag set.

Both are built from the training split only and travel inside the checkpoint as plain lists,
so evaluation and prediction normalise and encode exactly as training did.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

PAD = "<pad>"
UNK = "<unk>"
NUM = "<num>"

DIGIT_MODES = ("off", "zero", "token")
_ZERO_DIGITS = str.maketrans("123456789", "000000000")


@dataclass(frozen=True)
class Normalizer:
    """Maps a raw token to its vocabulary form.

    Args:
        lowercase: lower-case every token.
        digits: ``off`` keeps digits; ``zero`` maps every ASCII digit to ``0`` (``1030`` ->
            ``0000``); ``token`` maps every all-digit token to the shared ``<num>`` token.
    """

    lowercase: bool = True
    digits: str = "off"

    def __post_init__(self) -> None:
        if self.digits not in DIGIT_MODES:
            raise ValueError(f"digits must be one of {DIGIT_MODES}, got {self.digits!r}")

    def __call__(self, token: str) -> str:
        if self.lowercase:
            token = token.lower()
        if self.digits == "zero":
            token = token.translate(_ZERO_DIGITS)
        elif self.digits == "token" and token.isascii() and token.isdigit():
            token = NUM
        return token

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Normalizer:
        return cls(**state)


ENCODE_MEMO = 200_000
"""Distinct raw tokens a :class:`Vocab` remembers the index of (a few MiB at most)."""


class Vocab:
    """Word vocabulary: index 0 is padding, index 1 the unknown word.

    Keeps each word's training frequency so that unknown-word dropout can find rare words.
    Optionally also the characters of the training words (``chars``, again with padding at
    0 and unknown at 1), for models that read a word's spelling; a word's characters are
    those of its normalised form, so train, eval and predict time agree.
    """

    def __init__(
        self,
        itos: Sequence[str],
        counts: Sequence[int],
        normalizer: Normalizer,
        chars: Sequence[str] | None = None,
    ):
        if list(itos[:2]) != [PAD, UNK]:
            raise ValueError("a vocabulary starts with <pad>, <unk>")
        if len(counts) != len(itos):
            raise ValueError("one count per word is needed")
        if chars is not None and list(chars[:2]) != [PAD, UNK]:
            raise ValueError("a character vocabulary starts with <pad>, <unk>")
        self.itos = list(itos)
        self.counts = list(counts)
        self.normalizer = normalizer
        self.stoi = {word: i for i, word in enumerate(self.itos)}
        self.chars = list(chars) if chars is not None else None
        self.char_stoi = {c: i for i, c in enumerate(self.chars)} if self.chars is not None else None
        self._ids: dict[str, int] = {}  # raw token -> index, filled by encode()

    pad_index = 0
    unk_index = 1

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        normalizer: Normalizer,
        min_freq: int = 1,
        chars: bool = False,
    ) -> Vocab:
        """Vocabulary of the normalised words seen at least ``min_freq`` times.

        Words are ordered by descending frequency, ties alphabetically, so the same data
        always gives the same indices. ``chars``: also collect every character of every
        training word (rare words included: their spelling is what characters are for).
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        counter = Counter(normalizer(tok) for sentence in sentences for tok in sentence)
        kept = sorted(
            ((w, c) for w, c in counter.items() if c >= min_freq and w not in (PAD, UNK)),
            key=lambda wc: (-wc[1], wc[0]),
        )
        unk_count = sum(c for w, c in counter.items() if c < min_freq)
        itos = [PAD, UNK] + [w for w, _ in kept]
        counts = [0, unk_count] + [c for _, c in kept]
        char_itos = [PAD, UNK] + sorted({c for word in counter for c in word}) if chars else None
        return cls(itos, counts, normalizer, char_itos)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Indices of the normalised tokens (``<unk>``'s for words not in the vocabulary).

        Raw tokens seen before are looked up directly: normalising every token again was a
        quarter of the Python time of tagging a split. At most :data:`ENCODE_MEMO` distinct
        raw tokens are remembered, so a long-running server's memory stays bounded.
        """
        ids = self._ids
        try:
            return [ids[tok] for tok in tokens]
        except KeyError:
            pass
        norm, stoi, unk = self.normalizer, self.stoi, self.unk_index
        encoded = [stoi.get(norm(tok), unk) for tok in tokens]
        if len(ids) < ENCODE_MEMO:
            ids.update(zip(tokens, encoded))
        return encoded

    def encode_chars(self, tokens: Sequence[str], width: int) -> list[list[int]]:
        """Character indices of each normalised token: its first ``width`` characters."""
        if self.char_stoi is None:
            raise ValueError("this vocabulary has no characters (build it with chars=True)")
        norm, stoi, unk = self.normalizer, self.char_stoi, self.unk_index
        return [[stoi.get(c, unk) for c in norm(tok)[:width]] for tok in tokens]

    def rare_mask(self, max_count: int = 1) -> list[bool]:
        """``True`` for words seen at most ``max_count`` times in training (dropout targets)."""
        return [i > self.unk_index and c <= max_count for i, c in enumerate(self.counts)]

    def to_state(self) -> dict[str, Any]:
        return {
            "itos": self.itos, "counts": self.counts, "normalizer": self.normalizer.to_state(),
            "chars": self.chars,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Vocab:
        return cls(state["itos"], state["counts"], Normalizer.from_state(state["normalizer"]), state.get("chars"))


class TagSet:
    """Indices of the training tags; ``O`` is always present and always index 0."""

    def __init__(self, itos: Sequence[str]):
        if not itos or itos[0] != "O":
            raise ValueError("a tag set starts with 'O'")
        self.itos = list(itos)
        self.stoi = {tag: i for i, tag in enumerate(self.itos)}

    @classmethod
    def build(cls, tag_sequences: Iterable[Sequence[str]]) -> TagSet:
        seen = {tag for tags in tag_sequences for tag in tags}
        seen.discard("O")
        # B- before I- of the same type keeps related tags adjacent in reports.
        ordered = sorted(seen, key=lambda t: (t[2:], t[:2]))
        return cls(["O", *ordered])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, tag: str) -> bool:
        return tag in self.stoi

    def encode(self, tags: Sequence[str]) -> list[int]:
        """Indices of known tags; a tag unseen in training raises ``KeyError``."""
        return [self.stoi[t] for t in tags]

    def decode(self, indices: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in indices]

    def to_state(self) -> list[str]:
        return list(self.itos)

    @classmethod
    def from_state(cls, state: Sequence[str]) -> TagSet:
        return cls(state)


class LabelSet:
    """Intent labels seen in training (``a#b`` multi-intents are labels of their own)."""

    def __init__(self, itos: Sequence[str]):
        self.itos = list(itos)
        self.stoi = {label: i for i, label in enumerate(self.itos)}

    @classmethod
    def build(cls, labels: Iterable[str]) -> LabelSet:
        return cls(sorted(set(labels)))

    def __len__(self) -> int:
        return len(self.itos)

    def to_state(self) -> list[str]:
        return list(self.itos)

    @classmethod
    def from_state(cls, state: Sequence[str]) -> LabelSet:
        return cls(state)
