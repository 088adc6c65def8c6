"""Ensembles: the averaged decoding by hand and by enumeration, and trainer.ensemble end to end."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from slotfill.checkpoint import load_checkpoint, save_checkpoint
from slotfill.cli import evaluate_checkpoint
from slotfill.compare import collect_runs, group_runs
from slotfill.errors import CheckpointError, SlotfillError
from slotfill.export import export_checkpoint
from slotfill.inference import SlotTagger
from slotfill.model import Tagger
from slotfill.model.ensemble import Ensemble
from slotfill.training import run
from tests.conftest import compose_eval, compose_train

WORDS = torch.tensor([[3, 4, 5], [6, 7, 0]])
LENGTHS = torch.tensor([3, 2])


def member(seed: int, **kwargs) -> Tagger:
    torch.manual_seed(seed)
    args = dict(vocab_size=10, num_tags=3, num_intents=2, embedding_dim=4, hidden_size=3, dropout=0.0)
    model = Tagger(**{**args, **kwargs}).eval()
    if model.crf is not None:  # non-zero CRF scores, different in each member
        with torch.no_grad():
            for p in model.crf.parameters():
                p.normal_()
    return model


def test_softmax_members_decode_the_mean_log_probabilities():
    members = [member(s) for s in range(3)]
    paths, intents = Ensemble(members).predict(WORDS, LENGTHS)
    outs = [m(WORDS, LENGTHS) for m in members]
    mean = torch.stack([o["logits"].log_softmax(-1) for o in outs]).mean(0)
    assert paths == [mean[0].argmax(-1).tolist(), mean[1, :2].argmax(-1).tolist()]
    mean_intent = torch.stack([o["intent_logits"].log_softmax(-1) for o in outs]).mean(0)
    assert intents == mean_intent.argmax(-1).tolist()
    # One member is that member.
    assert Ensemble(members[:1]).predict(WORDS, LENGTHS) == members[0].predict(WORDS, LENGTHS)


def test_crf_members_decode_the_path_of_highest_mean_log_probability():
    """Averaging the CRF scores picks argmax_y of the members' mean log p(y), checked by enumeration."""
    members = [member(s, head="crf") for s in range(3)]
    paths, _ = Ensemble(members).predict(WORDS, LENGTHS)
    for row, n in enumerate(LENGTHS.tolist()):
        words, lengths = WORDS[row : row + 1, :n], LENGTHS[row : row + 1]
        best, best_score = None, -float("inf")
        for path in itertools.product(range(3), repeat=n):
            tags = torch.tensor([path])
            mask = torch.ones(1, n, dtype=torch.bool)
            logp = [-m.crf.nll(m(words, lengths)["logits"], tags, mask) for m in members]
            score = float(torch.stack(logp).mean().detach())
            if score > best_score:
                best, best_score = list(path), score
        assert paths[row] == best


def test_constrained_decoding_applies_to_the_ensemble():
    tags = ["O", "B-x", "I-x"]
    members = [member(s, head="crf") for s in range(2)]
    ensemble = Ensemble(members)
    ensemble.set_tag_constraints(tags)
    with torch.no_grad():  # make O -> I-x and a start in I-x very attractive
        for m in members:
            m.crf.transitions[0, 2] = 50.0
            m.crf.start[2] = 50.0
    free, _ = ensemble.predict(WORDS, LENGTHS, constrained=False)
    bound, _ = ensemble.predict(WORDS, LENGTHS, constrained=True)
    assert any(path[0] == 2 for path in free)
    for path in bound:
        assert path[0] != 2 and all(not (a == 0 and b == 2) for a, b in zip(path, path[1:]))


def test_members_must_share_their_outputs():
    with pytest.raises(ValueError, match="member 1 differs from member 0 in num_tags"):
        Ensemble([member(0), member(1, num_tags=4)])
    with pytest.raises(ValueError, match="at least one member"):
        Ensemble([])


def test_trainer_ensemble_trains_members_with_consecutive_seeds_and_scores_them_as_one(tiny_corpus: Path, tmp_path: Path):
    base = ["data=folder", f"data.dir={tiny_corpus}", "trainer.max_epochs=3", "model.dropout=0.2"]
    results = run(compose_train(base + ["trainer.ensemble=2", "seed=1"]), tmp_path / "ens")
    members = results["ensemble"]["members"]
    assert [m["seed"] for m in members] == [2, 3]
    # Member 1 is exactly the single run with seed 3.
    single = run(compose_train(base + ["seed=3"]), tmp_path / "single")
    assert members[1]["test_f1"] == single["test"]["f1"] and members[1]["dev_f1"] == single["dev"]["f1"]
    on_disk = json.loads((tmp_path / "ens" / "results.json").read_text())
    assert on_disk["test"]["f1"] == results["test"]["f1"] and on_disk["ensemble"]["size"] == 2
    assert on_disk["environment"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert on_disk["epochs"] == sum(m["epochs"] for m in members)
    assert (tmp_path / "ens" / "predictions" / "test.conll").is_file()

    # The run folder's checkpoint is the ensemble: evaluate reproduces its test F1.
    tagger = SlotTagger.load(tmp_path / "ens")
    assert isinstance(tagger.model, Ensemble) and len(tagger.model.members) == 2
    f1 = evaluate_checkpoint(compose_eval([f"ckpt_path={tmp_path / 'ens'}"]), tmp_path / "eval")
    assert f1 == pytest.approx(results["test"]["f1"], abs=1e-12)
    assert len(tagger.tag(["flights from boston to denver"])[0]["tags"]) == 5

    # Separate runs named as a list decode as the same ensemble: member 0 and the single run
    # of seed 3 (member 1's seed) give the ensemble's scores, and its results name both.
    listed = f"ckpt_path=[{tmp_path / 'ens' / 'members' / '0'},{tmp_path / 'single' / 'checkpoints' / 'best.pt'}]"
    f1 = evaluate_checkpoint(compose_eval([listed]), tmp_path / "eval-list")
    assert f1 == pytest.approx(results["test"]["f1"], abs=1e-12)
    assert len(json.loads((tmp_path / "eval-list" / "results.json").read_text())["ckpt_path"]) == 2
    # An ensemble checkpoint in a list counts as all its members.
    assert len(SlotTagger.load([tmp_path / "ens", tmp_path / "single"]).model.members) == 3

    # Running it again in its folder keeps the finished members and gives the same scores.
    best = tmp_path / "ens" / "members" / "0" / "checkpoints" / "best.pt"
    before = best.stat().st_mtime_ns
    again = run(compose_train(base + ["trainer.ensemble=2", "seed=1", f"resume={tmp_path / 'ens'}"]), tmp_path / "elsewhere")
    assert best.stat().st_mtime_ns == before and again["test"] == results["test"]

    # Members in parallel processes are the same models.
    parallel = run(compose_train(base + ["trainer.ensemble=2", "trainer.ensemble_jobs=2", "seed=1", "threads=1"]),
                   tmp_path / "par")
    assert parallel["test"] == results["test"] and parallel["dev"] == results["dev"]

    # A comparison counts each ensemble once (not its members), and ensemble_jobs does not
    # split a group: the two ensembles are one configuration, the single run another.
    runs = collect_runs(tmp_path)
    assert sorted(r.path.name for r in runs) == ["ens", "par", "single"]
    assert sorted(len(g.runs) for g in group_runs(runs)) == [1, 2]

    # It exports as one network: the members' mean log-probabilities (softmax members here;
    # test_export runs a CRF ensemble through the runner in a slotfill-free environment).
    out = export_checkpoint(tmp_path / "ens", "torchscript", tmp_path / "export")
    meta = json.loads((out / "export.json").read_text())
    assert meta["members"] == 2 and len(meta["model_args"]) == 2
    assert "mean of the members' log-probabilities" in meta["outputs"][0]["what"]
    spec = importlib.util.spec_from_file_location("exported_ensemble_runner", out / "predict.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    texts = (tiny_corpus / "test" / "seq.in").read_text().splitlines()
    assert runner.ExportedTagger(out).tag(texts) == tagger.tag(texts)
    # The same two taggers named as a list (member 0, and the single run of member 1's seed)
    # export the same network; several runs need an out_dir.
    pair = [tmp_path / "ens" / "members" / "0", tmp_path / "single"]
    with pytest.raises(SlotfillError, match="names 2 checkpoints.*pass out_dir=DIR"):
        export_checkpoint(pair, "torchscript")
    listed = export_checkpoint(pair, "torchscript", tmp_path / "export-list")
    listed_meta = json.loads((listed / "export.json").read_text())
    assert listed_meta["members"] == 2 and len(listed_meta["source_sha256"]) == 2
    assert runner.ExportedTagger(listed).tag(texts) == tagger.tag(texts)


def test_a_member_folder_of_another_config_is_refused(tiny_corpus: Path, tmp_path: Path):
    base = ["data=folder", f"data.dir={tiny_corpus}", "trainer.max_epochs=2", "trainer.ensemble=2"]
    run(compose_train(base), tmp_path / "ens")
    with pytest.raises(SlotfillError, match=r"holds a finished run of another config \(model.hidden_size differ\)"):
        run(compose_train(base + ["model.hidden_size=8"]), tmp_path / "ens")
    # A member trained before an option existed (absent from its config) is kept while the
    # option stays at its default.
    results = tmp_path / "ens" / "members" / "0" / "results.json"
    older = json.loads(results.read_text())
    del older["config"]["model"]["intent_slot_bias"]
    results.write_text(json.dumps(older))
    before = results.stat().st_mtime_ns
    run(compose_train(base), tmp_path / "ens")
    assert results.stat().st_mtime_ns == before
    with pytest.raises(SlotfillError, match=r"another config \(model.intent_slot_bias differ\)"):
        run(compose_train(base + ["model.intent_slot_bias=true"]), tmp_path / "ens")


def test_ensemble_checkpoint_without_member_weights_is_refused(tiny_corpus: Path, tmp_path: Path):
    run(compose_train(["data=folder", f"data.dir={tiny_corpus}", "trainer.max_epochs=2", "trainer.ensemble=2"]),
        tmp_path / "ens")
    state = load_checkpoint(tmp_path / "ens")
    del state["members"][1]["model_state"]
    save_checkpoint(state, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="not a slotfill checkpoint"):
        SlotTagger.load(tmp_path / "broken.pt")


def test_checkpoints_named_as_a_list_must_share_vocabulary_and_decoding(tiny_corpus: Path, tmp_path: Path):
    run(compose_train(["data=folder", f"data.dir={tiny_corpus}", "model.head=crf"]), tmp_path / "a")
    a = tmp_path / "a" / "checkpoints" / "best.pt"
    state = load_checkpoint(a)
    # One checkpoint in a list is that checkpoint.
    one = SlotTagger.load([a])
    assert isinstance(one.model, Tagger)
    assert evaluate_checkpoint(compose_eval([f"ckpt_path=[{a}]"]), tmp_path / "e1") == \
        evaluate_checkpoint(compose_eval([f"ckpt_path={a}"]), tmp_path / "e2")

    other_vocab = {**state, "vocab": {**state["vocab"], "itos": [*state["vocab"]["itos"][:-1], "zzz"]}}
    save_checkpoint(other_vocab, tmp_path / "vocab.pt")
    with pytest.raises(CheckpointError, match=rf"^{tmp_path / 'vocab.pt'}: its vocabulary, tags or intents differ from"):
        SlotTagger.load([a, tmp_path / "vocab.pt"])
    other_tags = {**state, "tags": list(reversed(state["tags"]))}
    save_checkpoint(other_tags, tmp_path / "tags.pt")
    with pytest.raises(CheckpointError, match="vocabulary, tags or intents differ"):
        SlotTagger.load([a, tmp_path / "tags.pt"])

    unconstrained = {**state, "model_args": {**state["model_args"], "constrained_decoding": not state["model_args"]["constrained_decoding"]}}
    save_checkpoint(unconstrained, tmp_path / "unconstrained.pt")
    with pytest.raises(CheckpointError, match=rf"^{tmp_path / 'unconstrained.pt'}: its tagger differs from .* in constrained_decoding"):
        SlotTagger.load([a, a, tmp_path / "unconstrained.pt"])

    with pytest.raises(CheckpointError, match="name at least one checkpoint"):
        SlotTagger.load([])
    with pytest.raises(CheckpointError, match=rf"{tmp_path / 'missing'}.*checkpoint not found"):
        evaluate_checkpoint(compose_eval([f"ckpt_path=[{a},{tmp_path / 'missing'}]"]), tmp_path / "e3")


STOPPABLE = ["trainer.ensemble=2", "trainer.max_epochs=3", "trainer.patience=10", "model.dropout=0.2", "trainer.batch_size=2"]


def test_a_stop_signal_keeps_finished_members_and_resume_finishes_the_ensemble_exactly(
    tiny_corpus: Path, tmp_path: Path, monkeypatch
):
    from slotfill import training
    from slotfill.ensemble import EnsembleInterrupted

    data = ["data=folder", f"data.dir={tiny_corpus}"]
    reference = run(compose_train(data + STOPPABLE), tmp_path / "ref")

    calls = {"n": 0}
    real_clip = training.clip_grad_norm
    steps_per_member = reference["steps"] // 2  # both members run all 3 epochs

    def clip_and_signal(params, max_norm):
        calls["n"] += 1
        if calls["n"] == steps_per_member + steps_per_member // 3 + 1:  # member 1, epoch 2: a SIGTERM mid-step
            os.kill(os.getpid(), signal.SIGTERM)
        return real_clip(params, max_norm)

    monkeypatch.setattr(training, "clip_grad_norm", clip_and_signal)
    cut = tmp_path / "cut"
    with pytest.raises(EnsembleInterrupted, match=rf"stopped by SIGTERM: finished members are kept.*resume with: python train.py resume={cut}$"):
        run(compose_train(data + STOPPABLE), cut)
    monkeypatch.setattr(training, "clip_grad_norm", real_clip)
    assert json.loads((cut / "members" / "0" / "results.json").read_text())["status"] == "finished"
    assert not (cut / "members" / "1" / "results.json").exists() and (cut / "members" / "1" / "checkpoints" / "last.pt").is_file()
    assert not (cut / "results.json").exists()

    # resume=<ensemble folder> alone: its saved config, member 0 kept, member 1 continued exactly,
    # also when that config predates an option (absent: its default).
    saved = OmegaConf.load(cut / "config.yaml")
    del saved.model["intent_slot_bias"]
    OmegaConf.save(saved, cut / "config.yaml")
    resumed = run(compose_train([f"resume={cut}"]), tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()
    assert resumed["test"] == reference["test"] and resumed["dev"] == reference["dev"]
    assert [m["test_f1"] for m in resumed["ensemble"]["members"]] == [m["test_f1"] for m in reference["ensemble"]["members"]]


def test_a_stop_signal_reaches_members_training_in_other_processes(tiny_corpus: Path, tmp_path: Path):
    from slotfill.ensemble import EnsembleInterrupted

    long = ["trainer.max_epochs=5000", "trainer.patience=5000", "trainer.ensemble_jobs=2", "threads=1"]
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", *STOPPABLE, *long])
    out = tmp_path / "par"
    started = [out / "members" / str(i) / "checkpoints" / "last.pt" for i in range(2)]

    def signal_once_training() -> None:  # after a member's first epoch, SIGTERM to this process
        deadline = time.monotonic() + 120
        while not any(p.is_file() for p in started) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=signal_once_training, daemon=True).start()
    with pytest.raises(EnsembleInterrupted, match="stopped by SIGTERM"):
        run(cfg, out)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored
    for i in range(2):  # each member saved its state, none ran to the end
        results = out / "members" / str(i) / "results.json"
        assert not results.exists() or json.loads(results.read_text())["epochs"] < 5000
    assert any(p.is_file() for p in started)


def test_a_worker_that_trains_several_members_logs_each_into_its_own_file(tiny_corpus: Path, tmp_path: Path):
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", "trainer.max_epochs=1", "trainer.ensemble=3",
                         "trainer.ensemble_jobs=2", "threads=1"])
    run(cfg, tmp_path / "ens")  # two workers, three members: one worker trains two
    for i in range(3):
        log = (tmp_path / "ens" / "members" / str(i) / "train.log").read_text()
        assert log.count("] - model: ") == 1, log
