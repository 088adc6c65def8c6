"""Encoded datasets and length-bucketed batches.

A split is turned into tensors once (padded index matrices); a batch is then a row
selection and a slice, with no Python work per token inside the training loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from slotfill.data.bio import spans
from slotfill.data.example import Example
from slotfill.vocab import LabelSet, TagSet, Vocab

WORD_CHARS = 24
"""Characters of a word that a character model reads: its first 24 (the longest ATIS word has
16; three SNIPS training words are longer than 24, and their first 24 still identify them)."""


@dataclass
class Batch:
    """A padded batch; ``index`` holds the rows' positions in the split."""

    index: torch.Tensor  # (B,)
    words: torch.Tensor  # (B, T)
    lengths: torch.Tensor  # (B,)
    tags: torch.Tensor | None = None  # (B, T)
    intents: torch.Tensor | None = None  # (B,)
    chars: torch.Tensor | None = None  # (B, T, C) character indices, 0 at padding

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    def to(self, device: torch.device) -> Batch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        # lengths stay on the CPU: packing wants them there.
        return Batch(
            self.index, move(self.words), self.lengths, move(self.tags), move(self.intents), move(self.chars)
        )


class EncodedSplit:
    """Words (and, for training, tag and intent indices) of a split as padded tensors.

    When the vocabulary has characters, each token's characters too (``chars``, (N, T, C)).
    """

    def __init__(
        self,
        examples: Sequence[Example],
        vocab: Vocab,
        tagset: TagSet | None = None,
        labels: LabelSet | None = None,
    ):
        self.examples = list(examples)
        n = len(self.examples)
        self.lengths = torch.tensor([len(ex) for ex in self.examples], dtype=torch.long)
        width = int(self.lengths.max()) if n else 0
        # Each matrix is filled in one masked assignment from a flat list of the real
        # positions in row order: no tensor per utterance (predict builds one per call).
        real = torch.arange(width) < self.lengths.unsqueeze(1)  # (N, T)
        self.words = _padded(real, [i for ex in self.examples for i in vocab.encode(ex.tokens)], torch.long)
        self.tags = None
        if tagset is not None:
            self.tags = _padded(real, [i for ex in self.examples for i in tagset.encode(ex.tags)], torch.long)
        self.intents = None
        if labels is not None and len(labels) and all(ex.intent is not None for ex in self.examples):
            self.intents = torch.tensor([labels.stoi[ex.intent] for ex in self.examples], dtype=torch.long)
        self.chars = None
        if vocab.chars is not None:
            # int16 keeps the split small (batches are widened to int64); int32 for a
            # character vocabulary too large for it (scripts with many thousand characters).
            dtype = torch.int16 if len(vocab.chars) <= torch.iinfo(torch.int16).max else torch.int32
            per_token = [ids for ex in self.examples for ids in vocab.encode_chars(ex.tokens, WORD_CHARS)]
            spelled = torch.arange(WORD_CHARS) < torch.tensor([len(ids) for ids in per_token], dtype=torch.long).unsqueeze(1)
            chars = _padded(spelled, [c for ids in per_token for c in ids], dtype)  # (tokens, C)
            self.chars = torch.zeros(n, width, WORD_CHARS, dtype=dtype)
            self.chars[real] = chars

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    def batch(self, index: torch.Tensor) -> Batch:
        lengths = self.lengths[index]
        width = int(lengths.max())
        pick = lambda t: None if t is None else t[index, :width]  # noqa: E731
        intents = None if self.intents is None else self.intents[index]
        chars = None if self.chars is None else _trimmed(pick(self.chars))
        return Batch(index, pick(self.words), lengths, pick(self.tags), intents, chars)

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> list[Batch]:
        """Batches of similar length.

        Without a generator (evaluation): in length order, at most ``batch_size`` rows, and a
        batch also ends where the length changes once it holds :data:`EVAL_MIN_ROWS` rows,
        so a batch pads little without becoming tiny. With one (training): lengths are sorted
        with random tie-breaks, cut into batches, and the batches shuffled, so every epoch
        sees new batch compositions while padding stays small.
        """
        if generator is None:
            return [self.batch(chunk) for chunk in length_runs(self.lengths, batch_size, EVAL_MIN_ROWS)]
        noise = torch.rand(len(self), generator=generator)
        order = torch.argsort(self.lengths.double() + noise.double() * 0.999, stable=True)
        chunks = list(torch.split(order, batch_size))
        chunks = [chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist()]
        return [self.batch(chunk) for chunk in chunks]


EVAL_MIN_ROWS = 32
"""Rows an evaluation batch holds before it may end at a length change. Cutting only every
``batch_size`` rows pads ATIS's test split by 30% at 256 (its last batch spans lengths 14-30);
cutting at every length change pads nothing but makes 25 batches, some of one sentence, and
each kernel call has a fixed cost. At 32 the padding is 2.5% over 14 batches, and tagging the
split at batch 256 takes 19% less time than either (1-layer BiLSTM, 2 threads)."""


def length_runs(lengths: torch.Tensor, batch_size: int, min_rows: int) -> list[torch.Tensor]:
    """Row indices in length order (stable), cut every ``batch_size`` rows and wherever the
    length changes after at least ``min_rows`` rows of the current chunk."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = torch.argsort(lengths, stable=True)
    sorted_lengths = lengths[order].tolist()
    chunks, start = [], 0
    for i in range(1, len(sorted_lengths) + 1):
        rows = i - start
        if i == len(sorted_lengths) or rows == batch_size or (rows >= min_rows and sorted_lengths[i] != sorted_lengths[i - 1]):
            chunks.append(order[start:i])
            start = i
    return chunks


def _trimmed(chars: torch.Tensor) -> torch.Tensor:
    """A batch's (B, T, WORD_CHARS) character rows cut to its longest spelling (at least one
    column), as int64 for the embedding."""
    return chars[:, :, : max(int((chars != 0).sum(-1).max()), 1)].long()


def _padded(real: torch.Tensor, values: list[int], dtype: torch.dtype) -> torch.Tensor:
    """A zero matrix shaped like the bool ``real`` with ``values`` at its true cells, in row order."""
    out = torch.zeros(real.shape, dtype=dtype)
    out[real] = torch.tensor(values, dtype=dtype)
    return out


def unk_dropout(words: torch.Tensor, rare: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each rare word by ``<unk>`` with probability ``p`` (training only).

    Args:
        words: (B, T) indices.
        rare: (V,) bool, true for the words to drop (training singletons).
    """
    return words if p <= 0 else _to_unk(words, rare[words], p, generator)


def slot_unk_dropout(words: torch.Tensor, tags: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each word inside a gold slot by ``<unk>`` with probability ``p`` (training only).

    Test sets name things training never saw (most SNIPS slot errors are in open-class names:
    playlists, artists, objects); dropping slot words, frequent ones too, makes the tagger
    find a slot from its context and spelling rather than from a remembered word.

    Args:
        words: (B, T) indices.
        tags: (B, T) gold tag indices; ``O`` (and padding) is index 0 and is never dropped.
    """
    return words if p <= 0 else _to_unk(words, tags != 0, p, generator)


def _to_unk(words: torch.Tensor, targets: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """``<unk>`` at each (B, T) ``targets`` position with probability ``p``: one draw per position."""
    drop = targets & (torch.rand(words.shape, generator=generator) < p)
    return words.masked_fill(drop, Vocab.unk_index)


class SlotSwap:
    """Swaps gold slot values for others of the same type and length (training only).

    Most SNIPS slot errors are names the training data never had (27% of the test set's gold
    slots, recalled at 0.86 against 0.98 for the names training has). Swapping each gold slot's
    words, with probability ``p`` per slot and epoch, for those of another training value of
    the same slot type and the same number of words puts names in contexts they never occurred
    in, so the tagger must find a slot from its context and spelling, as it must at test time,
    while every word it reads is still a real one. Equal length keeps each utterance's tags,
    intent and length, and so its batch.

    Args:
        split: the encoded training split (with tags).
    """

    def __init__(self, split: EncodedSplit):
        if split.tags is None:
            raise ValueError("slot swapping needs the training split's tags")
        group_of: dict[tuple[str, int], int] = {}  # (slot type, length) -> group
        distinct: list[dict[tuple[int, ...], tuple[int, int]]] = []  # per group: value -> (row, start)
        self.slots: list[list[tuple[int, int, int]]] = []  # per row: (start, length, group)
        for row, ex in enumerate(split.examples):
            mine = []
            for span in spans(ex.tags or ()):
                length = span.end - span.start
                group = group_of.setdefault((span.type, length), len(group_of))
                if group == len(distinct):
                    distinct.append({})
                distinct[group].setdefault(tuple(split.words[row, span.start : span.end].tolist()), (row, span.start))
                mine.append((span.start, length, group))
            self.slots.append(mine)
        # Every distinct value's words (and characters) one after another; a group's values
        # start at ``self.starts[group]``, in the order training has them.
        self.starts: list[list[int]] = []
        rows: list[int] = []
        cols: list[int] = []
        for (_, length), group in group_of.items():
            self.starts.append(list(range(len(rows), len(rows) + length * len(distinct[group]), length)))
            for r, s in distinct[group].values():
                rows += [r] * length
                cols += range(s, s + length)
        at = (torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long))
        self.words = split.words[at]
        self.chars = None if split.chars is None else split.chars[at]
        self.split = split

    def __call__(
        self, batch: Batch, p: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch's words and characters with each gold slot swapped with probability ``p``.

        Draws nothing from ``generator`` when ``p`` is 0 (runs without swapping keep their
        random stream). The characters come back as wide as the batch's longest word needs.
        """
        found = [(b, *slot) for b, row in enumerate(batch.index.tolist()) for slot in self.slots[row]]
        if p <= 0 or not found:
            return batch.words, batch.chars
        swap = (torch.rand(len(found), generator=generator) < p).tolist()
        picks = torch.rand(len(found), generator=generator).tolist()
        rows: list[int] = []
        cols: list[int] = []
        source: list[int] = []
        for (b, start, length, group), chosen, u in zip(found, swap, picks):
            if chosen:
                starts = self.starts[group]
                first = starts[min(int(u * len(starts)), len(starts) - 1)]
                rows += [b] * length
                cols += range(start, start + length)
                source += range(first, first + length)
        at = (torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long))
        taken = torch.tensor(source, dtype=torch.long)
        words = batch.words.index_put(at, self.words[taken])
        chars = batch.chars
        if chars is not None:
            chars = self.split.chars[batch.index, : words.size(1)]  # full width: a swapped word may be longer
            chars.index_put_(at, self.chars[taken])
            chars = _trimmed(chars)
        return words, chars
