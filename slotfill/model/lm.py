"""An auxiliary language-modelling objective for the encoder (Rei, 2017).

Slot-filling corpora are small: ATIS trains on 4,478 utterances. Besides the slot tags, each
training utterance also says which word follows which, and predicting that is free
supervision for the encoder's states. Rei ("Semi-supervised Multitask Learning for Sequence
Labeling", ACL 2017) adds to a BiLSTM tagger a loss in which every forward state predicts the
*next* word and every backward state the *previous* one; the tagger itself is unchanged and
the extra layers are used only in training.

A forward state h_t has read words 1..t, so word t+1 is news to it; a backward state has read
t..T, so word t-1 is. Only a first layer's states keep that property (a second layer's forward
direction reads the first layer's backward states, which have seen t+1), which is why the
loss reads the encoder's first layer. The last forward state predicts the end of the
utterance and the first backward state its start, as one boundary class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slotfill.model.dropout import Dropout
from slotfill.vocab import Vocab

BOUNDARY = Vocab.pad_index  # the class "no word here" (padding is never a target)
IGNORE = -100


class LanguageModelHead(nn.Module):
    """Predicts each real position's next word (forward states) and previous word (backward).

    Each direction has its own small network, ``Linear(H, hidden) -> tanh -> Linear(hidden,
    classes)``, as in Rei (2017). The classes are the ``vocab_size`` most frequent words of the
    word vocabulary (which is sorted by frequency after ``<pad>`` and ``<unk>``), every rarer
    word counting as ``<unk>``, and index 0 standing for the utterance boundary.

    Args:
        hidden_size: encoder state size per direction.
        directions: 1 (forward loss only) or 2.
        vocab_size: classes, at most the word vocabulary's size.
        hidden: size of the tanh layer.
        dropout: dropout on the states before the tanh layer.
    """

    def __init__(self, hidden_size: int, directions: int, vocab_size: int, hidden: int = 50, dropout: float = 0.0):
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"a language-model head needs at least 2 classes, got {vocab_size}")
        self.hidden_size = hidden_size
        self.vocab_size = vocab_size
        self.dropout = Dropout(dropout)
        self.directions = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden_size, hidden), nn.Tanh(), nn.Linear(hidden, vocab_size))
            for _ in range(directions)
        )

    def targets(self, words: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Per direction, the (B, T) class each position predicts; ``IGNORE`` at padding.

        ``words`` holds 0 (``<pad>``) at padded positions, as every batch does.
        """
        classes = words.masked_fill(words >= self.vocab_size, Vocab.unk_index)
        boundary = classes.new_full((classes.size(0), 1), BOUNDARY)
        # Word t+1; after the last real token comes padding, whose index 0 is the boundary.
        following = torch.cat([classes[:, 1:], boundary], dim=1)
        preceding = torch.cat([boundary, classes[:, :-1]], dim=1)  # word t-1
        out = [following, preceding][: len(self.directions)]
        return [t.masked_fill(~mask, IGNORE) for t in out]

    def loss(self, states: torch.Tensor, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Summed cross-entropy over the real positions of both directions.

        Args:
            states: (B, T, H * directions) first-layer encoder states, forward half first.
            words: (B, T) the words to predict (the training input *before* any word dropout).
            mask: (B, T) real positions.
        """
        total = states.new_zeros(())
        real = mask.reshape(-1)
        for d, (net, target) in enumerate(zip(self.directions, self.targets(words, mask))):
            half = states[..., d * self.hidden_size : (d + 1) * self.hidden_size].reshape(-1, self.hidden_size)
            logits = net(self.dropout(half[real]))  # only real positions: padding costs nothing
            total = total + F.cross_entropy(logits, target.reshape(-1)[real], reduction="sum")
        return total
