"""Multirun support: per-job thread budgets and failure markers.

Two rules apply only when Hydra runs in multirun mode (``python train.py -m ...``):

**Threads.** ``threads=0`` (the default) means *auto*. Jobs that run side by side share the
machine's cores, so each job gets ``jobs x threads = cores``:

* joblib launcher: ``threads = max(1, cores // n_jobs)`` (``n_jobs=-1`` means one job per core,
  so one thread each; ``-2`` all cores but one, as in joblib);
* submitit launchers (``slurm``, ``submitit_local``): ``threads = hydra.launcher.cpus_per_task``,
  else ``$SLURM_CPUS_PER_TASK``, else 1;
* the basic launcher runs one job at a time, so PyTorch's default (all cores) stays.

``cores`` is the number of CPUs this process may run on. ``threads=N`` (N > 0) always wins.

**Failures.** A job that raises does not stop the sweep: its folder gets a ``results.json``
with ``"status": "failed"`` and the error, and the job returns ``None``, which the basic and
joblib sweeps accept and the Optuna sweeper records as a failed trial. A stop signal
(SIGINT/SIGTERM/SIGUSR1 caught by the trainer) still stops the whole sweep.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

FAILED = "failed"


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def in_multirun() -> bool:
    """Whether the running Hydra job is part of a multirun (``-m``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return False
    return HydraConfig.get().mode == RunMode.MULTIRUN


def _joblib_workers(n_jobs: int, cores: int) -> int:
    """How many jobs joblib runs at once for ``n_jobs`` (negative counts back from ``cores``)."""
    if n_jobs < 0:
        return max(1, cores + 1 + n_jobs)
    return max(1, n_jobs)


def auto_threads(launcher: Any, cores: int | None = None, environ: dict[str, str] | None = None) -> int:
    """Torch threads for one job of a sweep run by ``launcher`` (its Hydra config node).

    Returns 0 (leave PyTorch's default) for launchers that run one job at a time or that
    this rule does not know.
    """
    cores = available_cores() if cores is None else cores
    environ = os.environ if environ is None else environ
    target = str(launcher.get("_target_", "")) if launcher is not None else ""
    if target.endswith("JoblibLauncher"):
        return max(1, cores // _joblib_workers(int(launcher.get("n_jobs", -1)), cores))
    if "hydra_submitit_launcher" in target:
        cpus = launcher.get("cpus_per_task")
        if cpus:
            return int(cpus)
        slurm = environ.get("SLURM_CPUS_PER_TASK", "")
        return int(slurm) if slurm.isdigit() and int(slurm) > 0 else 1
    return 0


def apply_auto_threads(cfg: DictConfig) -> int:
    """Resolve ``threads=0`` for a multirun job in place; returns the threads the job will use (0: default)."""
    if cfg.get("threads", 0) or not in_multirun():
        return int(cfg.get("threads", 0))
    from hydra.core.hydra_config import HydraConfig

    launcher = HydraConfig.get().launcher
    threads = auto_threads(launcher)
    if threads:
        with open_dict(cfg):
            cfg.threads = threads
        log.info("threads=auto: %d torch thread(s) for this job (%d cores shared by the sweep's parallel jobs)", threads, available_cores())
    return threads


def _plain_config(cfg: DictConfig) -> Any:
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an unresolvable interpolation may be the very error being reported
        return OmegaConf.to_container(cfg, resolve=False)


def mark_failed(output_dir: str | Path, err: BaseException, cfg: DictConfig | None = None) -> dict[str, Any]:
    """Write ``results.json`` with ``"status": "failed"`` and the error into a job's folder."""
    import slotfill

    output_dir = Path(output_dir)
    record: dict[str, Any] = {
        "status": FAILED,
        "error": str(err) or type(err).__name__,
        "error_type": type(err).__name__,
        "traceback": "".join(traceback.format_exception(type(err), err, err.__traceback__))[-4000:],
        "slotfill_version": slotfill.__version__,
    }
    if cfg is not None:
        record["config"] = _plain_config(cfg)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "results.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    except OSError as write_err:
        log.error("%s: could not write the failure marker (%s)", output_dir, write_err)
    return record


def _scored_results(output_dir: Path) -> dict[str, Any] | None:
    """The job folder's ``results.json`` when it holds scores (the trainer wrote it), else ``None``."""
    path = output_dir / "results.json"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(results, dict) and results.get("status") != FAILED and "dev" in results and "test" in results:
        return results
    return None


def run_sweep_job(task: Callable[[], dict[str, Any]], cfg: DictConfig, output_dir: str | Path) -> dict[str, Any] | None:
    """Run one multirun job so that an exception does not stop the sweep.

    When ``task`` raises after the trainer scored a model (a diverged run whose best
    checkpoint was still evaluated, or a finished run asked to resume), the job folder's
    ``results.json`` is kept and returned. Otherwise the job is marked failed
    (:func:`mark_failed`) and ``None`` is returned.

    A stop signal stops the sweep as asked: an error carrying ``signum`` (the trainer's
    ``TrainingInterrupted``, raised after it saved ``last.pt``) becomes ``SystemExit`` with the
    error's exit code, which Hydra does not catch; the job folder is left without
    ``results.json`` (``slotfill.compare`` lists it as incomplete, ``resume=`` continues it).
    ``KeyboardInterrupt`` and ``SystemExit`` pass through untouched.
    """
    output_dir = Path(output_dir)
    try:
        return task()
    except Exception as err:
        from slotfill.errors import SlotfillError

        if getattr(err, "signum", None) is not None:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(getattr(err, "exit_code", 1)) from None

        scored = _scored_results(output_dir)
        if scored is not None:
            log.error("%s (its scores in %s/results.json are kept)", err, output_dir)
            return scored
        log.error(
            "job failed, the sweep goes on (marked in %s/results.json): %s: %s", output_dir, type(err).__name__, err,
            exc_info=not isinstance(err, SlotfillError),
        )
        mark_failed(output_dir, err, cfg)
        return None
