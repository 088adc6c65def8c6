"""Word representation: learned embeddings, optional pretrained init and context window."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from slotfill.errors import DataError
from slotfill.model.chars import CharCNN
from slotfill.model.dropout import Dropout
from slotfill.vocab import Vocab

log = logging.getLogger(__name__)


class WordRepresentation(nn.Module):
    """Embeds word indices, optionally with character features and the +-k neighbours.

    A token's vector is its word embedding, followed by its character CNN features when
    ``num_chars`` is set; the context window then concatenates the neighbours' vectors.

    The context window is Mesnil et al.'s: position t sees ``[e_{t-k}, ..., e_t, ..., e_{t+k}]``;
    positions beyond the utterance see the padding vector (zeros), which is also what a
    padded batch holds there, so padding never changes a representation.

    Args:
        vocab_size: number of words including ``<pad>`` (index 0) and ``<unk>``.
        embedding_dim: size of one word vector.
        context_window: k; 0 for the word alone.
        dropout: dropout on the output.
        locked_dropout: that dropout draws one mask per utterance, shared by its positions.
        num_chars: character vocabulary size; 0 for no character features.
        char_dim, char_filters, char_kernel: the character CNN's sizes (see :class:`CharCNN`).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        context_window: int = 0,
        dropout: float = 0.0,
        num_chars: int = 0,
        char_dim: int = 30,
        char_filters: int = 50,
        char_kernel: int = 3,
        locked_dropout: bool = False,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=Vocab.pad_index)
        self.chars = CharCNN(num_chars, char_dim, char_filters, char_kernel) if num_chars else None
        self.context_window = context_window
        self.dropout = Dropout(dropout, locked_dropout)
        token_dim = embedding_dim + (self.chars.output_dim if self.chars is not None else 0)
        self.output_dim = token_dim * (2 * context_window + 1)

    def forward(self, words: torch.Tensor, chars: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) word indices and, with character features, (B, T, C) character indices."""
        emb = self.embedding(words)  # (B, T, E)
        if self.chars is not None:
            if chars is None:
                raise ValueError("this model reads characters: pass chars (B, T, C)")
            emb = torch.cat([emb, self.chars(chars)], dim=-1)  # (B, T, E + F)
        k = self.context_window
        if k:
            # 2k + 1 shifted slices rather than unfold: same values, and exportable to ONNX
            # with a dynamic length.
            length = emb.size(1)
            padded = F.pad(emb, (0, 0, k, k))  # (B, T + 2k, E)
            emb = torch.cat([padded[:, i : i + length] for i in range(2 * k + 1)], dim=-1)  # (B, T, (2k+1)E)
        return self.dropout(emb)

    def rows_of(self, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(table, words)`` when :meth:`forward` returns ``table[words]`` itself (no character
        features, no context window, no dropout: eval mode), else ``None``. Lets slotfill's LSTM
        kernel project each distinct word once instead of every position."""
        if self.chars is not None or self.context_window or self.training:
            return None
        return self.embedding.weight, words

    @torch.no_grad()
    def load_vectors(self, weights: torch.Tensor, found: torch.Tensor) -> None:
        """Copy pretrained rows where ``found`` is true; others keep their random init."""
        self.embedding.weight[found] = weights[found].to(self.embedding.weight)
        self.embedding.weight[Vocab.pad_index].zero_()


def read_vectors(path: str | Path, vocab: Vocab, dim: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Read a word2vec/GloVe text file for the words of ``vocab``.

    A first line of two integers (word2vec's header) is skipped. A file word matches the
    vocabulary word it normalises to; an exact spelling wins over a normalised one.

    Returns:
        ``(weights (V, dim), found (V,) bool, coverage)`` where coverage holds the fraction
        of vocabulary types and of training tokens that got a vector.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "pretrained vectors file not found", "check model.pretrained_vectors")
    weights = torch.zeros(len(vocab), dim)
    found = torch.zeros(len(vocab), dtype=torch.bool)
    exact = torch.zeros(len(vocab), dtype=torch.bool)
    with path.open(encoding="utf-8", errors="strict") as handle:
        try:
            for lineno, line in enumerate(handle, start=1):
                parts = line.rstrip().split(" ")
                if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue
                if len(parts) < 2:
                    continue
                word, values = parts[0], parts[1:]
                if len(values) != dim:
                    raise DataError(
                        path, lineno, f"vector has {len(values)} dimensions, expected {dim}",
                        f"set model.embedding_dim={len(values)} to match the file",
                    )
                index = vocab.stoi.get(vocab.normalizer(word))
                if index is None or index < 2 or exact[index]:
                    continue
                try:
                    row = torch.tensor([float(v) for v in values])
                except ValueError:
                    raise DataError(path, lineno, "vector holds a value that is not a number") from None
                if not torch.isfinite(row).all():
                    raise DataError(path, lineno, f"vector of {word!r} is not finite (nan or inf)", "fix or drop that line")
                weights[index] = row
                found[index] = True
                exact[index] = vocab.itos[index] == word
        except UnicodeDecodeError as err:
            raise DataError(path, None, f"not valid UTF-8 ({err.reason})", "re-save the file as UTF-8") from None
    types = len(vocab) - 2
    total = sum(vocab.counts[2:])
    covered = sum(c for i, c in enumerate(vocab.counts) if i >= 2 and found[i])
    coverage = {
        "types": float(found[2:].sum()) / types if types else 0.0,
        "tokens": covered / total if total else 0.0,
    }
    log.info(
        "pretrained vectors %s: %d of %d words (%.1f%% of types, %.1f%% of training tokens)",
        path, int(found.sum()), types, 100 * coverage["types"], 100 * coverage["tokens"],
    )
    return weights, found, coverage
