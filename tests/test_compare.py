"""slotfill.compare on hand-made sweep folders: grouping, statistics, significance, failures."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import f1_score

from slotfill import compare
from slotfill.data.bio import repair_bio

N_SENTENCES = 60


def _config(cell: str, bidirectional: bool, seed: int, threads: int = 1) -> dict:
    return {
        "data": {"name": "atis", "dir": "/data/atis", "format": "jointbert"},
        "model": {"cell": cell, "bidirectional": bidirectional, "hidden_size": 200},
        "trainer": {"lr": 0.001, "progress": None, "eval_batch_size": 256},
        "optim": {"_target_": "torch.optim.Adam", "betas": [0.9, 0.999]},
        "logger": {"tensorboard": True},
        "seed": seed, "threads": threads, "device": "cpu", "resume": None,
    }


def _write_predictions(run: Path, correct: int) -> float:
    """N sentences with one gold city chunk each; the first ``correct`` are predicted right."""
    lines = []
    for i in range(N_SENTENCES):
        pred = "B-city" if i < correct else "O"
        lines += ["from O O", f"town{i} B-city {pred}", "today B-date B-date", ""]
    (run / "predictions").mkdir(parents=True, exist_ok=True)
    (run / "predictions" / "test.conll").write_text("\n".join(lines) + "\n", encoding="utf-8")
    gold, predicted, hits = 2 * N_SENTENCES, N_SENTENCES + correct, N_SENTENCES + correct
    return 2 * hits / (gold + predicted)


def _write_run(run: Path, config: dict, dev: float, correct: int, gradient_flow: dict | None = None) -> float:
    run.mkdir(parents=True)
    (run / ".hydra").mkdir()
    overrides = [f"model.cell={config['model']['cell']}", f"seed={config['seed']}", "data=atis"]
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    test_f1 = _write_predictions(run, correct)
    results = {
        "status": "finished", "dev": {"f1": dev}, "test": {"f1": test_f1}, "params": 1000 if config["model"]["cell"] == "rnn" else 3000,
        "seconds_per_epoch": 2.0, "tokens_per_second": 10000.0, "epochs": 10, "config": config,
    }
    if gradient_flow is not None:
        results["gradient_flow"] = gradient_flow
    (run / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return test_f1


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """rnn (3 seeds, weak), lstm (3 seeds, strong, with gradient flow), one failed and one killed job."""
    root = tmp_path / "multirun"
    job = 0
    for seed, correct in enumerate((30, 32, 34)):
        _write_run(root / str(job), _config("rnn", False, seed, threads=1 + seed), 0.90 + seed / 100, correct)
        job += 1
    flow = {"init": {"forward": {"decay": -0.5}}, "final": {"forward": {"decay": -0.2, "norms": [1.0, 0.8, 0.64]}}}
    for seed, correct in enumerate((57, 58, 59)):
        _write_run(root / str(job), _config("lstm", False, seed), 0.95, correct, flow if seed < 2 else None)
        job += 1
    failed = root / str(job)
    failed.mkdir()
    (failed / ".hydra").mkdir()
    (failed / "results.json").write_text(json.dumps({
        "status": "failed", "error": "boom: out of memory", "error_type": "RuntimeError", "config": _config("gru", False, 0),
    }))
    (failed / ".hydra" / "overrides.yaml").write_text("- model.cell=gru\n- seed=0\n- data=atis\n")
    killed = root / str(job + 1)
    (killed / ".hydra").mkdir(parents=True)
    (killed / ".hydra" / "config.yaml").write_text(
        "data:\n  name: atis\n  dir: /data/atis\n  format: jointbert\nmodel:\n  cell: gru\n  bidirectional: false\n"
        "  hidden_size: 200\nseed: 1\nthreads: 1\n"
    )
    (killed / ".hydra" / "overrides.yaml").write_text("- model.cell=gru\n- seed=1\n- data=atis\n")
    # Not training runs: an evaluate.py folder and Hydra's sweep file.
    (root / "eval").mkdir()
    (root / "eval" / "results.json").write_text(json.dumps({"test": {"f1": 0.5}, "ckpt_path": "x"}))
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def test_runs_are_collected_with_failed_and_killed_ones(sweep: Path):
    runs = compare.collect_runs(sweep)
    assert [r.path.name for r in runs] == ["0", "1", "2", "3", "4", "5", "6", "7"]
    assert [r.status for r in runs] == ["finished"] * 6 + ["failed", "incomplete"]
    assert "RuntimeError: boom" in runs[6].error
    assert runs[7].config["model"]["cell"] == "gru" and runs[7].overrides == ["model.cell=gru", "seed=1", "data=atis"]


def test_grouping_ignores_seed_threads_device_and_logging(sweep: Path):
    summary = compare.summarize(sweep, resamples=200)
    assert len(summary.groups) == 2
    assert summary.keys == ["model.cell"]  # threads differ between the rnn seeds but do not split them
    rnn, lstm = summary.rows
    assert rnn["model.cell"] == "rnn" and rnn["seeds"] == [0, 1, 2] and lstm["seeds"] == [0, 1, 2]
    assert rnn["dev_f1_mean"] == pytest.approx(0.91) and rnn["dev_f1_std"] == pytest.approx(0.01)
    expected = [2 * (N_SENTENCES + c) / (3 * N_SENTENCES + c) for c in (30, 32, 34)]
    assert rnn["test_f1_mean"] == pytest.approx(np.mean(expected))
    assert rnn["test_f1_std"] == pytest.approx(np.std(expected, ddof=1))
    assert rnn["params"] == 1000 and lstm["params"] == 3000
    assert rnn["seconds_per_epoch"] == pytest.approx(2.0) and rnn["tokens_per_second"] == pytest.approx(10000.0)
    # gradient flow: missing for rnn ("-"), mean over the lstm runs that have it
    assert rnn["grad_decay_final"] is None
    assert lstm["grad_decay_final"] == pytest.approx(-0.2) and lstm["grad_decay_init"] == pytest.approx(-0.5)
    assert lstm["grad_decay_runs"] == 2


def test_bootstrap_and_welch_find_the_clear_difference(sweep: Path):
    summary = compare.summarize(sweep, resamples=500)
    assert summary.test_sentences == N_SENTENCES
    (comp,) = summary.comparisons
    assert comp.diff < 0  # rnn minus lstm
    assert comp.bootstrap_p is not None and comp.bootstrap_p < 0.01
    assert comp.bootstrap_p_holm == comp.bootstrap_p  # one pair: Holm changes nothing
    assert comp.ci is not None and comp.ci[1] < 0
    assert comp.welch_p is not None and comp.welch_p < 0.01


def test_identical_predictions_are_not_significant(tmp_path: Path):
    for job, (cell, seed) in enumerate([("rnn", 0), ("rnn", 1), ("gru", 0), ("gru", 1)]):
        _write_run(tmp_path / str(job), _config(cell, True, seed), 0.9, 40 + seed)
    summary = compare.summarize(tmp_path, resamples=300)
    (comp,) = summary.comparisons
    assert comp.diff == pytest.approx(0.0)
    assert comp.bootstrap_p == pytest.approx(1.0)
    assert comp.welch_p == pytest.approx(1.0)


def test_markdown_csv_and_plot(sweep: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert compare.main([str(sweep), "--out", str(out), "--bootstrap", "200"]) == 0
    md = (out / "compare.md").read_text()
    assert "| model.cell | seeds | dev F1 | test F1 | params | s/epoch | tokens/s | grad decay/step (init → final) |" in md
    rnn_line = next(line for line in md.splitlines() if line.startswith("| rnn |"))
    assert rnn_line.endswith("| - |") and "91.00 ± 1.00" in rnn_line
    assert "-0.500 → -0.200" in md
    assert "Paired bootstrap over the 60 test sentences" in md and "Welch" in md
    assert "| cell=rnn | cell=lstm |" in md and "| yes |" in md
    failed_section = md.split("## Failed or incomplete runs")[1]
    assert "| 6 | failed | model.cell=gru seed=0 | RuntimeError: boom: out of memory |" in failed_section
    assert "| 7 | incomplete | model.cell=gru seed=1 |" in failed_section
    with (out / "compare.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["model.cell"] for r in rows] == ["rnn", "lstm"] and rows[0]["seeds"] == "0 1 2"
    assert rows[0]["grad_decay_final"] == "" and float(rows[1]["grad_decay_final"]) == pytest.approx(-0.2)
    with (out / "compare_runs.csv").open() as handle:
        runs = list(csv.DictReader(handle))
    assert [r["status"] for r in runs][-2:] == ["failed", "incomplete"]
    pytest.importorskip("matplotlib")
    assert (out / "compare_test_f1.png").stat().st_size > 1000
    assert (out / "compare_gradient_flow.png").is_file()


def test_gradient_flow_json_beside_results_is_read(tmp_path: Path):
    _write_run(tmp_path / "0", _config("rnn", False, 0), 0.9, 30)
    (tmp_path / "0" / "gradient_flow.json").write_text(json.dumps({"final": {"forward": {"decay": -0.7}}}))
    (row,) = compare.summarize(tmp_path).rows
    assert row["grad_decay_final"] == pytest.approx(-0.7) and row["grad_decay_init"] is None


def test_empty_folder_is_an_error(tmp_path: Path, capsys):
    assert compare.main([str(tmp_path)]) == 1
    assert "no results.json" in capsys.readouterr().err
    assert compare.main([str(tmp_path / "missing")]) == 1


def test_welch_and_incomplete_beta_against_known_values():
    t, df, p = compare.welch_t_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert t == pytest.approx(-3.0 / math.sqrt(2.0 / 3.0)) and df == pytest.approx(4.0)
    # two-sided p of t = 3.674 with 4 degrees of freedom
    assert p == pytest.approx(0.021311641128756727, rel=1e-9)
    assert compare.betainc(2.0, 3.0, 0.4) == pytest.approx(0.5248, abs=1e-12)  # 1 - sum_{k<2} C(4,k) .4^k .6^(4-k)
    assert compare.welch_t_test([1.0], [2.0, 3.0]) is None
    assert compare.welch_t_test([1.0, 1.0], [1.0, 1.0]) is None
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.normal(0, 1, 4), rng.normal(0.5, 2, 3)
        ours = compare.welch_t_test(list(a), list(b))
        ref = stats.ttest_ind(a, b, equal_var=False)
        assert ours[0] == pytest.approx(ref.statistic) and ours[2] == pytest.approx(ref.pvalue, rel=1e-8)


def test_holm_adjustment():
    assert compare.holm([0.01, 0.04, None, 0.03]) == [pytest.approx(0.03), pytest.approx(0.06), None, pytest.approx(0.06)]


TAGS = st.sampled_from(["O", "B-a", "I-a", "B-b", "I-b"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=8).flatmap(lambda n: st.tuples(st.lists(TAGS, min_size=n, max_size=n), st.lists(TAGS, min_size=n, max_size=n))), min_size=1, max_size=6))
def test_chunk_counts_give_seqeval_default_f1(pairs):
    gold = [repair_bio(g)[0] for g, _ in pairs]
    pred = [p for _, p in pairs]
    counts = compare.chunk_counts(gold, pred).sum(axis=0)
    assert float(compare.f1_from_counts(counts)) == pytest.approx(f1_score(gold, pred, zero_division=0), abs=1e-12)


def test_read_conll_predictions(tmp_path: Path):
    path = tmp_path / "p.conll"
    path.write_text("a O O\nb B-x I-x\n\nc B-y O\n\n\n")
    tokens, gold, pred = compare.read_conll_predictions(path)
    assert tokens == [["a", "b"], ["c"]] and gold == [["O", "B-x"], ["B-y"]] and pred == [["O", "I-x"], ["O"]]
