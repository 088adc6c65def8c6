"""Bad input and numerical faults: clear one-line errors, never a silently wrong number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slotfill.data.loading import load_splits
from slotfill.data.readers import read_conll, read_jointbert_split
from slotfill.errors import DataError, SlotfillError
from slotfill.inference import SlotTagger
from slotfill.model import Tagger
from slotfill.training import TrainingDiverged, train
from tests.conftest import compose_train
from tests.test_cli import run as run_script


def _nan_after(monkeypatch, first_bad: int, count: int | None = None):
    """Make the loss non-finite from call ``first_bad`` on (for ``count`` calls, or for good)."""
    real = Tagger.loss
    calls = {"n": 0}

    def loss(self, *args, **kwargs):
        calls["n"] += 1
        value = real(self, *args, **kwargs)
        bad = calls["n"] >= first_bad and (count is None or calls["n"] < first_bad + count)
        return value * float("nan") if bad else value

    monkeypatch.setattr(Tagger, "loss", loss)


def test_a_few_non_finite_steps_are_skipped_and_counted(tiny_corpus, tmp_path, monkeypatch):
    _nan_after(monkeypatch, first_bad=2, count=2)
    results = train(compose_train(["data=folder", f"data.dir={tiny_corpus}", "trainer.max_epochs=2"]), tmp_path / "run")
    assert results["skipped_steps"] == 2 and results["steps"] == 2 and results["status"] == "finished"  # 4 batches
    assert json.loads((tmp_path / "run" / "results.json").read_text())["skipped_steps"] == 2


def test_persistent_non_finite_stops_and_keeps_the_finite_best(tiny_corpus, tmp_path, monkeypatch):
    _nan_after(monkeypatch, first_bad=3)  # epoch 1 (2 batches) is fine, every later step is bad
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", "trainer.max_epochs=5", "trainer.max_skipped_steps=3",
                         "trainer.batch_size=3"])
    with pytest.raises(TrainingDiverged, match="3 consecutive non-finite steps"):
        train(cfg, tmp_path / "run")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "stopped_non_finite" and results["best_epoch"] == 1
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in best["model_state"].values())


def test_non_finite_from_the_start_is_a_clear_error(tiny_corpus, tmp_path, monkeypatch):
    _nan_after(monkeypatch, first_bad=1)
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", "trainer.max_skipped_steps=2"])
    with pytest.raises(SlotfillError, match="no usable model"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints" / "best.pt").exists()


def test_unwritable_output_folder_is_reported_before_data_is_read(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cfg = compose_train(["data=folder", "data.dir=/nonexistent"])
    with pytest.raises(SlotfillError, match="cannot write the run folder"):
        train(cfg, blocker / "run")


def test_full_disk_is_reported_before_training(tmp_path, monkeypatch):
    import slotfill.training as training

    real_open = Path.open

    def full(self, mode="r", *args, **kwargs):
        if self.name == ".write-test":
            raise OSError(28, "No space left on device")
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", full)
    with pytest.raises(SlotfillError, match="No space left on device"):
        training.check_writable(tmp_path / "run")


def test_ten_thousand_token_utterance_trains_and_tags(tiny_corpus, tmp_path):
    seq_in = tiny_corpus / "train" / "seq.in"
    seq_out = tiny_corpus / "train" / "seq.out"
    label = tiny_corpus / "train" / "label"
    seq_in.write_text(seq_in.read_text() + " ".join(["boston"] * 10_000) + "\n")
    seq_out.write_text(seq_out.read_text() + " ".join(["B-toloc.city_name"] * 10_000) + "\n")
    label.write_text(label.read_text() + "atis_flight\n")
    # batch_size=1 puts the long utterance in a batch of its own: PyTorch's packed LSTM
    # backward over 10,000 steps is fast alone (0.1 s) but takes minutes next to short rows.
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", "trainer.max_epochs=1", "trainer.batch_size=1"])
    results = train(cfg, tmp_path / "run")
    assert results["data"]["train"] == 7
    tagger = SlotTagger.load(tmp_path / "run")
    out = tagger.tag([" ".join(["denver"] * 10_000), ""])
    assert len(out[0]["tags"]) == 10_000 and out[1]["tags"] == []


def test_header_row_in_a_column_file_names_the_line(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("token\ttag\nboston\tB-city\n")
    with pytest.raises(DataError, match=r"train.tsv:1: .*'tag'"):
        read_conll(path)


def test_spaces_where_tabs_are_expected_name_the_line(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("boston\tB-city\nto O\n")
    with pytest.raises(DataError, match=r"train.tsv:2: "):
        read_conll(path, delimiter="\t")
    assert [ex.tags for ex in read_conll(path)] == [("B-city", "O")]  # any whitespace: both read


def test_empty_split_file_is_an_error(tiny_corpus):
    (tiny_corpus / "dev" / "seq.in").write_text("")
    (tiny_corpus / "dev" / "seq.out").write_text("")
    (tiny_corpus / "dev" / "label").write_text("")
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}"])
    with pytest.raises(DataError, match="dev split holds no utterance"):
        load_splits(cfg.data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seq_in=st.binary(max_size=80) | st.text(alphabet=" \t\r\nabBI-O#\u00e9x", max_size=80).map(str.encode),
    seq_out=st.binary(max_size=80) | st.text(alphabet=" \t\r\nOBI-x#y", max_size=80).map(str.encode),
)
def test_any_bytes_read_or_raise_the_documented_error(tmp_path_factory, seq_in, seq_out):
    split = tmp_path_factory.mktemp("fuzz")
    (split / "seq.in").write_bytes(seq_in)
    (split / "seq.out").write_bytes(seq_out)
    try:
        examples = read_jointbert_split(split)
    except DataError as err:
        assert str(err).startswith(str(split)) and "\n" not in str(err)
        return
    for ex in examples:
        assert ex.tokens and ex.tags is not None and len(ex.tags) == len(ex.tokens)


def test_typo_in_a_key_fails_at_startup_without_traceback(tmp_path):
    proc = run_script("train.py", "model.cel=gru", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "model.cel" in proc.stderr
    assert not (tmp_path / "r" / "results.json").exists()


def test_errors_map_to_exit_codes(capsys):
    from slotfill.cli import run_guarded
    from slotfill.training import TrainingInterrupted

    for error, code in ((SlotfillError("plain"), 1), (TrainingDiverged("diverged"), 3),
                        (TrainingInterrupted(15, Path("/runs/x")), 143)):
        def fail(error=error):
            raise error

        with pytest.raises(SystemExit) as exit_info:
            run_guarded(fail)
        assert exit_info.value.code == code
        assert capsys.readouterr().err.count("\n") == 1


def test_non_finite_pretrained_vector_is_a_data_error(tiny_corpus, tmp_path):
    vectors = tmp_path / "vec.txt"
    vectors.write_text("boston " + " ".join(["nan"] * 12) + "\n")
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", f"model.pretrained_vectors={vectors}"])
    with pytest.raises(DataError, match=r"vec.txt:1: .*not finite"):
        train(cfg, tmp_path / "run")
