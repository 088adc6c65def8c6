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

The softmax over the predicted words is most of the loss's cost: on SNIPS (5,000 words) about
half of a training epoch. With ``cutoffs`` it becomes an adaptive softmax (Grave et al.,
"Efficient softmax approximation for GPUs", ICML 2017; PyTorch's
``AdaptiveLogSoftmaxWithLoss``): the most frequent words and one class per rarer cluster
share one small softmax, and a word of a rare cluster is scored as P(cluster) x P(word |
cluster). Only the clusters that a batch's targets fall in are computed. The word classes
are frequency-sorted (the word vocabulary is), which is the order this needs.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    classes)``, as in Rei (2017), or ``-> adaptive softmax`` in place of the last layer when
    ``cutoffs`` are given. The classes are the ``vocab_size`` most frequent words of the
    word vocabulary (which is sorted by frequency after ``<pad>`` and ``<unk>``), every rarer
    word counting as ``<unk>``, and index 0 standing for the utterance boundary.

    Args:
        hidden_size: encoder state size per direction.
        directions: 1 (forward loss only) or 2.
        vocab_size: classes, at most the word vocabulary's size.
        hidden: size of the tanh layer.
        dropout: dropout on the states before the tanh layer.
        cutoffs: increasing class indices where the adaptive softmax's clusters begin, e.g.
            ``(200, 1000)``: classes 0-199 in the head, 200-999 and 1000 on as two clusters.
            Empty (the default): a full softmax. Cutoffs at or above ``vocab_size`` would open
            empty clusters and are left out. Each cluster keeps the tanh layer's full width
            (``div_value=1``): at 50 dimensions, shrinking the rare words' projection as large
            language models do would leave them almost nothing. The head has a bias, as the
            full softmax's output layer does.
    """

    def __init__(
        self, hidden_size: int, directions: int, vocab_size: int, hidden: int = 50, dropout: float = 0.0,
        cutoffs: Sequence[int] = (),
    ):
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"a language-model head needs at least 2 classes, got {vocab_size}")
        if any(c < 1 for c in cutoffs) or list(cutoffs) != sorted(set(cutoffs)):
            raise ValueError(f"cutoffs must be increasing positive integers, got {list(cutoffs)}")
        self.hidden_size = hidden_size
        self.vocab_size = vocab_size
        self.cutoffs = [c for c in cutoffs if c < vocab_size]
        self.dropout = Dropout(dropout)

        def output() -> nn.Module:
            if self.cutoffs:
                return nn.AdaptiveLogSoftmaxWithLoss(hidden, vocab_size, self.cutoffs, div_value=1.0, head_bias=True)
            return nn.Linear(hidden, vocab_size)

        self.directions = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden_size, hidden), nn.Tanh(), output()) for _ in range(directions)
        )

    def log_probs(self, direction: int, states: torch.Tensor) -> torch.Tensor:
        """(N, classes) log-probabilities of one direction's predictions from (N, H) states."""
        net = self.directions[direction]
        if self.cutoffs:
            return net[2].log_prob(net[1](net[0](states)))
        return F.log_softmax(net(states), dim=-1)

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
            inputs, gold = self.dropout(half[real]), target.reshape(-1)[real]  # padding costs nothing
            if self.cutoffs:  # the log-probability of each gold class, computing only its clusters
                # net = (Linear, Tanh, adaptive softmax); indexed, not sliced: a slice builds a
                # new Sequential on every call.
                total = total - net[2](net[1](net[0](inputs)), gold).output.sum()
            else:
                total = total + F.cross_entropy(net(inputs), gold, reduction="sum")
        return total
