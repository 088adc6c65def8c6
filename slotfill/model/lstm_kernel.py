"""slotfill's own LSTM kernel for the CPU: both directions at once, one thread each.

``slotfill/csrc/lstm.cpp`` holds one layer's forward and backward passes for any number of
independent directions. Each pass projects all steps' inputs in one matrix product, then per
step does one (B, H) x (H, 4H) product and one fused, vectorised loop over the gates; the
backward pass mirrors it and computes the weight and input gradients of all steps in three
large products. The directions run at once on separate threads: a step's products are too
small to gain from a second thread, while oneDNN's fused LSTM splits each of them over both
cores and synchronises at every step. On the AVX2 machine (2 threads, default sizes), forward
and backward of both directions of a 32 x 11 batch took 8.8-11.1 ms alone against oneDNN's
12.0-16.6 ms, and 9.4 ms against 11.0 ms inside an ATIS training epoch (profiler); the
products run at ~65 GFLOP/s per core, close to what MKL reaches on such shapes, so that is
most of what a kernel can gain there. Without autograd (tagging, dev scoring) :func:`infer`
runs a layer's directions in one call over the padded batch, reads each step's input
projection from a table (one row per distinct word of the batch in a tagger's first layer)
and writes the states into place: ATIS's test split at batch 256 took 62-67 ms against
oneDNN's 78-91 on the Zen 4 machine. docs/performance.md has the measurements.

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


class _Passes(torch.autograd.Function):
    """n one-layer passes (time-major inputs, s_0 = 0) as one differentiable call."""

    @staticmethod
    def forward(ctx, n: int, *tensors: torch.Tensor):  # type: ignore[override]
        xs, weights = list(tensors[:n]), list(tensors[n:])
        out = torch.ops.slotfill.lstm_forward(xs, weights)
        ctx.n = n
        ctx.save_for_backward(*xs, *weights, *out)
        return tuple(out[3 * k] for k in range(n))

    @staticmethod
    def backward(ctx, *dhs: torch.Tensor):  # type: ignore[override]
        n = ctx.n
        saved = ctx.saved_tensors
        xs, weights, out = saved[:n], saved[n : 5 * n], saved[5 * n :]
        grads = torch.ops.slotfill.lstm_backward(list(xs), list(weights), list(out), list(dhs))  # made contiguous there
        dxs, dweights = [], []
        for k in range(n):
            dx, dw_ih, dw_hh, db = grads[4 * k : 4 * k + 4]
            dxs.append(dx)
            dweights += [dw_ih, dw_hh, db, db]  # h = ... + b_ih + b_hh: both biases get the same gradient
        return (None, *dxs, *dweights)


def lstm_passes(xs: list[torch.Tensor], weights: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """One LSTM layer pass per input, at once: ``xs[k]`` (T, B, D) time-major float32 on the
    CPU, ``weights[k]`` = [W_ih, W_hh, b_ih, b_hh] in ``torch.nn.LSTM``'s layout; returns each
    pass's states (T, B, H), run left to right from h_0 = c_0 = 0. Call :func:`load` first."""
    flat = [w for ws in weights for w in ws]
    if torch.is_grad_enabled() and any(t.requires_grad for t in (*xs, *flat)):
        return list(_Passes.apply(len(xs), *xs, *flat))
    out = torch.ops.slotfill.lstm_forward(xs, flat)
    return [out[3 * k] for k in range(len(xs))]


def infer(rows: list[torch.Tensor], positions: torch.Tensor, w_hhs: list[torch.Tensor], lengths: torch.Tensor) -> torch.Tensor:
    """Inference only: one LSTM layer over a padded batch, its directions at once.

    ``rows[k]`` (N, 4H), contiguous float32: direction k's input projections
    x W_ih^T + b_ih + b_hh, one per distinct input; ``positions`` (B, T) int64: the row each
    position reads; ``lengths`` (B,) int64; ``w_hhs[k]``: that direction's W_hh. The second
    direction runs right to left within each length. Returns (B, T, H * len(rows)) from
    h_0 = c_0 = 0, zero at padding. Call :func:`load` first."""
    return torch.ops.slotfill.lstm_infer(rows, positions, w_hhs, lengths)
