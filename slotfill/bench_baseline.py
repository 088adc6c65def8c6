"""The plain baseline that ``python -m slotfill.bench`` measures slotfill against.

The same model as slotfill's default tagger, written the straightforward way a PyTorch user
would write it, neither slowed down nor tuned: ``nn.Embedding`` -> dropout ->
``pack_padded_sequence(enforce_sorted=False)`` -> ``nn.LSTM(bidirectional, batch_first)`` ->
``pad_packed_sequence`` -> dropout -> ``nn.Linear`` for the slots, plus the joint intent head
(max-pool over real tokens -> dropout -> linear) when the data has intents. Training is a
``DataLoader(shuffle=True)`` whose ``collate_fn`` pads each batch with ``pad_sequence``, Adam,
``clip_grad_norm_(..., 5)`` and one forward/backward/step per batch. The loss is slotfill's
default: each utterance's summed token cross-entropy, averaged over the batch's utterances,
plus the intent cross-entropy (weight 1).

The deliberate difference from slotfill's trainer, part of what "plain" means here: no
unknown-word dropout (``vocab.unk_dropout``, ``vocab.slot_unk_dropout``). Both sides' epoch
times include building the epoch's batches (the baseline's ``DataLoader`` collates inside
the epoch; slotfill's timer starts before it builds its batches).

Data is read and encoded with slotfill's readers and vocabulary, so both sides see
identical token ids. :func:`state_dict_from_tagger` maps a slotfill ``Tagger``'s weights
onto this model, so that tests can check that the two compute the same loss and tags.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence
from torch.utils.data import DataLoader

from slotfill.data.example import Example
from slotfill.vocab import LabelSet, TagSet, Vocab

log = logging.getLogger(__name__)

IGNORE = -100  # F.cross_entropy's default ignore_index: the tag at padded positions
RNN_CLASSES: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


@dataclass
class BaselineSpec:
    """Sizes and training settings; the defaults are slotfill's default config."""

    embedding_dim: int = 100
    hidden_size: int = 200
    num_layers: int = 1
    bidirectional: bool = True
    cell: str = "lstm"
    dropout: float = 0.5
    embedding_dropout: float | None = None  # None: ``dropout``
    output_dropout: float | None = None  # None: ``dropout``
    intent: str = "auto"  # auto | on | off
    intent_loss_weight: float = 1.0
    lowercase: bool = True
    digits: str = "off"
    min_freq: int = 1
    lr: float = 1e-3
    clip_norm: float | None = 5.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BaselineTagger(nn.Module):
    """Embedding -> dropout -> packed (Bi)LSTM -> dropout -> linear, with a joint intent head."""

    def __init__(self, vocab_size: int, num_tags: int, num_intents: int, spec: BaselineSpec):
        super().__init__()
        emb_p = spec.dropout if spec.embedding_dropout is None else spec.embedding_dropout
        out_p = spec.dropout if spec.output_dropout is None else spec.output_dropout
        self.embedding = nn.Embedding(vocab_size, spec.embedding_dim, padding_idx=Vocab.pad_index)
        self.embedding_dropout = nn.Dropout(emb_p)
        self.rnn = RNN_CLASSES[spec.cell](
            spec.embedding_dim, spec.hidden_size, num_layers=spec.num_layers,
            bidirectional=spec.bidirectional, batch_first=True,
            dropout=spec.dropout if spec.num_layers > 1 else 0.0,
        )
        states = spec.hidden_size * (2 if spec.bidirectional else 1)
        self.slot_dropout = nn.Dropout(out_p)
        self.slot_out = nn.Linear(states, num_tags)
        self.intent_dropout = nn.Dropout(out_p)
        self.intent_out = nn.Linear(states, num_intents) if num_intents else None
        self.intent_loss_weight = spec.intent_loss_weight

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Slot logits (B, T, C) and intent logits (B, I) or ``None``."""
        x = self.embedding_dropout(self.embedding(words))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=words.size(1))
        slot_logits = self.slot_out(self.slot_dropout(states))
        intent_logits = None
        if self.intent_out is not None:
            real = torch.arange(words.size(1), device=words.device) < lengths.to(words.device).unsqueeze(1)
            pooled = states.masked_fill(~real.unsqueeze(-1), float("-inf")).max(dim=1).values
            intent_logits = self.intent_out(self.intent_dropout(pooled))
        return slot_logits, intent_logits

    def loss(
        self, words: torch.Tensor, lengths: torch.Tensor, tags: torch.Tensor, intents: torch.Tensor | None
    ) -> torch.Tensor:
        """Summed token cross-entropy per utterance, averaged over the batch, + intent CE.

        ``tags`` holds ``-100`` at padded positions.
        """
        slot_logits, intent_logits = self(words, lengths)
        loss = F.cross_entropy(slot_logits.transpose(1, 2), tags, reduction="sum") / words.size(0)
        if intent_logits is not None and intents is not None:
            loss = loss + self.intent_loss_weight * F.cross_entropy(intent_logits, intents)
        return loss


def state_dict_from_tagger(tagger_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a slotfill ``Tagger`` state dict to :class:`BaselineTagger`'s names.

    ``words.embedding.*`` -> ``embedding.*``, ``encoder.rnn.*`` -> ``rnn.*`` (both are the
    weights of a ``torch.nn`` recurrent module), ``slots.linear.*`` -> ``slot_out.*`` and
    ``intents.linear.*`` -> ``intent_out.*``. Anything else (a CRF) has no counterpart and
    raises ``KeyError``.
    """
    prefixes = {
        "words.embedding.": "embedding.",
        "encoder.rnn.": "rnn.",
        "slots.linear.": "slot_out.",
        "intents.linear.": "intent_out.",
    }
    out: dict[str, torch.Tensor] = {}
    for name, value in tagger_state.items():
        for old, new in prefixes.items():
            if name.startswith(old):
                out[new + name[len(old):]] = value
                break
        else:
            raise KeyError(f"the baseline has no counterpart of slotfill's parameter {name!r}")
    return out


@dataclass
class BaselineData:
    """A split's token ids (and tag / intent ids when known), one tensor per utterance."""

    words: list[torch.Tensor]
    tags: list[torch.Tensor] | None
    intents: list[int] | None

    def __len__(self) -> int:
        return len(self.words)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None, int | None]:
        return (
            self.words[i],
            None if self.tags is None else self.tags[i],
            None if self.intents is None else self.intents[i],
        )

    @property
    def num_tokens(self) -> int:
        return sum(len(w) for w in self.words)


def encode(
    examples: Sequence[Example], vocab: Vocab, tagset: TagSet | None = None, labels: LabelSet | None = None
) -> BaselineData:
    """Token ids with slotfill's vocabulary; tag and intent ids when ``tagset`` / ``labels`` are given."""
    words = [torch.tensor(vocab.encode(ex.tokens), dtype=torch.long) for ex in examples]
    tags = None
    if tagset is not None:
        tags = [torch.tensor(tagset.encode(ex.tags), dtype=torch.long) for ex in examples]
    intents = None
    if labels is not None and all(ex.intent is not None for ex in examples):
        intents = [labels.stoi[ex.intent] for ex in examples]
    return BaselineData(words, tags, intents)


def collate(items: list[tuple[torch.Tensor, torch.Tensor | None, int | None]]) -> dict[str, torch.Tensor | None]:
    """Pad a list of utterances with ``pad_sequence`` (words with 0, tags with -100)."""
    words = [w for w, _, _ in items]
    batch: dict[str, torch.Tensor | None] = {
        "words": pad_sequence(words, batch_first=True, padding_value=Vocab.pad_index),
        "lengths": torch.tensor([len(w) for w in words]),
        "tags": None,
        "intents": None,
    }
    if items[0][1] is not None:
        batch["tags"] = pad_sequence([t for _, t, _ in items], batch_first=True, padding_value=IGNORE)
    if items[0][2] is not None:
        batch["intents"] = torch.tensor([i for _, _, i in items])
    return batch


def build_vocab(train: Sequence[Example], spec: BaselineSpec) -> tuple[Vocab, TagSet, LabelSet | None]:
    """Vocabulary, tag set and intent labels from the training split, exactly as slotfill builds them."""
    from slotfill.training import intent_labels
    from slotfill.vocab import Normalizer

    vocab = Vocab.build((ex.tokens for ex in train), Normalizer(spec.lowercase, spec.digits), spec.min_freq)
    tagset = TagSet.build(ex.tags for ex in train)
    return vocab, tagset, intent_labels(spec.intent, list(train))


class BaselineTrainer:
    """Model, optimizer and data loader of the baseline; :meth:`train_epoch` runs one timed epoch."""

    def __init__(self, train: Sequence[Example], spec: BaselineSpec, batch_size: int = 32, seed: int = 0):
        torch.manual_seed(seed)
        self.spec = spec
        self.vocab, self.tagset, self.labels = build_vocab(train, spec)
        self.data = encode(train, self.vocab, self.tagset, self.labels)
        self.model = BaselineTagger(len(self.vocab), len(self.tagset), len(self.labels) if self.labels else 0, spec)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=spec.lr)
        self.loader = DataLoader(self.data, batch_size=batch_size, shuffle=True, collate_fn=collate)

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training data; returns ``seconds``, ``tokens`` and mean ``loss``."""
        self.model.train()
        started = time.perf_counter()
        total, steps, tokens = 0.0, 0, 0
        for batch in self.loader:
            loss = self.model.loss(batch["words"], batch["lengths"], batch["tags"], batch["intents"])
            self.optimizer.zero_grad()
            loss.backward()
            if self.spec.clip_norm is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.spec.clip_norm)
            self.optimizer.step()
            total += loss.item()
            steps += 1
            tokens += int(batch["lengths"].sum())
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "tokens": tokens, "loss": total / max(steps, 1)}

    def predict(self, examples: Sequence[Example], batch_size: int = 256) -> list[list[str]]:
        """Tag strings for tokenised examples (see :func:`predict`)."""
        return predict(self.model, examples, self.vocab, self.tagset, batch_size)


@torch.inference_mode()
def predict(
    model: BaselineTagger, examples: Sequence[Example], vocab: Vocab, tagset: TagSet, batch_size: int = 256
) -> list[list[str]]:
    """Tokenised examples -> tag strings: encode, batch in order, pack, argmax, decode."""
    was_training = model.training
    model.eval()
    loader = DataLoader(encode(examples, vocab), batch_size=batch_size, shuffle=False, collate_fn=collate)
    out: list[list[str]] = []
    for batch in loader:
        slot_logits, _ = model(batch["words"], batch["lengths"])
        best = slot_logits.argmax(dim=-1)
        for row, n in zip(best.tolist(), batch["lengths"].tolist()):
            out.append([tagset.itos[i] for i in row[:n]])
    model.train(was_training)
    return out


def train_epochs(
    trainer: BaselineTrainer, epochs: int, on_epoch: Callable[[int, dict[str, float]], None] | None = None
) -> list[dict[str, float]]:
    """Run ``epochs`` epochs; ``on_epoch(epoch, stats)`` runs after each, outside the timing."""
    history = []
    for epoch in range(1, epochs + 1):
        stats = trainer.train_epoch()
        if not math.isfinite(stats["loss"]):
            log.warning("baseline epoch %d: non-finite loss", epoch)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(epoch, stats)
    return history
