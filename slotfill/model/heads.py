"""Output layers: per-token slot logits and an utterance-level intent classifier."""

from __future__ import annotations

import torch
from torch import nn

from slotfill.model.dropout import Dropout


class SoftmaxHead(nn.Module):
    """y_t = softmax(V h_t + c): the seed's output layer (returns the logits V h_t + c)."""

    def __init__(self, input_dim: int, num_tags: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = Dropout(dropout)
        self.linear = nn.Linear(input_dim, num_tags)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(states))  # (B, T, C)


class IntentHead(nn.Module):
    """Max-pools the encoder states over real tokens and classifies the utterance."""

    def __init__(self, input_dim: int, num_intents: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = Dropout(dropout)
        self.linear = nn.Linear(input_dim, num_intents)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not bool(mask.all()):  # padding must not win the max; a full batch needs no mask
            states = states.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        pooled = states.amax(dim=1)  # (B, H)
        return self.linear(self.dropout(pooled))  # (B, I)
