"""The benchmark (python -m slotfill.bench) and its plain baseline (slotfill.bench_baseline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from slotfill import bench
from slotfill.bench import (
    Baton,
    accuracy_over_seeds,
    accuracy_summary,
    compare_accuracy,
    format_table,
    machine_busy,
    machine_use,
    model_overrides,
    parse_args,
    percentile,
    synthetic_utterances,
    time_to_target,
    training_flops,
)
from slotfill.bench_baseline import (
    BaselineSpec,
    BaselineTagger,
    build_vocab,
    collate,
    encode,
    predict as baseline_predict,
    state_dict_from_tagger,
)
from slotfill.data.batching import EncodedSplit
from slotfill.data.example import Example
from slotfill.evaluation import predict as slotfill_predict
from slotfill.model import Tagger
from slotfill.model.encoder import use_kernel
from slotfill.training import train
from slotfill.vocab import TagSet
from tests.conftest import ROOT, TINY_DEV, TINY_TEST, TINY_TRAIN, compose_train


def _examples(rows: list[tuple[str, str, str]]) -> list[Example]:
    return [Example(tuple(t.split()), tuple(g.split()), i) for t, g, i in rows]


def test_flops_of_a_tiny_bilstm_by_hand():
    # E=2, H=3, LSTM (4 gates), 2 directions, C=4 tags, I=5 intents, 10 tokens, 3 utterances.
    # per token: 2 directions * (2*4*3*2 input + 2*4*3*3 recurrent) = 2 * (48 + 72) = 240,
    # output layer 2*6*4 = 48 -> 288; per utterance: intent layer 2*6*5 = 60.
    # forward = 10*288 + 3*60 = 3060; training = 3 * 3060.
    flops = training_flops(10, 3, input_size=2, hidden_size=3, num_tags=4, num_intents=5)
    assert flops == {"forward": 3060, "training": 9180}


def test_flops_of_a_stacked_unidirectional_gru_by_hand():
    # GRU (3 gates), 1 direction, 2 layers, E=2, H=3, C=4, no intents, 10 tokens.
    # layer 0: 2*3*3*2 + 2*3*3*3 = 36 + 54 = 90; layer 1 (input 3): 54 + 54 = 108;
    # output 2*3*4 = 24 -> 222 per token; forward = 2220.
    flops = training_flops(
        10, 3, input_size=2, hidden_size=3, num_tags=4, cell="gru", bidirectional=False, num_layers=2
    )
    assert flops == {"forward": 2220, "training": 6660}


KERNELS = ["torch", "slotfill"]  # slotfill's encoder with PyTorch's LSTM kernel and with its own


@pytest.fixture(params=KERNELS)
def kernel(request) -> str:
    if request.param == "slotfill":
        request.getfixturevalue("own_lstm_kernel")
    return request.param


def _pair(dropout: float, seed: int = 0, kernel: str = "torch"):
    """A slotfill Tagger (its LSTM run by ``kernel``) and a baseline with the Tagger's weights,
    on the tiny corpus."""
    train_ex = _examples(TINY_TRAIN)
    spec = BaselineSpec(embedding_dim=6, hidden_size=5, dropout=dropout)
    vocab, tagset, labels = build_vocab(train_ex, spec)
    torch.manual_seed(seed)
    tagger = Tagger(
        vocab_size=len(vocab), num_tags=len(tagset), num_intents=len(labels),
        embedding_dim=6, hidden_size=5, dropout=dropout,
    )
    baseline = BaselineTagger(len(vocab), len(tagset), len(labels), spec)
    baseline.load_state_dict(state_dict_from_tagger(tagger.state_dict()))  # strict: every name maps
    use_kernel(tagger, kernel)
    return tagger, baseline, vocab, tagset, labels, train_ex


@pytest.mark.parametrize("rows", [[0, 1, 2, 3, 4, 5], [4, 0, 3], [0, 1]], ids=["all-mixed", "mixed", "same-length"])
def test_baseline_loss_equals_slotfill_loss_with_the_same_weights(rows: list[int], kernel: str):
    tagger, baseline, vocab, tagset, labels, train_ex = _pair(dropout=0.5, kernel=kernel)
    tagger.eval()
    baseline.eval()
    index = torch.tensor(rows)
    batch = EncodedSplit(train_ex, vocab, tagset, labels).batch(index)
    assert batch.intents is not None
    expected = tagger(batch.words, batch.lengths, batch.tags, batch.intents)["loss"]
    data = encode(train_ex, vocab, tagset, labels)
    mine = collate([data[i] for i in rows])
    torch.testing.assert_close(mine["words"], batch.words)
    got = baseline.loss(mine["words"], mine["lengths"], mine["tags"], mine["intents"])
    torch.testing.assert_close(got, expected)


def test_baseline_gradients_equal_slotfill_gradients_without_dropout(kernel: str):
    tagger, baseline, vocab, tagset, labels, train_ex = _pair(dropout=0.0, kernel=kernel)
    batch = EncodedSplit(train_ex, vocab, tagset, labels).batch(torch.arange(len(train_ex)))
    tagger(batch.words, batch.lengths, batch.tags, batch.intents)["loss"].backward()
    mine = collate([encode(train_ex, vocab, tagset, labels)[i] for i in range(len(train_ex))])
    baseline.loss(mine["words"], mine["lengths"], mine["tags"], mine["intents"]).backward()
    grads = dict(baseline.named_parameters())
    for name, param in state_dict_from_tagger(dict(tagger.named_parameters())).items():
        torch.testing.assert_close(grads[name].grad, param.grad, msg=name)


def test_baseline_and_slotfill_predict_the_same_tags(kernel: str):
    tagger, baseline, vocab, tagset, labels, train_ex = _pair(dropout=0.5, seed=3, kernel=kernel)
    examples = train_ex + _examples(TINY_DEV) + _examples(TINY_TEST)
    for batch_size in (1, 4, 256):
        ours = slotfill_predict(tagger, examples, vocab, tagset, labels, batch_size).tags
        theirs = baseline_predict(baseline, examples, vocab, tagset, batch_size)
        assert theirs == ours


def test_epoch_callback_sees_the_model_after_every_epoch(tiny_corpus: Path, tmp_path: Path):
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", "trainer.max_epochs=2", "trainer.patience=100",
                         "threads=1"])
    seen: list[tuple[int, bool]] = []
    results = train(cfg, tmp_path / "run", epoch_callback=lambda model, epoch: seen.append((epoch, isinstance(model, Tagger))))
    assert seen == [(1, True), (2, True)]
    assert [h["epoch"] for h in results["history"]] == [1, 2]


def test_busy_machine_warning_discounts_the_benchmarks_own_threads():
    quiet = {"threads": 2, "cpu_count": 2, "loadavg_start": [0.2, 0, 0], "loadavg_end": [2.1, 0, 0]}
    assert not machine_busy(quiet)  # the end load is the benchmark itself
    assert machine_busy({**quiet, "loadavg_start": [1.0, 0, 0]})  # a job was running before
    assert machine_busy({**quiet, "loadavg_end": [3.2, 0, 0]})  # one started during the run
    assert not machine_busy({**quiet, "threads": 1, "loadavg_start": [1.0, 0, 0]})
    # Where the CPU time of other processes was measured, it decides, not the lagging load.
    measured = {**quiet, "loadavg_start": [1.4, 0, 0], "cpu": {"other_cores": 0.05, "steal_cores": 0.0, "seconds": 60}}
    assert not machine_busy(measured)
    assert machine_busy({**measured, "loadavg_start": [0.0, 0, 0], "cpu": {**measured["cpu"], "other_cores": 0.8}})
    assert "other processes used 0.05 cores" in machine_use(measured)
    assert machine_use({**quiet, "cpu": None}).startswith("1-min load average 0.20")


def test_cpu_account_subtracts_the_benchmarks_own_cpu_time(monkeypatch):
    clock = iter([100.0, 110.0])
    machine = iter([{"busy": 500.0, "steal": 3.0}, {"busy": 526.0, "steal": 4.0}])
    own = iter([7.0, 25.0])
    monkeypatch.setattr(bench.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(bench, "machine_cpu_seconds", lambda: next(machine))
    monkeypatch.setattr(bench, "own_cpu_seconds", lambda: next(own))
    # 26 busy seconds on the machine in 10 s, 18 of them the benchmark's: 0.8 cores of other work.
    assert bench.CpuAccount().stop() == pytest.approx({"seconds": 10.0, "other_cores": 0.8, "steal_cores": 0.1})


def test_cpu_account_without_proc_stat_reports_no_figure(monkeypatch):
    monkeypatch.setattr(bench, "machine_cpu_seconds", lambda: None)
    assert bench.CpuAccount().stop()["other_cores"] is None


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="Linux only")
def test_machine_cpu_seconds_reads_proc_stat():
    first = bench.machine_cpu_seconds()
    sum(i * i for i in range(200_000))  # some CPU time of our own
    second = bench.machine_cpu_seconds()
    assert first is not None and second is not None
    assert second["busy"] >= first["busy"] > 0 and second["steal"] >= first["steal"] >= 0


def test_onnx_serving_is_skipped_with_a_reason_without_the_export_extra(monkeypatch, tmp_path):
    import builtins

    from slotfill.bench import measure_onnx_serving

    real_import = builtins.__import__

    def without_export_extra(name, *args, **kwargs):
        if name in ("onnx", "onnxruntime"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_export_extra)
    result = measure_onnx_serving(tmp_path / "missing.pt", [], 1, tmp_path / "out")
    assert result == {"skipped": "onnx is not installed (pip install -e '.[export]')"}


def test_accuracy_summary_and_time_to_target():
    f1, seconds = [0.5, 0.8, 0.7, 0.9], [1.0, 2.0, 3.0, 4.0]
    full = accuracy_summary(f1, seconds)
    assert full["cumulative_seconds"] == [1.0, 3.0, 6.0, 10.0]
    assert (full["best_f1"], full["best_epoch"], full["seconds_to_best"]) == (0.9, 4, 10.0)
    first = accuracy_summary(f1, seconds, epochs=3)  # the best of the first 3; all 4 stay listed
    assert (first["best_f1"], first["best_epoch"], first["seconds_to_best"]) == (0.8, 2, 3.0)
    assert first["f1"] == f1
    assert time_to_target(f1, full["cumulative_seconds"], 0.75) == (2, 3.0)
    assert time_to_target(f1, full["cumulative_seconds"], 0.85) == (4, 10.0)
    assert time_to_target(f1, full["cumulative_seconds"], 0.95) is None


def test_to_accuracy_over_seeds_counts_a_seed_that_never_reaches_the_target():
    def run(seed, slotfill_f1, baseline_f1):
        return compare_accuracy(seed, accuracy_summary(slotfill_f1, [1.0] * len(slotfill_f1), 2),
                                accuracy_summary(baseline_f1, [3.0] * len(baseline_f1)))

    fast = run(0, [0.5, 0.8, 0.9, 0.9], [0.6, 0.85])  # reaches 0.85 at epoch 3: 3 s against 6 s
    assert (fast["target_f1"], fast["slotfill_epoch_to_target"], fast["slotfill_seconds_to_target"]) == (0.85, 3, 3.0)
    assert (fast["baseline_seconds_to_best"], fast["ratio"], fast["slotfill_epochs"]) == (6.0, 0.5, 4)
    slow = run(1, [0.5, 0.6, 0.7, 0.95], [0.9, 0.7])  # reaches 0.9 at epoch 4: 4 s against 3 s
    assert slow["ratio"] == pytest.approx(4 / 3)
    never = run(2, [0.5, 0.6, 0.7, 0.8], [0.9, 0.9])
    assert never["slotfill_epoch_to_target"] is None and never["ratio"] is None

    two = accuracy_over_seeds([fast, slow], epochs=2)
    assert two["seeds"] == [0, 1] and two["reached"] == 2
    assert two["ratio_median"] == pytest.approx((0.5 + 4 / 3) / 2) and two["ratio_worst"] == pytest.approx(4 / 3)
    assert two["best_f1_mean"] == pytest.approx({"slotfill": (0.8 + 0.6) / 2, "baseline": (0.85 + 0.9) / 2})
    assert two["f1_at_epochs_mean"] == pytest.approx({"slotfill": (0.8 + 0.6) / 2, "baseline": (0.85 + 0.7) / 2})
    three = accuracy_over_seeds([fast, never, slow], epochs=2)  # never counts above every ratio
    assert three["ratios"] == [0.5, None, pytest.approx(4 / 3)] and three["reached"] == 2
    assert three["ratio_median"] == pytest.approx(4 / 3) and three["ratio_worst"] is None
    assert accuracy_over_seeds([fast, never], epochs=2)["ratio_median"] is None  # the median falls on it


def test_accuracy_seeds_option():
    assert parse_args(["--to-accuracy", "5", "--accuracy-seeds", "3,1,2"]).accuracy_seeds == [3, 1, 2]
    assert parse_args(["--to-accuracy", "5"]).accuracy_seeds is None  # the workers then use --seed
    for bad in (["--to-accuracy", "5", "--accuracy-seeds", "0,x"], ["--to-accuracy", "5", "--accuracy-seeds", "1,1"],
                ["--accuracy-seeds", "0,1"], ["--accuracy-recipe", "trainer.lr=0.003"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


@pytest.mark.parametrize("argv,prefix", [
    (["--model", "cel=gru"], "error: --model model.cel=gru: "),
    (["--to-accuracy", "2", "--accuracy-recipe", "trainer.lr=fast"], "error: --accuracy-recipe trainer.lr=fast: "),
])
def test_a_bad_override_is_a_one_line_error_before_any_worker_starts(argv, prefix, tiny_corpus, monkeypatch):
    monkeypatch.setattr(bench, "spawn_pair", lambda *a, **k: pytest.fail("a worker started"))
    with pytest.raises(SystemExit) as caught:
        bench.run_benchmark(parse_args(["--quick", "--data", str(tiny_corpus), *argv]))
    message = str(caught.value)
    assert message.startswith(prefix) and "\n" not in message, message


def test_model_overrides_and_percentile():
    assert model_overrides(["model.hidden_size=8 cell=gru", "vocab.lowercase=false", "scheduler=plateau"]) == [
        "model.hidden_size=8", "model.cell=gru", "vocab.lowercase=false", "scheduler=plateau"]
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([1.0, 2.0], 99) == pytest.approx(1.99)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0 and value == value and value != float("inf")


def test_benchmark_end_to_end_quick_json(tiny_corpus: Path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, "-m", "slotfill.bench", "--quick", "--json", "--threads", "1", "--to-accuracy", "2",
         "--accuracy-seeds", "0,1", "--accuracy-recipe", "trainer.lr=0.003 scheduler=plateau", "--data", str(tiny_corpus)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["benchmark"]["train_tokens"] == sum(len(t.split()) for t, _, _ in TINY_TRAIN)
    assert report["benchmark"]["measured_epochs"] == 1
    # the sides took turns: each handed over after its warm-up and measured epoch and before inference, at least
    assert all(turns >= 3 for turns in report["benchmark"]["turns"].values())
    for side in ("slotfill", "baseline"):
        s = report[side]
        assert _positive(s["params"])
        for key in ("seconds_per_epoch", "tokens_per_second", "warmup_seconds"):
            assert _positive(s["train"][key]), (side, key)
        assert s["train"]["tokens_per_second"] == pytest.approx(s["train"]["tokens_per_epoch"] / s["train"]["seconds_per_epoch"])
        assert _positive(s["peak_rss_mib"])
        for key in ("batch1_sentences_per_second", "batch256_sentences_per_second", "latency_p50_ms", "latency_p99_ms"):
            assert _positive(s["inference"][key]), (side, key)
        assert s["inference"]["latency_p50_ms"] <= s["inference"]["latency_p99_ms"]
        assert s["inference"]["sentences"] == len(TINY_TEST)
        assert 0.0 <= s["test_f1"] <= 1.0
        assert _positive(s["floor_fraction"])
        scaling = report["scaling"][side]
        assert set(scaling["replicated_tokens_per_second"]) == {"1", "2"}
        assert set(scaling["length_us_per_token"]) == {"10", "40", "160"}
        assert all(_positive(v) for part in scaling.values() for v in part.values())
    assert report["slotfill"]["params"] == report["baseline"]["params"]
    assert report["slotfill"]["lstm_kernel"] == "torch"  # lstm_kernel=auto at one thread
    s, b, r = report["slotfill"], report["baseline"], report["ratio"]
    assert r["seconds_per_epoch"] == pytest.approx(s["train"]["seconds_per_epoch"] / b["train"]["seconds_per_epoch"])
    assert r["tokens_per_second"] == pytest.approx(s["train"]["tokens_per_second"] / b["train"]["tokens_per_second"])
    assert r["peak_rss_mib"] == pytest.approx(s["peak_rss_mib"] / b["peak_rss_mib"])
    for key in ("batch1_sentences_per_second", "batch256_sentences_per_second", "latency_p50_ms", "latency_p99_ms"):
        assert r[key] == pytest.approx(s["inference"][key] / b["inference"][key])
    assert r["floor_fraction"] == pytest.approx(s["floor_fraction"] / b["floor_fraction"])
    fl = report["flops"]
    assert _positive(fl["per_epoch"]) and fl["per_epoch"] == 3 * fl["forward_per_epoch"]
    assert _positive(fl["matmul_gflops"])
    kernels = fl["matmul_gflops_by_kernel"]  # the floor takes the faster of MKL's and oneDNN's products
    assert set(kernels) <= {"torch.mm", "oneDNN"} and "torch.mm" in kernels
    assert all(_positive(v) for v in kernels.values()) and fl["matmul_gflops"] == max(kernels.values())
    assert fl["floor_seconds_per_epoch"] == pytest.approx(fl["per_epoch"] / (fl["matmul_gflops"] * 1e9))
    assert s["floor_fraction"] == pytest.approx(fl["floor_seconds_per_epoch"] / s["train"]["seconds_per_epoch"])
    test_tokens = sum(len(t.split()) for t, _, _ in TINY_TEST)
    shape = dict(input_size=16, hidden_size=16, num_tags=len(TagSet.build(t.split() for _, t, _ in TINY_TRAIN)),
                 num_intents=len({i for _, _, i in TINY_TRAIN}))  # --quick's sizes, the default BiLSTM
    assert fl["forward_per_epoch"] == training_flops(sum(len(t.split()) for t, _, _ in TINY_TRAIN), len(TINY_TRAIN), **shape)["forward"]
    assert fl["test_forward"] == training_flops(test_tokens, len(TINY_TEST), **shape)["forward"]
    assert fl["test_floor_seconds"] == pytest.approx(fl["test_forward"] / (fl["matmul_gflops"] * 1e9))
    for side in (s, b):  # floor time over measured time, the time being the split over sentences/s
        measured = len(TINY_TEST) / side["inference"]["batch256_sentences_per_second"]
        assert side["inference"]["batch256_floor_fraction"] == pytest.approx(fl["test_floor_seconds"] / measured)
    acc = report["to_accuracy"]
    assert acc["epochs"] == 2 and [run["seed"] for run in acc["runs"]] == [0, 1]
    # the recipe reaches slotfill's to-accuracy runs only: not the baseline, not the main measurement
    assert acc["slotfill_overrides"] == ["trainer.lr=0.003", "scheduler=plateau"]
    assert report["benchmark"]["baseline_spec"]["lr"] == 0.001 and report["benchmark"]["model_overrides"] == [
        "model.hidden_size=16", "model.embedding_dim=16"]
    for run in acc["runs"]:
        assert run["slotfill_epochs"] == 4  # slotfill may take more (faster) epochs
        assert (run["slotfill"]["lr"], run["slotfill"]["scheduler"], run["slotfill"]["lstm_kernel"]) == (0.003, "plateau", "torch")
        for side, epochs in (("slotfill", 4), ("baseline", 2)):
            assert len(run[side]["f1"]) == epochs and all(0.0 <= f <= 1.0 for f in run[side]["f1"])
            assert run[side]["best_f1"] == max(run[side]["f1"][:2])  # same epochs: the accuracy comparison
            assert _positive(run[side]["seconds_to_best"])
        assert run["target_f1"] == run["baseline"]["best_f1"]
        if run["slotfill_seconds_to_target"] is not None:
            assert run["ratio"] == pytest.approx(run["slotfill_seconds_to_target"] / run["baseline_seconds_to_best"])
    assert acc["summary"] == accuracy_over_seeds(acc["runs"], 2)
    serving = report["onnx_serving"]
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        assert "not installed" in serving["skipped"]
    else:
        for key in ("batch1_sentences_per_second", "latency_p50_ms", "latency_p99_ms"):
            assert _positive(serving[key]), key
            assert serving[f"{key}_ratio"] == pytest.approx(serving[key] / b["inference"][key])
        assert serving["sentences"] == len(TINY_TEST)
        assert serving["same_tags_as_pytorch"] == 1.0  # the exported network decodes as slotfill does
    table = format_table(report)
    for text in ("seconds / epoch", "tokens / second", "peak RSS", "batch 256", "latency p99", "GFLOP/s",
                 "fraction of floor", "tagging the test split", "training corpus x2", "length 160", "onnxruntime",
                 "slotfill best (ep)", "time ratio over 2 seeds"):
        assert text in table
    one_seed = {**acc, "runs": acc["runs"][:1], "summary": accuracy_over_seeds(acc["runs"][:1], 2)}
    assert "best test F1, first 2 epochs" in format_table({**report, "to_accuracy": one_seed})


def _baton_pair() -> tuple[Baton, Baton, int]:
    """Batons for two workers A and B; A starts once the returned fd is written to."""
    a_take, b_give = os.pipe()
    b_take, a_give = os.pipe()
    return Baton(a_take, a_give), Baton(b_take, b_give), b_give


def _run_side(baton: Baton, name: str, units: int, log: list[str], finish: bool = True) -> None:
    baton.take()
    for _ in range(units):
        log.append(name)
        baton.turn()
    if finish:
        baton.finish()


def test_baton_alternates_the_sides_then_lets_the_longer_run_alone():
    a, b, start = _baton_pair()
    log: list[str] = []
    threads = [threading.Thread(target=_run_side, args=(a, "A", 5, log)),
               threading.Thread(target=_run_side, args=(b, "B", 3, log))]
    for t in threads:
        t.start()
    os.write(start, b"1")
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert "".join(log) == "ABABABAA"  # strict turns while both run, then A alone
    assert (a.turns, b.turns) == (4, 3)  # A's last turns find B gone and return at once


def test_baton_runs_on_alone_when_the_other_side_dies_without_finishing():
    a, b, start = _baton_pair()
    log: list[str] = []
    os.write(start, b"1")
    os.close(b._take)  # B "exits": its pipe ends close, no "done" token
    os.close(b._give)
    _run_side(a, "A", 3, log)  # would block forever if a dead peer were waited for
    assert log == ["A"] * 3 and a.alone


def test_fixed_length_scaling_corpora_are_whole_batches():
    # 16,384 tokens: 51 batches of 10-token utterances, 13 of 40, 3 of 160 (not 102 = 3 + a sixth)
    assert [synthetic_utterances(16_384, n, 32) for n in (10, 40, 160)] == [1632, 416, 96]
    assert synthetic_utterances(100, 160, 32) == 32  # at least one batch
    assert synthetic_utterances(16_384, 160, 7) % 7 == 0


def test_a_failing_worker_stops_the_other_and_is_named(tiny_corpus: Path, tmp_path: Path):
    from slotfill.bench import spawn_pair

    # The baseline side starts first and would train for hours; the slotfill side fails at
    # once (no such data folder) on its first turn. Were the baseline not stopped, this test
    # would not end.
    common = {"batch_size": 4, "threads": 1, "epochs": 10**7, "seed": 0, "overrides": [], "scaling": False,
              "factors": [], "lengths": [], "synthetic_tokens": 0, "accuracy_epochs": 0,
              "inference_repeats": 1, "verbose": False, "onnx": False}
    spec = BaselineSpec(embedding_dim=8, hidden_size=8).to_dict()
    jobs = [{**common, "side": "baseline", "spec": spec, "data": str(tiny_corpus)},
            {**common, "side": "slotfill", "data": str(tmp_path / "missing")}]
    with pytest.raises(SystemExit, match="the slotfill worker failed"):
        spawn_pair(jobs, tmp_path)
    assert not (tmp_path / "baseline-result.json").exists()
