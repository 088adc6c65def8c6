"""Dropout with a cheaper random mask than ``nn.Dropout`` on the CPU.

``nn.Dropout`` draws its mask with ``bernoulli_``, which on the CPU costs about 10 ns per
element: profiling the default BiLSTM on ATIS put it at ~17% of a training step. Here each
element gets 16 random bits, cut from 64-bit integers that ``torch.randint`` draws at well
under a nanosecond per element, so the mask costs about a sixth as much.

The drop probability is rounded to a multiple of 1/65536 (0.5 exactly; 0.3 becomes
0.300003) and kept elements are scaled by exactly 1 / (1 - that probability), so the
expected output still equals the input. The masks come from PyTorch's default generator,
so ``torch.manual_seed`` and ``torch.get_rng_state`` reproduce and resume them.
"""

from __future__ import annotations

import torch
from torch import nn

_LEVELS = 1 << 16


class Dropout(nn.Module):
    """Zeroes each element with probability ``p`` in training; the identity in eval mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self._threshold = round(p * _LEVELS)  # drop where the 16-bit draw is below this
        self._scale = _LEVELS / (_LEVELS - self._threshold)

    @property
    def effective_p(self) -> float:
        return self._threshold / _LEVELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self._threshold == 0:
            return x
        # The scale goes into the mask (exact: each kept element is still x * scale), so
        # the backward pass is one multiplication by a mask of x's own dtype.
        return x * keep_mask(x, self._threshold).to(x.dtype).mul_(self._scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def keep_mask(x: torch.Tensor, threshold: int) -> torch.Tensor:
    """A bool tensor shaped like ``x``, false where a uniform 16-bit draw is < ``threshold``."""
    n = x.numel()
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
    draws = words.view(torch.int16)[:n].view(x.shape)  # uniform in [-32768, 32767]
    return draws >= threshold - _LEVELS // 2
