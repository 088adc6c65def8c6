"""slotfill's own LSTM kernel for the CPU: both directions at once, one thread each.

``slotfill/csrc/lstm.cpp`` runs one LSTM layer over a padded batch, forward and backward. Each
direction's input projections are one matrix product; then per step one (B, H) x (H, 4H)
product and one fused, vectorised loop over the gates, writing h_t straight to its place in
the batch-first output (the right-to-left direction walks each utterance from its own last
word; ended utterances drop out of the step). The backward pass mirrors it and computes the
input and weight gradients of all steps in three large products. The directions run at once
on separate threads: a step's products are too small to gain from a second thread, while
oneDNN's fused LSTM splits each of them over both cores and synchronises at every step. In
its first version, on the AVX2 machine (2 threads, default sizes), forward and backward of
both directions of a 32 x 11 batch took 8.8-11.1 ms against oneDNN's 12.0-16.6 ms, and 9.4 ms
against 11.0 ms inside an ATIS training epoch (profiler); the products run near what MKL
reaches on one core. Tagging (no autograd), a tagger's first layer projects each distinct word of the batch once
(:func:`words_layer`): ATIS's test split at batch 256 took 62-67 ms against oneDNN's 78-91 on
the Zen 4 machine. docs/performance.md has the measurements.

The kernel is compiled on first use with ``torch.utils.cpp_extension`` (a C++ compiler and
``ninja``; ~15 s once, cached under ``TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``).
It computes torch.nn.LSTM's function with other rounding (float sums in another order), so a
run's trajectory depends on which kernel trained it; ``lstm_kernel`` in the training config
chooses (:func:`resolve`), and checkpoints record the choice so that evaluation decodes with
the kernel that training scored with.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

import torch

from slotfill.errors import SlotfillError, first_line

log = logging.getLogger(__name__)

KERNELS = ("auto", "slotfill", "torch")
SOURCE = Path(__file__).resolve().parent.parent / "csrc" / "lstm.cpp"

_loaded = False
_error: str | None = None  # why the kernel could not be built, once it failed


def _flags() -> list[str]:
    flags = ["-O3", "-fopenmp"]
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        # at::vec's AVX2 implementation (Sleef's vectorised exp and tanh, from libtorch)
        flags += ["-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2"]
    return flags


def _build_name() -> str:
    """One build folder per checkout: cpp_extension rebuilds a folder whose source path changed,
    so two checkouts sharing one name would rebuild each other's kernel on every switch."""
    return "slotfill_lstm_" + hashlib.sha1(str(SOURCE).encode()).hexdigest()[:8]


def load() -> None:
    """Build (first time on this machine) and load the kernel; raises :class:`SlotfillError`."""
    global _loaded, _error
    if _loaded:
        return
    if _error is not None:
        raise SlotfillError(_error)
    from torch.utils import cpp_extension

    if shutil.which("ninja") is None:
        try:  # the ninja package (a dependency) puts its binary beside the interpreter's scripts
            import ninja

            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
        except ImportError:
            pass
    start = time.perf_counter()
    try:
        cpp_extension.load(
            _build_name(), [str(SOURCE)], extra_cflags=_flags(), extra_ldflags=["-fopenmp"],
            is_python_module=False, verbose=False,
        )
    except Exception as exc:  # compiler or ninja missing, build error: one line, remembered
        _error = (
            f"{SOURCE}: slotfill's LSTM kernel could not be built ({first_line(exc)}); "
            "install a C++ compiler and ninja, or set lstm_kernel=torch"
        )
        raise SlotfillError(_error) from None
    _loaded = True
    seconds = time.perf_counter() - start
    if seconds > 1.0:
        log.info("built slotfill's LSTM kernel in %.1f s (cached for later runs)", seconds)


def resolve(choice: str, cell: str, device: torch.device | str = "cpu", threads: int = 0, bidirectional: bool = True) -> str:
    """The kernel a run uses: ``"slotfill"`` or ``"torch"``.

    ``threads``: the run's intra-op threads (0: PyTorch's current count). ``auto`` picks
    slotfill's for a bidirectional LSTM on the CPU with two threads, one per direction, if it
    builds (and says why not when it does not). Elsewhere it keeps PyTorch's: one direction
    would leave the second core idle where oneDNN uses both; with more threads oneDNN splits
    each step over all of them while this kernel still uses two (not measured: this project's
    machines have two cores); at one thread this kernel is also faster, but the experiment
    configurations pin one thread and their published trajectories were trained with oneDNN.
    ``lstm_kernel=slotfill`` selects it for any LSTM on the CPU.
    """
    if choice not in KERNELS:
        raise SlotfillError(f"lstm_kernel={choice!r} is unknown: use one of {', '.join(KERNELS)}")
    if choice == "torch":
        return "torch"
    on_cpu = torch.device(device).type == "cpu"
    if choice == "slotfill":
        if cell != "lstm":
            raise SlotfillError(f"lstm_kernel=slotfill serves LSTM cells only (model.cell={cell}): use lstm_kernel=auto or torch")
        if not on_cpu:
            raise SlotfillError("lstm_kernel=slotfill runs on the CPU only: use lstm_kernel=auto or torch with a GPU")
        load()
        return "slotfill"
    if cell != "lstm" or not bidirectional or not on_cpu or (threads or torch.get_num_threads()) != 2:
        return "torch"
    return _loaded_or_torch()


def for_checkpoint(
    recorded: str | None, choice: str | None, cell: str, device: torch.device | str = "cpu", bidirectional: bool = True
) -> str:
    """The kernel to decode a checkpoint with: ``choice`` resolved, or with ``None`` the one it was
    trained with (``recorded``; checkpoints from before the kernel existed: ``"torch"``), so that
    scores repeat the trainer's. Falls back to PyTorch's, with a warning, where slotfill's
    cannot be built or the model is not on the CPU."""
    if choice is not None:
        return resolve(choice, cell, device, bidirectional=bidirectional)
    if recorded != "slotfill" or cell != "lstm":
        return "torch"
    if torch.device(device).type != "cpu":
        return "torch"
    return _loaded_or_torch()


def _loaded_or_torch() -> str:
    try:
        load()
    except SlotfillError as exc:
        log.warning("%s; using PyTorch's LSTM kernel", exc)
        return "torch"
    return "slotfill"


def _steps(
    rows: list[torch.Tensor], positions: torch.Tensor, w_hhs: list[torch.Tensor], lengths: torch.Tensor, save: bool
) -> list[torch.Tensor]:
    """The kernel's step loop over a padded batch (``lstm_steps`` in lstm.cpp): out (B, T, nH),
    then with ``save`` each direction's gate activations, c and h for the backward pass."""
    return torch.ops.slotfill.lstm_steps(rows, positions, w_hhs, lengths, save)


def _projections(x: torch.Tensor, weights: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Each direction's input projections x W_ih^T + b_ih + b_hh of the rows of x (N, D)."""
    return [torch.addmm(b_ih + b_hh, x, w_ih.t()) for w_ih, _, b_ih, b_hh in weights]


class _Layer(torch.autograd.Function):
    """One layer's directions over a padded batch as one differentiable call."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, positions: torch.Tensor, lengths: torch.Tensor, n: int, *flat: torch.Tensor):  # type: ignore[override]
        weights = [list(flat[4 * k : 4 * k + 4]) for k in range(n)]
        result = _steps(_projections(x, weights), positions, [w[1] for w in weights], lengths, True)
        ctx.n = n
        ctx.save_for_backward(x, lengths, *flat, *result[1:])
        return result[0]

    @staticmethod
    def backward(ctx, dout: torch.Tensor):  # type: ignore[override]
        n = ctx.n
        x, lengths, *rest = ctx.saved_tensors
        flat, saved = rest[: 4 * n], rest[4 * n :]
        grads = torch.ops.slotfill.lstm_steps_backward(x, flat, saved, lengths, dout)  # made contiguous there
        dx = grads[0] if n == 1 else grads[0] + grads[4]
        dweights = []
        for k in range(n):
            _, dw_ih, dw_hh, db = grads[4 * k : 4 * k + 4]
            dweights += [dw_ih, dw_hh, db, db]  # h = ... + b_ih + b_hh: both biases get the same gradient
        return (dx, None, None, None, *dweights)


def layer(x: torch.Tensor, lengths: torch.Tensor, weights: list[list[torch.Tensor]]) -> torch.Tensor:
    """One LSTM layer over a padded batch, its one or two directions at once, from h_0 = c_0 = 0.

    ``x`` (B, T, D) float32 on the CPU; ``lengths`` (B,) int64; ``weights[k]`` = [W_ih, W_hh,
    b_ih, b_hh] of direction k in ``torch.nn.LSTM``'s layout, the second direction running
    right to left within each length. Returns (B, T, H * len(weights)), zero at padding;
    differentiable when autograd records. Call :func:`load` first.
    """
    batch, width, dim = x.shape
    rows = x.reshape(batch * width, dim).contiguous()
    positions = torch.arange(batch * width, device=x.device).view(batch, width)
    flat = [w for ws in weights for w in ws]
    if torch.is_grad_enabled() and any(t.requires_grad for t in (rows, *flat)):
        return _Layer.apply(rows, positions, lengths, len(weights), *flat)
    return _steps(_projections(rows, weights), positions, [w[1] for w in weights], lengths, False)[0]


def words_layer(table: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor, weights: list[list[torch.Tensor]]) -> torch.Tensor:
    """:func:`layer` over ``table[ids]`` without autograd (tagging): each distinct word of the
    batch is projected once, not every position. ``table`` (V, D), ``ids`` (B, T)."""
    distinct, positions = torch.unique(ids, return_inverse=True)
    rows = table[distinct]  # (U, D)
    return _steps(_projections(rows, weights), positions.contiguous(), [w[1] for w in weights], lengths, False)[0]
