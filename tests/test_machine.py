"""The machine facts a run records: they decide which trajectory a seed follows."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from slotfill.machine import cpu_capability, describe_environment, environment, processor
from slotfill.training import train
from tests.conftest import compose_train


def test_environment_names_kernels_threads_and_isa_variables(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.delenv("MKL_ENABLE_INSTRUCTIONS", raising=False)
    env = environment()
    assert env["torch"] == torch.__version__ and env["threads"] == torch.get_num_threads()
    assert env["cpu_capability"] == cpu_capability() and env["cpu_capability"] in processor()
    assert env["isa_variables"] == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    line = describe_environment({**env, "threads": 1})
    assert ", 1 thread, torch " in line and line.endswith("(ONEDNN_MAX_CPU_ISA=AVX2)")
    assert "2 threads" in describe_environment({**env, "threads": 2, "isa_variables": {}})


def test_a_run_logs_and_records_its_machine(tiny_corpus: Path, tmp_path: Path, caplog, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", "trainer.max_epochs=1", "threads=1"])
    with caplog.at_level(logging.INFO, logger="slotfill.training"):
        results = train(cfg, tmp_path / "run")
    recorded = json.loads((tmp_path / "run" / "results.json").read_text())["environment"]
    assert recorded == results["environment"]
    assert recorded["threads"] == 1 and recorded["cpu_capability"] == cpu_capability()
    assert any(r.getMessage().startswith("machine: ") and "1 thread" in r.getMessage() for r in caplog.records)
