"""Output layers: per-token slot logits and an utterance-level intent classifier."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from slotfill.model.dropout import Dropout


def checked_linear_op(op: Callable[..., torch.Tensor] | None) -> Callable[..., torch.Tensor] | None:
    """``op`` if it computes ``x @ w.T + b`` as ``op(x, w, b, "none", [], "")`` does in
    PyTorch 2.x, else ``None``: the operator is private, and a release that changes or drops
    it must fall back to ``nn.Linear`` rather than fail or give wrong scores."""
    if op is None:
        return None
    x = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    w = torch.tensor([[1.0, 0.0, -1.0], [2.0, 1.0, 0.5]])
    b = torch.tensor([0.25, -0.5])
    try:
        with torch.inference_mode():
            out = op(x, w, b, "none", [], "")
    except (RuntimeError, TypeError, ValueError):
        return None
    ok = isinstance(out, torch.Tensor) and out.shape == (2, 2) and torch.allclose(out, x @ w.T + b)
    return op if ok else None


_ONEDNN_LINEAR = checked_linear_op(
    getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None
)


def dense(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)``; without autograd on a CPU, through oneDNN's matrix product.

    PyTorch's CPU ``linear`` calls MKL, which on AMD processors runs at under half the fp32
    rate of oneDNN's kernels (190 against 435 GFLOP/s on two cores of this project's
    machines); the recurrent layers already run in oneDNN. The function is the same, and
    the sums round differently only in the last bits. Training (autograd), tracing for
    export, other devices and dtypes, and PyTorch builds without the operator take ``layer``.
    """
    if (
        _ONEDNN_LINEAR is None or torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32
        or torch.jit.is_tracing() or torch.jit.is_scripting()
    ):
        return layer(x)
    return _ONEDNN_LINEAR(x, layer.weight, layer.bias, "none", [], "")


class SoftmaxHead(nn.Module):
    """y_t = softmax(V h_t + c): the seed's output layer (returns the logits V h_t + c)."""

    def __init__(self, input_dim: int, num_tags: int, dropout: float = 0.0, locked: bool = False):
        super().__init__()
        self.dropout = Dropout(dropout, locked)
        self.linear = nn.Linear(input_dim, num_tags)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return dense(self.linear, self.dropout(states))  # (B, T, C)


class IntentHead(nn.Module):
    """Max-pools the encoder states over real tokens and classifies the utterance."""

    def __init__(self, input_dim: int, num_intents: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = Dropout(dropout)
        self.linear = nn.Linear(input_dim, num_intents)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not bool(mask.all()):  # padding must not win the max; a full batch needs no mask
            states = torch.where(mask.unsqueeze(-1), states, float("-inf"))
        pooled = states.amax(dim=1)  # (B, H)
        return dense(self.linear, self.dropout(pooled))  # (B, I)
