"""The recurrent encoder: Elman RNN, GRU or LSTM from ``torch.nn``, over packed sequences."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

CELLS = ("rnn", "gru", "lstm")
NONLINEARITIES = ("tanh", "relu")


class RecurrentEncoder(nn.Module):
    """Runs a (bi)directional, possibly stacked, recurrent network over a padded batch.

    ``cell="rnn"`` is the Elman network s_t = f(U x_t + W s_{t-1} + b) with f = tanh or
    relu and s_0 = 0 (``nn.RNN`` adds a second bias, which is the same function). Sequences
    are packed, so a padded position never feeds a real one and the backward direction of
    a bidirectional network starts at each utterance's own last token.

    Args:
        input_size: size of the word representation.
        hidden_size: state size per direction.
        cell: ``rnn``, ``gru`` or ``lstm``.
        nonlinearity: ``tanh`` or ``relu`` (``rnn`` only).
        bidirectional: also run right to left and concatenate.
        num_layers: stacked layers.
        dropout: dropout between stacked layers.
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
            dropout=dropout if num_layers > 1 else 0.0,
        )
        if cell == "rnn":
            self.rnn: nn.RNNBase = nn.RNN(nonlinearity=nonlinearity, **kwargs)
        elif cell == "gru":
            self.rnn = nn.GRU(**kwargs)
        else:
            self.rnn = nn.LSTM(**kwargs)
        self.cell = cell
        self.output_dim = hidden_size * (2 if bidirectional else 1)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Encode ``inputs`` (B, T, D) whose rows hold ``lengths`` (B,) real positions.

        Returns (B, T, H * directions), zero at padded positions.
        """
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, _ = self.rnn(packed)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=inputs.size(1))
        return output
