"""Compare the runs of a sweep: a table of configurations over seeds, significance, a plot.

    python -m slotfill.compare multirun/atis/compare_cells/TIME [--out DIR] [--bootstrap 1000]
    slotfill-compare multirun/atis/compare_cells/TIME

Every ``results.json`` below the folder is read (recursively). Runs are grouped by their
resolved config minus the seed (and the cross-validation fold, ``data.cv_fold``: a group's
dev F1 is then the mean over held-out folds) and the keys that do not change the model
(threads, LSTM kernel, device, resume, progress bars, logging, evaluation batch size,
checkpoint frequency). The table shows the keys that differ between groups, the seeds
(``seed/fN`` for fold N), dev and test slot F1 (mean ± sample standard deviation over the runs),
parameters, seconds per epoch, training tokens per second and the gradient decay per step
(from ``results.json``'s ``gradient_flow`` or a ``gradient_flow.json`` beside it, see
:mod:`slotfill.gradflow`; ``-`` when neither exists).

Significance: for every pair of configurations, a **paired bootstrap over test sentences**
(the runs' ``predictions/test.conll``; each resample draws the test sentences with
replacement, scores every run on it from per-sentence chunk counts, averages each
configuration's F1 over its seeds and takes the difference; two-sided p-value,
Holm-corrected over all pairs) and **Welch's t-test over the seeds' test F1**. The
bootstrap measures how much the difference depends on the particular test sentences, the
t-test how much it depends on the seed.

A job whose ``results.json`` says ``"status": "failed"``, and a job folder with Hydra's
``.hydra/`` but no ``results.json`` (killed, or still running) are listed separately.

Writes ``compare.md``, ``compare.csv`` (one row per configuration), ``compare_runs.csv``
(one row per run), ``compare_test_f1.png`` and, when gradient-flow data exist,
``compare_gradient_flow.png`` into the folder (or ``--out``).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slotfill.data.bio import spans

log = logging.getLogger(__name__)

# Keys that do not change what is trained (or that a sweep varies on purpose: the seed and
# the cross-validation fold, over which a configuration's runs are averaged).
IGNORED_KEYS = (
    "seed", "data.cv_fold", "threads", "lstm_kernel", "device", "resume", "trainer.progress",
    "trainer.eval_batch_size", "trainer.checkpoint_every_n_steps", "trainer.ensemble_jobs",
)
IGNORED_PREFIXES = ("hydra.", "logger.")
SKIP_DIRS = {"members", "checkpoints", "tensorboard", "predictions", ".hydra", ".submitit", "__pycache__"}
INSTALL_HINT = 'the plot needs matplotlib: pip install matplotlib  (or: pip install -e ".[sweep]")'


@dataclass
class Run:
    """One job folder of a sweep."""

    path: Path
    status: str  # finished | stopped_non_finite | failed | incomplete
    config: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)
    gradient_flow: dict[str, Any] | None = None
    error: str = ""
    overrides: list[str] = field(default_factory=list)  # the job's command-line overrides (.hydra/overrides.yaml)

    @property
    def ok(self) -> bool:
        return self.status not in ("failed", "incomplete")

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @property
    def sample(self) -> Any:
        """The seed, or ``seed/fN`` for a cross-validation run on fold N (``data.cv_folds``)."""
        data = self.config.get("data") or {}
        return f"{self.seed}/f{data.get('cv_fold', 0)}" if data.get("cv_folds") else self.seed


@dataclass
class Group:
    """Runs that share a configuration (up to the seed)."""

    key: tuple[tuple[str, Any], ...]
    runs: list[Run] = field(default_factory=list)

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.key)


# --------------------------------------------------------------------------- reading


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a.b": value}``; lists become JSON strings so that they can be compared."""
    flat: dict[str, Any] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(tree, list):
        flat[prefix[:-1]] = json.dumps(tree, sort_keys=True)
    else:
        flat[prefix[:-1] if prefix else ""] = tree
    return flat


def relevant(flat: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in flat.items()
        if k not in IGNORED_KEYS and not any(k.startswith(p) for p in IGNORED_PREFIXES)
    }


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        log.warning("%s: unreadable (%s); skipped", path, err)
        return None


def _hydra_config(run_dir: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    cfg = OmegaConf.load(path)
    try:
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except Exception:  # e.g. an interpolation into hydra's own config
        return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]


def _overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    try:
        return [str(o) for o in OmegaConf.to_container(OmegaConf.load(path))]  # type: ignore[union-attr]
    except Exception:
        return []


def _gradient_flow(run_dir: Path, results: dict[str, Any]) -> dict[str, Any] | None:
    if isinstance(results.get("gradient_flow"), dict):
        return results["gradient_flow"]
    path = run_dir / "gradient_flow.json"
    if path.is_file():
        data = _read_json(path)
        return data if isinstance(data, dict) else None
    return None


def _is_training_results(results: Any) -> bool:
    if not isinstance(results, dict):
        return False
    if results.get("status") == "failed":
        return True
    return "config" in results and "dev" in results and "test" in results


def collect_runs(root: str | Path) -> list[Run]:
    """Every training job below ``root``: scored, failed, or started and never finished."""
    root = Path(root)
    runs: list[Run] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        has_hydra = ".hydra" in dirnames
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        if "results.json" in filenames:
            results = _read_json(here / "results.json")
            if not _is_training_results(results):
                if results is not None:
                    log.info("%s: not a training run's results (skipped)", here)
                continue
            config = results.get("config") or _hydra_config(here)
            if results.get("status") == "failed":
                runs.append(Run(here, "failed", config, results, error=f"{results.get('error_type', 'Error')}: {results.get('error', '')}"))
            else:
                status = str(results.get("status", "finished"))
                runs.append(Run(here, status, config, results, _gradient_flow(here, results)))
        elif has_hydra and (here / ".hydra" / "config.yaml").is_file():
            runs.append(Run(here, "incomplete", _hydra_config(here), error="no results.json: killed, or still running"))
    runs.sort(key=lambda r: _natural_key(r.path))
    for run in runs:
        run.overrides = _overrides(run.path)
    return runs


def group_runs(runs: Iterable[Run]) -> list[Group]:
    """Groups in order of first appearance (a Hydra sweep's job order)."""
    groups: dict[tuple[tuple[str, Any], ...], Group] = {}
    for run in runs:
        key = tuple(sorted(relevant(flatten(run.config)).items(), key=lambda kv: kv[0]))
        groups.setdefault(key, Group(key)).runs.append(run)
    return list(groups.values())


def varying_keys(groups: Sequence[Group]) -> list[str]:
    """Keys whose values differ between groups, in the order of the runs' configs."""
    keys: list[str] = []
    for group in groups:
        for key in relevant(flatten(group.runs[0].config)):
            if key not in keys:
                keys.append(key)
    missing = object()
    return [k for k in keys if len({json.dumps(g.settings.get(k, missing), default=str) for g in groups}) > 1]


# --------------------------------------------------------------------------- statistics


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (``None`` for the std of fewer than two values)."""
    if not values:
        return None, None
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for aa in (m * (b - m) * x / ((a - 1.0 + 2 * m) * (a + 2 * m)), -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 1.0 + 2 * m))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float] | None:
    """Welch's unequal-variance t-test: ``(t, df, two-sided p)``, or ``None`` when undefined
    (fewer than two values on a side, or no variance at all)."""
    if len(a) < 2 or len(b) < 2:
        return None
    ma, va = mean_std(a)
    mb, vb = mean_std(b)
    sa, sb = (va or 0.0) ** 2 / len(a), (vb or 0.0) ** 2 / len(b)
    if sa + sb == 0.0:
        return None
    t = (ma - mb) / math.sqrt(sa + sb)  # type: ignore[operator]
    df = (sa + sb) ** 2 / ((sa**2 / (len(a) - 1) if sa else 0.0) + (sb**2 / (len(b) - 1) if sb else 0.0))
    p = betainc(df / 2.0, 0.5, df / (df + t * t))
    return t, df, min(1.0, p)


def read_conll_predictions(path: str | Path) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """``token gold predicted`` columns, blank line between sentences -> tokens, gold, predicted."""
    tokens: list[list[str]] = []
    gold: list[list[str]] = []
    pred: list[list[str]] = []
    current: list[list[str]] = [[], [], []]
    with Path(path).open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                if current[0]:
                    tokens.append(current[0])
                    gold.append(current[1])
                    pred.append(current[2])
                    current = [[], [], []]
                continue
            if len(parts) < 3:
                raise ValueError(f"{path}:{lineno}: expected 'token gold predicted'")
            current[0].append(parts[0])
            current[1].append(parts[-2])
            current[2].append(parts[-1])
    if current[0]:
        tokens.append(current[0])
        gold.append(current[1])
        pred.append(current[2])
    return tokens, gold, pred


def chunk_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> np.ndarray:
    """Per sentence ``(correct, predicted, gold)`` chunk counts, read as conlleval does.

    Summed over any set of sentences they give that set's micro F1 =
    ``2 correct / (predicted + gold)``, the same as seqeval's default mode.
    """
    counts = np.zeros((len(gold), 3), dtype=np.int64)
    for i, (g, p) in enumerate(zip(gold, pred)):
        gs, ps = set(spans(g)), set(spans(p))
        counts[i] = (len(gs & ps), len(ps), len(gs))
    return counts


def f1_from_counts(counts: np.ndarray) -> np.ndarray:
    """F1 from summed ``(correct, predicted, gold)`` along the last axis (0 where nothing)."""
    correct, predicted, gold = counts[..., 0], counts[..., 1], counts[..., 2]
    denominator = predicted + gold
    return np.where(denominator > 0, 2.0 * correct / np.maximum(denominator, 1), 0.0)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (``None`` entries are skipped)."""
    indexed = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    m = len(indexed)
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


@dataclass
class Comparison:
    a: int
    b: int
    diff: float  # mean test F1 of a minus b (seed means)
    bootstrap_p: float | None
    bootstrap_p_holm: float | None
    ci: tuple[float, float] | None  # 95% bootstrap interval of the difference
    welch_p: float | None


def _group_counts(group: Group, reference: list[list[str]] | None) -> tuple[np.ndarray | None, list[list[str]] | None]:
    """(seeds, sentences, 3) chunk counts of a group's runs, or ``None`` when a run lacks predictions
    or the runs were not scored on the same test sentences."""
    per_run = []
    for run in group.runs:
        path = run.path / "predictions" / "test.conll"
        if not path.is_file():
            return None, reference
        tokens, gold, pred = read_conll_predictions(path)
        if reference is None:
            reference = tokens
        elif tokens != reference:
            return None, reference
        per_run.append(chunk_counts(gold, pred))
    return np.stack(per_run), reference


def compare_groups(groups: Sequence[Group], resamples: int = 1000, seed: int = 0) -> tuple[list[Comparison], int]:
    """Every pair of groups: paired bootstrap over test sentences and Welch's t-test over seeds.

    Returns the comparisons and the number of test sentences (0 when no bootstrap was possible).
    """
    reference: list[list[str]] | None = None
    counts: list[np.ndarray | None] = []
    for group in groups:
        c, reference = _group_counts(group, reference)
        counts.append(c)
    n_sentences = len(reference) if reference is not None else 0
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n_sentences, size=(resamples, n_sentences)) if n_sentences else None
    boot_means: list[np.ndarray | None] = []
    for c in counts:
        if c is None or index is None:
            boot_means.append(None)
            continue
        # (seeds, resamples) F1 -> mean over seeds per resample
        boot_means.append(np.stack([f1_from_counts(run[index].sum(axis=1)) for run in c]).mean(axis=0))
    comparisons: list[Comparison] = []
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            fa = [r.results["test"]["f1"] for r in groups[i].runs]
            fb = [r.results["test"]["f1"] for r in groups[j].runs]
            diff = sum(fa) / len(fa) - sum(fb) / len(fb)
            p_boot, ci = None, None
            if boot_means[i] is not None and boot_means[j] is not None:
                delta = boot_means[i] - boot_means[j]
                below = (np.sum(delta <= 0) + 1) / (resamples + 1)
                above = (np.sum(delta >= 0) + 1) / (resamples + 1)
                p_boot = float(min(1.0, 2 * min(below, above)))
                ci = (float(np.percentile(delta, 2.5)), float(np.percentile(delta, 97.5)))
            welch = welch_t_test(fa, fb)
            comparisons.append(Comparison(i, j, diff, p_boot, None, ci, welch[2] if welch else None))
    for comp, adjusted in zip(comparisons, holm([c.bootstrap_p for c in comparisons])):
        comp.bootstrap_p_holm = adjusted
    return comparisons, n_sentences


# --------------------------------------------------------------------------- summary


def _decay(run: Run, stage: str) -> float | None:
    flow = run.gradient_flow or {}
    part = (flow.get(stage) or {}).get("forward") or {}
    value = part.get("decay")
    return float(value) if isinstance(value, (int, float)) else None


def _fmt_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def _pct(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def group_row(group: Group, keys: Sequence[str]) -> dict[str, Any]:
    """Plain values summarising a group's finished runs."""
    runs = [r for r in group.runs if r.ok]

    def values(get: Any) -> list[float]:
        out = []
        for r in runs:
            try:
                v = get(r)
            except (KeyError, TypeError):
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(float(v))
        return out

    dev_m, dev_s = mean_std(values(lambda r: r.results["dev"]["f1"]))
    test_m, test_s = mean_std(values(lambda r: r.results["test"]["f1"]))
    params = values(lambda r: r.results["params"])
    spe = values(lambda r: r.results["seconds_per_epoch"])
    tps = values(lambda r: r.results["tokens_per_second"])
    epochs = values(lambda r: r.results["epochs"])
    decay_init = [d for d in (_decay(r, "init") for r in runs) if d is not None]
    decay_final = [d for d in (_decay(r, "final") for r in runs) if d is not None]
    settings = group.settings
    return {
        **{k: settings.get(k) for k in keys},
        "seeds": [r.sample for r in runs],
        "runs": len(runs),
        "dev_f1_mean": dev_m, "dev_f1_std": dev_s,
        "test_f1_mean": test_m, "test_f1_std": test_s,
        "test_f1": values(lambda r: r.results["test"]["f1"]),
        "params": int(params[0]) if params else None,
        "epochs_mean": mean_std(epochs)[0],
        "seconds_per_epoch": mean_std(spe)[0],
        "tokens_per_second": mean_std(tps)[0],
        "grad_decay_init": mean_std(decay_init)[0],
        "grad_decay_final": mean_std(decay_final)[0],
        "grad_decay_final_std": mean_std(decay_final)[1],
        "grad_decay_runs": len(decay_final),
    }


def group_label(group: Group, keys: Sequence[str]) -> str:
    """Short name of a configuration from its differing keys (``cell=rnn bidirectional=true``)."""
    if not keys:
        return "all runs"
    return " ".join(f"{k.rsplit('.', 1)[-1]}={_fmt_value(group.settings.get(k))}" for k in keys)


@dataclass
class Summary:
    root: Path
    runs: list[Run]
    groups: list[Group]
    keys: list[str]
    rows: list[dict[str, Any]]
    comparisons: list[Comparison]
    test_sentences: int
    resamples: int

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.runs if not r.ok]


def summarize(root: str | Path, resamples: int = 1000, seed: int = 0) -> Summary:
    """Read, group and test every run below ``root``."""
    root = Path(root)
    runs = collect_runs(root)
    finished = [r for r in runs if r.ok]
    groups = group_runs(finished)
    # Keys from the finished runs' own resolved configs; a killed job's .hydra/config.yaml is
    # resolved now, in this environment, and could differ in paths only.
    keys = varying_keys(groups if len(groups) > 1 else group_runs(runs))
    rows = [group_row(g, keys) for g in groups]
    comparisons, sentences = compare_groups(groups, resamples, seed) if len(groups) > 1 else ([], 0)
    return Summary(root, runs, groups, keys, rows, comparisons, sentences, resamples)


def markdown(summary: Summary) -> str:
    """The comparison as Markdown: table, significance, failed runs."""
    keys = summary.keys
    lines = [
        f"# Comparison of {summary.root}",
        "",
        f"{sum(r.ok for r in summary.runs)} finished run(s) in {len(summary.groups)} configuration(s); "
        f"{len(summary.failed)} failed or incomplete. F1 is slot F1 (conlleval/seqeval default mode), "
        "in %, mean ± sample std over seeds; test is scored once at the best-dev epoch.",
        "",
    ]
    if any(isinstance(r.sample, str) for r in summary.runs):
        lines += [
            "Runs marked seed/fN are cross-validation folds (data.cv_folds): their dev F1 is the held-out "
            "fold's, and a configuration's mean is over its seeds and folds.",
            "",
        ]
    header = [*(k for k in keys), "seeds", "dev F1", "test F1", "params", "s/epoch", "tokens/s", "grad decay/step (init → final)"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for row in summary.rows:
        decay = "-"
        if row["grad_decay_final"] is not None:
            start = f"{row['grad_decay_init']:+.3f} → " if row["grad_decay_init"] is not None else ""
            decay = f"{start}{row['grad_decay_final']:+.3f}"
        cells = [
            *(_fmt_value(row[k]) for k in keys),
            ",".join(str(s) for s in row["seeds"]),
            _pct(row["dev_f1_mean"], row["dev_f1_std"]),
            _pct(row["test_f1_mean"], row["test_f1_std"]),
            f"{row['params']:,}" if row["params"] is not None else "-",
            _num(row["seconds_per_epoch"]),
            _num(row["tokens_per_second"], 0),
            decay,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if any(row["grad_decay_final"] is not None for row in summary.rows):
        lines += [
            "Grad decay: least-squares slope of log mean ||dL_T/dh_{T-k}|| against k (forward direction, "
            "loss at the last token), per step back in time; more negative = the gradient vanishes faster "
            "(see slotfill/gradflow.py).",
            "",
        ]
    lines += ["## Significance", ""]
    if not summary.comparisons:
        lines += ["Only one configuration: nothing to compare.", ""]
    else:
        if summary.test_sentences:
            lines.append(
                f"Paired bootstrap over the {summary.test_sentences} test sentences ({summary.resamples} resamples; "
                "each resample scores every run and averages F1 over a configuration's seeds; two-sided p, "
                f"Holm-corrected over the {len(summary.comparisons)} pairs) and Welch's t-test over the seeds' "
                "test F1 (uncorrected). Significant: Holm-corrected bootstrap p < 0.05."
            )
        else:
            lines.append("No shared predictions/test.conll files: Welch's t-test over the seeds' test F1 only (uncorrected).")
        lines += ["", "| A | B | Δ test F1 (A − B) | 95% bootstrap CI | bootstrap p (Holm) | Welch p | significant |", "|---|---|---|---|---|---|---|"]
        for c in summary.comparisons:
            a, b = summary.groups[c.a], summary.groups[c.b]
            ci = f"[{100 * c.ci[0]:+.2f}, {100 * c.ci[1]:+.2f}]" if c.ci else "-"
            boot = f"{c.bootstrap_p:.3f} ({c.bootstrap_p_holm:.3f})" if c.bootstrap_p is not None else "-"
            welch = f"{c.welch_p:.3f}" if c.welch_p is not None else "-"
            if c.bootstrap_p_holm is not None:
                significant = "yes" if c.bootstrap_p_holm < 0.05 else "no"
            else:
                significant = "yes (Welch)" if c.welch_p is not None and c.welch_p < 0.05 else "no"
            lines.append(
                f"| {group_label(a, summary.keys)} | {group_label(b, summary.keys)} | {100 * c.diff:+.2f} | {ci} | {boot} | {welch} | {significant} |"
            )
        lines.append("")
    lines += ["## Failed or incomplete runs", ""]
    if not summary.failed:
        lines += ["None.", ""]
    else:
        lines += ["| run | status | overrides (those not shared by every run) | error |", "|---|---|---|---|"]
        listed = [set(r.overrides) for r in summary.runs]
        shared = set.intersection(*listed) if len(listed) > 1 and all(listed) else set()
        for run in summary.failed:
            flat = flatten(run.config)
            conf = " ".join(o for o in run.overrides if o not in shared) or " ".join(
                f"{k}={_fmt_value(flat.get(k))}" for k in [*summary.keys, "seed"] if k in flat
            )
            error = run.error.splitlines()[0][:200].replace("|", "\\|") if run.error else "-"
            lines.append(f"| {_rel(run.path, summary.root)} | {run.status} | {conf or '-'} | {error} |")
        lines.append("")
    return "\n".join(lines)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


def write_csv(summary: Summary, path: Path) -> None:
    columns = [*summary.keys, "seeds", "runs", "dev_f1_mean", "dev_f1_std", "test_f1_mean", "test_f1_std", "params",
               "epochs_mean", "seconds_per_epoch", "tokens_per_second", "grad_decay_init", "grad_decay_final"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in summary.rows:
            writer.writerow(["" if row[c] is None else (" ".join(map(str, row[c])) if c == "seeds" else row[c]) for c in columns])


def write_runs_csv(summary: Summary, path: Path) -> None:
    columns = ["run", "status", *summary.keys, "seed", "dev_f1", "test_f1", "epochs", "seconds_per_epoch", "grad_decay_final", "error"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for run in summary.runs:
            flat = flatten(run.config)
            res = run.results
            writer.writerow([
                _rel(run.path, summary.root), run.status, *(flat.get(k, "") for k in summary.keys), run.sample,
                res.get("dev", {}).get("f1", "") if run.ok else "", res.get("test", {}).get("f1", "") if run.ok else "",
                res.get("epochs", "") if run.ok else "", res.get("seconds_per_epoch", "") if run.ok else "",
                "" if _decay(run, "final") is None else _decay(run, "final"), run.error.splitlines()[0] if run.error else "",
            ])


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError(INSTALL_HINT) from None
    return plt


def plot_test_f1(summary: Summary, path: Path) -> Path:
    """Test F1 per configuration: every seed a point, the mean a bar."""
    plt = _pyplot()
    labels = [group_label(g, summary.keys) for g in summary.groups]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(labels) + 2), 4.2))
    for x, row in enumerate(summary.rows):
        scores = [100 * v for v in row["test_f1"]]
        offsets = np.linspace(-0.12, 0.12, len(scores)) if len(scores) > 1 else [0.0]
        ax.scatter([x + o for o in offsets], scores, s=22, color="tab:blue", alpha=0.75, zorder=3, label="seed" if x == 0 else None)
        if scores:
            mean = sum(scores) / len(scores)
            ax.hlines(mean, x - 0.3, x + 0.3, color="black", linewidth=2, zorder=4, label="mean" if x == 0 else None)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([label.replace(" ", "\n") for label in labels], fontsize=8)
    ax.set_ylabel("test slot F1 (%)")
    ax.set_title(f"test slot F1 per configuration ({summary.root.resolve().name})")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_gradient_flow(summary: Summary, path: Path) -> Path | None:
    """Overlay the configurations' final gradient-flow curves (seeds averaged)."""
    from slotfill.gradflow import plot_gradient_flow as overlay

    curves: dict[str, dict[str, list[dict[str, Any]]]] = {"init": {}, "final": {}}
    for group in summary.groups:
        for stage, by_label in curves.items():
            found = [r.gradient_flow[stage] for r in group.runs if r.gradient_flow and r.gradient_flow.get(stage)]
            if found:
                by_label[group_label(group, summary.keys)] = found
    if not curves["final"]:
        return None
    title = f"gradient flow through time, forward direction ({summary.root.resolve().name})"
    return overlay(curves["final"], path, title=title, init=curves["init"] or None)


def write_outputs(summary: Summary, out_dir: Path, plots: bool = True) -> list[Path]:
    """``compare.md``, the CSVs and (when matplotlib is there) the plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    md = out_dir / "compare.md"
    md.write_text(markdown(summary), encoding="utf-8")
    written.append(md)
    write_csv(summary, out_dir / "compare.csv")
    write_runs_csv(summary, out_dir / "compare_runs.csv")
    written += [out_dir / "compare.csv", out_dir / "compare_runs.csv"]
    if plots and summary.rows:
        try:
            written.append(plot_test_f1(summary, out_dir / "compare_test_f1.png"))
            flow = plot_gradient_flow(summary, out_dir / "compare_gradient_flow.png")
            if flow is not None:
                written.append(flow)
        except (RuntimeError, SystemExit) as err:
            log.warning("no plot: %s", INSTALL_HINT if "matplotlib" in str(err) else err)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slotfill-compare", description="Compare the runs of a sweep (multirun folder).")
    parser.add_argument("root", help="multirun folder (searched recursively for results.json)")
    parser.add_argument("--out", default=None, help="where to write compare.md/.csv/.png (default: the folder itself)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    root = Path(args.root)
    if not root.is_dir():
        print(f"error: {root}: not a folder -- pass a multirun folder such as multirun/atis/compare_cells/<time>", file=sys.stderr)
        return 1
    if args.bootstrap < 1:
        print("error: --bootstrap must be >= 1", file=sys.stderr)
        return 1
    summary = summarize(root, args.bootstrap, args.seed)
    if not summary.runs:
        print(f"error: {root}: no results.json or Hydra job folder below it", file=sys.stderr)
        return 1
    written = write_outputs(summary, Path(args.out) if args.out else root, plots=not args.no_plot)
    print(markdown(summary))
    print("written: " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
