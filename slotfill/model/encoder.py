"""The recurrent encoder: Elman RNN, GRU or LSTM, exact on padded batches without packing."""

from __future__ import annotations

import torch
from torch import nn

from slotfill.model import lstm_kernel
from slotfill.model.dropout import Dropout

CELLS = ("rnn", "gru", "lstm")
NONLINEARITIES = ("tanh", "relu")


def layer_weights(rnn: nn.RNNBase, layer: int, reverse: bool) -> list[torch.Tensor]:
    """``[W_ih, W_hh, b_ih, b_hh]`` of one layer and direction of a ``torch.nn`` recurrent module."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    weights = []
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        tensor = getattr(rnn, name + suffix, None)
        if tensor is None:
            raise ValueError("expected a recurrent module with biases (bias=True) and no projection")
        weights.append(tensor)
    return weights


class RecurrentEncoder(nn.Module):
    """Runs a (bi)directional, possibly stacked, recurrent network over a padded batch.

    ``cell="rnn"`` is the Elman network s_t = f(U x_t + W s_{t-1} + b) with f = tanh or
    relu and s_0 = 0 (``nn.RNN`` adds a second bias, which is the same function).

    Padding never reaches a real position, and no ``PackedSequence`` is built: PyTorch's
    fused CPU kernels (oneDNN for the LSTM) serve only unpacked input, and the packed path
    is 2-3x slower. A left-to-right pass over a right-padded batch is already exact at the
    real positions, since padding comes after them. The right-to-left pass runs left to
    right over each utterance reversed *within its own length* (padding stays at the end)
    and is reversed back the same way, so it too starts at each utterance's own last token.
    Each layer and direction is one call to the same kernel ``nn.LSTM`` uses, with the
    weights of the ``nn.RNN``/``nn.GRU``/``nn.LSTM`` module this encoder holds (so its state
    dict is that module's). When every utterance of the batch has the same length, both
    directions are one bidirectional call, the kernel running the second right to left.

    ``kernel = "slotfill"`` (LSTM only; set by the trainer from ``lstm_kernel``, see
    :mod:`slotfill.model.lstm_kernel`) runs each layer's directions in slotfill's own kernel
    instead, at once on separate threads, which walks the right-to-left direction from each
    utterance's own last word itself; outside a trace, on the CPU in float32. Same function,
    other rounding. Without gradients, when the caller says that the inputs are rows of a
    table (``lookup``: word embeddings with nothing added), that kernel's first layer projects
    each distinct word of the batch once instead of every position.

    Args:
        input_size: size of the word representation.
        hidden_size: state size per direction.
        cell: ``rnn``, ``gru`` or ``lstm``.
        nonlinearity: ``tanh`` or ``relu`` (``rnn`` only).
        bidirectional: also run right to left and concatenate.
        num_layers: stacked layers.
        dropout: dropout between stacked layers.
        locked_dropout: that dropout draws one mask per utterance, shared by its time steps.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        cell: str = "lstm",
        nonlinearity: str = "tanh",
        bidirectional: bool = True,
        num_layers: int = 1,
        dropout: float = 0.0,
        locked_dropout: bool = False,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
        kwargs = dict(
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            batch_first=True,
            # nn.* modules warn about dropout with one layer; the dropout between layers
            # is applied here, in forward.
            dropout=0.0,
        )
        if cell == "rnn":
            self.rnn: nn.RNNBase = nn.RNN(nonlinearity=nonlinearity, **kwargs)
            self._kernel = torch._VF.rnn_tanh if nonlinearity == "tanh" else torch._VF.rnn_relu
        elif cell == "gru":
            self.rnn = nn.GRU(**kwargs)
            self._kernel = torch._VF.gru
        else:
            self.rnn = nn.LSTM(**kwargs)
            self._kernel = torch._VF.lstm
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.directions = 2 if bidirectional else 1
        self.between_layers = Dropout(dropout if num_layers > 1 else 0.0, locked_dropout)
        self.output_dim = hidden_size * self.directions
        self.kernel = "torch"  # or "slotfill" (LSTM): not part of the state dict

    def _run(self, inputs: torch.Tensor, layer: int, reverse: tuple[bool, ...]) -> torch.Tensor:
        """One layer over (B, T, D) from s_0 = 0, one kernel call.

        ``reverse=(False,)``: left to right; ``(True,)``: the right-to-left weights, still run
        left to right (the caller reverses the input); ``(False, True)``: both directions,
        the kernel running the second right to left over the full width.
        """
        h0 = inputs.new_zeros(len(reverse), inputs.size(0), self.hidden_size)
        hx = (h0, h0) if self.cell == "lstm" else h0
        weights = [w for r in reverse for w in layer_weights(self.rnn, layer, r)]
        # (input, hx, weights, has_biases, num_layers, dropout, train, bidirectional, batch_first)
        result = self._kernel(inputs, hx, weights, True, 1, 0.0, self.training, len(reverse) == 2, True)
        return result[0]  # (B, T, H * len(reverse))

    def _run_own(
        self, x: torch.Tensor, lengths: torch.Tensor, lookup: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` in slotfill's kernel: each layer is one call that runs its directions
        at once over the padded batch and writes the states into place (no flips, transposes,
        concatenation or padding mask around it). Tagging with ``lookup``, the first layer
        projects each distinct word of the batch once. Returns the last and first layer's states."""
        lengths = lengths.long().contiguous()
        words = lookup is not None and x.size(0) > 1 and not torch.is_grad_enabled()  # one utterance rarely repeats a word
        first = x
        for layer in range(self.num_layers):
            if layer:
                x = self.between_layers(x)
            weights = [layer_weights(self.rnn, layer, bool(k)) for k in range(self.directions)]
            if layer == 0 and words:
                x = lstm_kernel.words_layer(*lookup, lengths, weights)
            else:
                x = lstm_kernel.layer(x, lengths, weights)
            if layer == 0:
                first = x
        return x, first

    def forward(
        self,
        inputs: torch.Tensor,
        lengths: torch.Tensor,
        first_layer: bool = False,
        lookup: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Encode ``inputs`` (B, T, D) whose rows hold ``lengths`` (B,) real positions.

        Returns (B, T, H * directions), zero at padded positions; with ``first_layer``, also
        the first layer's states (the same tensor for one layer), whose forward half has read
        only the words up to t and whose backward half only those from t on.

        ``lookup = (table, ids)``, optional: ``inputs[b, t]`` is ``table[ids[b, t]]`` ((V, D) and
        (B, T)); slotfill's kernel then projects distinct words, not positions, when no
        gradient is recorded. The result is the same function of the inputs.
        """
        batch, width, _ = inputs.shape
        lengths = lengths.to(inputs.device)
        own = (
            self.kernel == "slotfill" and inputs.device.type == "cpu" and inputs.dtype == torch.float32
            and not torch.jit.is_tracing() and not torch.jit.is_scripting()
        )
        if own:
            x, first = self._run_own(inputs, lengths, lookup)
            return (x, first) if first_layer else x
        ragged = bool((lengths != width).any())
        if ragged:
            positions = torch.arange(width, device=inputs.device)
            real = positions < lengths.unsqueeze(1)  # (B, T)
            # t -> L - 1 - t inside the utterance, t -> t on padding; its own inverse.
            reverse = torch.where(real, lengths.unsqueeze(1) - 1 - positions, positions)
            reverse = reverse.unsqueeze(-1)  # (B, T, 1)

        def flip(x: torch.Tensor) -> torch.Tensor:  # within each row's length (ragged batches only)
            return x.gather(1, reverse.expand_as(x))

        x = inputs
        first = None
        for layer in range(self.num_layers):
            if layer:
                x = self.between_layers(x)
            if self.directions == 1:
                x = self._run(x, layer, (False,))
            elif not ragged:  # every row full: the kernel's own right-to-left pass is exact
                x = self._run(x, layer, (False, True))
            else:
                x = torch.cat([self._run(x, layer, (False,)), flip(self._run(flip(x), layer, (True,)))], dim=-1)
            if layer == 0:
                first = x
        if ragged:
            x = torch.where(real.unsqueeze(-1), x, 0.0)  # one pass; masked_fill clones, then fills
        return (x, first) if first_layer else x


def use_kernel(model: nn.Module, kernel: str) -> None:
    """Run every LSTM encoder in ``model`` with ``kernel`` (``"slotfill"`` or ``"torch"``; see
    :func:`slotfill.model.lstm_kernel.resolve`, which also builds slotfill's)."""
    if kernel not in ("slotfill", "torch"):
        raise ValueError(f"kernel must be 'slotfill' or 'torch', got {kernel!r}")
    for module in model.modules():
        if isinstance(module, RecurrentEncoder) and module.cell == "lstm":
            module.kernel = kernel
