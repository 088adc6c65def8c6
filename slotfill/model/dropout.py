"""Dropout with a cheaper random mask than ``nn.Dropout`` on the CPU.

``nn.Dropout`` draws its mask with ``bernoulli_``, which on the CPU costs about 10 ns per
element: profiling the default BiLSTM on ATIS put it at ~17% of a training step. Here each
element gets 16 random bits, cut from 64-bit integers that ``torch.randint`` draws at well
under a nanosecond per element, so the mask costs about a sixth as much.

The drop probability is rounded to a multiple of 1/65536 (0.5 exactly; 0.3 becomes
0.300003) and kept elements are scaled by exactly 1 / (1 - that probability), so the
expected output still equals the input. The masks come from PyTorch's default generator,
so ``torch.manual_seed`` and ``torch.get_rng_state`` reproduce and resume them.

``locked=True`` is variational (locked) dropout (Gal & Ghahramani, 2016; Merity et al.'s
AWD-LSTM): on a (B, T, D) sequence each utterance draws one mask of D elements and drops the
same features at every time step, instead of a fresh mask per token. Inputs of other shapes
(a pooled (B, D) vector) already hold one row per utterance and are dropped elementwise.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_LEVELS = 1 << 16


class Dropout(nn.Module):
    """Zeroes each element with probability ``p`` in training; the identity in eval mode.

    ``locked``: on (B, T, D) input, one mask per utterance shared by all its time steps.
    """

    def __init__(self, p: float = 0.5, locked: bool = False):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.locked = locked
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
        # Read as bytes (0 or 1): PyTorch converts uint8 to float ~5x faster than bool.
        shape = (x.size(0), 1, x.size(2)) if self.locked and x.dim() == 3 else x.shape
        mask = keep_mask(shape, self._threshold, x.device).view(torch.uint8)
        return x * mask.to(x.dtype).mul_(self._scale)

    def extra_repr(self) -> str:
        return f"p={self.p}, locked=True" if self.locked else f"p={self.p}"


def keep_mask(shape: torch.Size | tuple[int, ...], threshold: int, device: torch.device | None = None) -> torch.Tensor:
    """A bool tensor of ``shape``, false where a uniform 16-bit draw is < ``threshold``."""
    n = math.prod(shape)
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    draws = words.view(torch.int16)[:n].view(shape)  # uniform in [-32768, 32767]
    return draws >= threshold - _LEVELS // 2
