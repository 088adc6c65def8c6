"""Self-attention over the encoder's states, for aligned tagging (after Liu & Lane 2016)."""

from __future__ import annotations

import torch
from torch import nn


class SelfAttention(nn.Module):
    """Each position reads a weighted average of its utterance's states and keeps both.

    For positions i, j of one utterance, with h the encoder's states:

        a_ij = softmax_j( (W_q h_i + b_q) . (W_k h_j) / sqrt(d) )   over the real j only
        c_i  = sum_j a_ij h_j
        out_i = [h_i ; c_i]

    A recurrent state carries distant words only through the gates of every step in
    between; here the slot head at token i sees any other token's state in one step (the
    "from" or "to" that decides whether a city is a departure or an arrival). Padded keys
    get no weight, so real positions do not depend on padding, and padded positions of the
    output are zero, as the encoder's are.

    Args:
        input_dim: size of the encoder's states.
        attention_dim: size d of the queries and keys.
    """

    def __init__(self, input_dim: int, attention_dim: int):
        super().__init__()
        self.query = nn.Linear(input_dim, attention_dim)
        self.key = nn.Linear(input_dim, attention_dim, bias=False)  # a key bias adds the same to a row's scores
        self.scale = attention_dim ** -0.5
        self.output_dim = 2 * input_dim

    def weights(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, T) attention of each position (rows) over the real positions (columns)."""
        scores = torch.bmm(self.query(states), self.key(states).transpose(1, 2)) * self.scale
        return scores.masked_fill(~mask.unsqueeze(1), float("-inf")).softmax(dim=-1)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) states with a (B, T) real-position mask -> (B, T, 2D)."""
        context = torch.bmm(self.weights(states, mask), states)
        return torch.cat([states, context], dim=-1).masked_fill(~mask.unsqueeze(-1), 0.0)
