"""Character-level word features: a small CNN over each word's characters, max-pooled."""

from __future__ import annotations

import torch
from torch import nn


class CharCNN(nn.Module):
    """Embeds a word's characters, convolves them and max-pools over the word (Ma & Hovy, 2016).

    Gives every token, seen in training or not, a vector computed from its spelling, so that
    an unknown word like ``"sfo"`` or ``"thursdays"`` still carries what its letters say.
    Padding characters are excluded from the max, so a word's feature does not depend on
    how wide its batch's character matrix is; padding tokens (no characters) get zeros.

    Args:
        num_chars: character vocabulary size including padding (0) and unknown (1).
        char_dim: character embedding size.
        filters: output size (number of convolution filters).
        kernel_size: characters each filter sees (odd).
    """

    def __init__(self, num_chars: int, char_dim: int = 30, filters: int = 50, kernel_size: int = 3):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"char kernel_size must be odd and positive, got {kernel_size}")
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=0)
        self.conv = nn.Conv1d(char_dim, filters, kernel_size, padding=kernel_size // 2)
        self.output_dim = filters

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """(B, T, C) character indices -> (B, T, filters)."""
        batch, length, width = chars.shape
        flat = chars.reshape(batch * length, width)  # (N, C)
        real = flat != 0
        emb = self.embedding(flat).transpose(1, 2)  # (N, E, C)
        conv = self.conv(emb)  # (N, F, C)
        conv = conv.masked_fill(~real.unsqueeze(1), float("-inf"))
        pooled = conv.amax(dim=2)  # (N, F)
        pooled = pooled.masked_fill(~real.any(dim=1, keepdim=True), 0.0)
        return pooled.reshape(batch, length, -1)
