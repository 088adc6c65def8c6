"""What a run's numbers depend on besides its config: the CPU's vector kernels and the threads.

Float sums, and with them whole training trajectories, differ between PyTorch's AVX2 and
AVX-512 kernels and between thread counts; one seed gives one trajectory per (kernels,
threads). On 2026-12-06 an AVX-512 machine repeated 2026-12-03's AVX-512 runs to the digit,
and the same machine with the variables below set to AVX2 repeated an AVX2 machine's run to
the digit. So ``results.json`` records these, and the log prints them.

To repeat a run made with AVX2 kernels on an AVX-512 machine::

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 python train.py ...
"""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

# PyTorch's own kernels, oneDNN's (the fused LSTM) and MKL's (linear layers) dispatch separately.
ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def cpu_capability() -> str:
    """The vector instruction set PyTorch's CPU kernels dispatch to here (``AVX512``, ``AVX2``, ...)."""
    return torch.backends.cpu.get_cpu_capability()


def processor() -> str:
    """The CPU as far as it can be named, e.g. ``AMD EPYC (family 25, model 17), AVX512 kernels``.

    ``/proc/cpuinfo``'s model name, family and model where there is one, and the widest
    vector instruction set PyTorch's CPU kernels dispatch to here.
    """
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    name = info.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    if "cpu family" in info and "model" in info:
        name += f" (family {info['cpu family']}, model {info['model']})"
    return f"{name}, {cpu_capability()} kernels"


def environment() -> dict[str, Any]:
    """The facts above as one dict, for ``results.json``."""
    return {
        "torch": torch.__version__,
        "processor": processor(),
        "cpu_capability": cpu_capability(),
        "threads": torch.get_num_threads(),
        "isa_variables": {name: os.environ[name] for name in ISA_VARIABLES if name in os.environ},
    }


def describe_environment(env: dict[str, Any]) -> str:
    """One line, e.g. ``AMD EPYC (family 25, model 17), AVX512 kernels, 1 thread, torch 2.13.0+cpu``."""
    threads = f"{env['threads']} thread{'s' if env['threads'] != 1 else ''}"
    line = f"{env['processor']}, {threads}, torch {env['torch']}"
    if env["isa_variables"]:
        line += " (" + " ".join(f"{k}={v}" for k, v in env["isa_variables"].items()) + ")"
    return line
