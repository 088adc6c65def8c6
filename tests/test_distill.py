"""Distillation: CRF marginals against enumeration, the soft-label losses, and the teacher checks."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from slotfill.checkpoint import load_checkpoint
from slotfill.data.batching import EncodedSplit
from slotfill.data.loading import fold_indices, load_splits
from slotfill.distill import soft_targets
from slotfill.errors import ConfigError
from slotfill.inference import build_tagger
from slotfill.model import Tagger
from slotfill.model.crf import marginals
from slotfill.training import intent_labels, run, train
from slotfill.vocab import TagSet, Vocab
from tests.conftest import compose_train
from tests.test_crf import _random_crf


def _point_mass(tags: torch.Tensor, mask: torch.Tensor, num_tags: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token marginals and summed transition counts of the distribution that is certain of ``tags``."""
    tokens = F.one_hot(tags, num_tags).double() * mask.unsqueeze(2)
    pairs = torch.zeros(num_tags, num_tags, dtype=torch.double)
    for row, n in zip(tags.tolist(), mask.sum(1).tolist()):
        for i, j in zip(row[: n - 1], row[1:n]):
            pairs[i, j] += 1
    return tokens, pairs


@pytest.mark.parametrize("lengths", [[3, 2, 1], [1, 1, 1], [3, 3, 3]])
def test_marginals_equal_brute_force_enumeration(lengths):
    crf = _random_crf(3, seed=sum(lengths))
    emissions = torch.randn(3, 3, 3, dtype=torch.double)
    mask = torch.arange(3) < torch.tensor(lengths).unsqueeze(1)
    tokens, pairs = marginals(emissions, mask, crf.transitions.detach(), crf.start.detach(), crf.end.detach())
    for b, n in enumerate(lengths):
        paths = list(itertools.product(range(3), repeat=n))
        tags = torch.tensor([list(p) + [0] * (3 - n) for p in paths])
        rows = len(paths)
        with torch.no_grad():
            scores = crf.path_score(emissions[b].expand(rows, 3, 3), tags, mask[b].expand(rows, 3))
        probs = torch.softmax(scores, 0)
        want_tokens = torch.zeros(3, 3, dtype=torch.double)
        want_pairs = torch.zeros(3, 3, dtype=torch.double)
        for p, path in zip(probs, paths):
            for t, y in enumerate(path):
                want_tokens[t, y] += p
            for i, j in zip(path, path[1:]):
                want_pairs[i, j] += p
        torch.testing.assert_close(tokens[b], want_tokens)
        torch.testing.assert_close(pairs[b], want_pairs)
        assert float(pairs[b].sum()) == pytest.approx(n - 1)


def test_expected_score_of_a_point_mass_is_the_path_score():
    crf = _random_crf(4, seed=3)
    emissions = torch.randn(2, 4, 4, dtype=torch.double)
    tags = torch.tensor([[1, 2, 0, 3], [3, 1, 0, 0]])
    mask = torch.arange(4) < torch.tensor([4, 2]).unsqueeze(1)
    tokens, pairs = _point_mass(tags, mask, 4)
    expected = crf.expected_score(emissions, mask, tokens, pairs)
    torch.testing.assert_close(expected, crf.path_score(emissions, tags * mask, mask).sum())


def _tagger(head: str) -> Tagger:
    torch.manual_seed(0)
    return Tagger(vocab_size=20, num_tags=5, num_intents=3, embedding_dim=8, hidden_size=6, head=head, dropout=0.0).double()


def _batch():
    torch.manual_seed(1)
    words = torch.randint(2, 20, (3, 4))
    lengths = torch.tensor([4, 3, 1])
    mask = torch.arange(4) < lengths.unsqueeze(1)
    tags = torch.randint(0, 5, (3, 4)) * mask
    intents = torch.tensor([0, 2, 1])
    return words, lengths, mask, tags, intents


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_weight_zero_is_the_gold_loss_and_a_certain_teacher_is_the_gold(head):
    model = _tagger(head)
    words, lengths, mask, tags, intents = _batch()
    gold = model(words, lengths, tags, intents)["loss"]
    tokens, pairs = _point_mass(tags, mask, 5)
    certain = F.one_hot(intents, 3).double()
    for weight in (0.0, 0.3, 1.0):
        soft = {"weight": weight, "tokens": tokens, "pairs": pairs, "intents": certain}
        torch.testing.assert_close(model(words, lengths, tags, intents, soft=soft)["loss"], gold)
    # weight 0 ignores the teacher, whatever it says
    uniform = {"weight": 0.0, "tokens": torch.full_like(tokens, 0.2) * mask.unsqueeze(2), "pairs": pairs * 0,
               "intents": torch.full((3, 3), 1 / 3, dtype=torch.double)}
    torch.testing.assert_close(model(words, lengths, tags, intents, soft=uniform)["loss"], gold)


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_the_loss_against_the_models_own_distribution_has_no_slot_gradient(head):
    """Cross-entropy from q to p is smallest at p = q: soft labels equal to the model's own
    marginals give zero gradient on its slot scores (weight 1)."""
    model = _tagger(head).eval()
    words, lengths, mask, tags, intents = _batch()
    with torch.no_grad():
        out = model(words, lengths)
        if head == "crf":
            tokens, pairs = marginals(out["logits"], mask, model.crf.transitions, model.crf.start, model.crf.end)
            pairs = pairs.sum(0)
        else:
            tokens = out["logits"].softmax(-1) * mask.unsqueeze(2)
            pairs = torch.zeros(5, 5, dtype=torch.double)
        own_intents = out["intent_logits"].softmax(-1)
    soft = {"weight": 1.0, "tokens": tokens, "pairs": pairs, "intents": own_intents}
    loss = model(words, lengths, tags, intents, soft=soft)["loss"]
    loss.backward()
    assert model.slots.linear.weight.grad.abs().max() < 1e-10
    assert model.intents.linear.weight.grad.abs().max() < 1e-10
    if head == "crf":
        assert model.crf.transitions.grad.abs().max() < 1e-10
    gold = model(words, lengths, tags, intents)["loss"]
    model.zero_grad()
    gold.backward()
    assert model.slots.linear.weight.grad.abs().max() > 1e-4  # the gold labels do pull


def _data(corpus: Path) -> list[str]:
    return ["data=folder", f"data.dir={corpus}", "threads=1"]


@pytest.fixture
def crf_teacher(tiny_corpus: Path, tmp_path: Path) -> Path:
    run(compose_train(_data(tiny_corpus) + ["model.head=crf", "model.char_filters=4", "trainer.max_epochs=3"]),
        tmp_path / "teacher")
    return tmp_path / "teacher"


def _student_split(cfg):
    train_ex = load_splits(cfg.data)["train"]
    tagset = TagSet.build(ex.tags for ex in train_ex)
    return train_ex, tagset, intent_labels(cfg.model.intent, train_ex)


def test_soft_targets_are_the_teachers_marginals_and_batches_sum_their_rows(tiny_corpus: Path, crf_teacher: Path):
    cfg = compose_train(_data(tiny_corpus) + ["model.head=crf"])
    train_ex, tagset, labels = _student_split(cfg)
    soft = soft_targets([str(crf_teacher)], cfg.data, train_ex, tagset, labels, 0.4, batch_size=4)
    state = load_checkpoint(crf_teacher / "checkpoints" / "best.pt")
    teacher = build_tagger(state, "teacher").eval()
    assert state["tags"] == tagset.itos  # same training data: same tag order
    split = EncodedSplit(train_ex, Vocab.from_state(state["vocab"]))
    everything = split.batch(torch.arange(len(train_ex)))
    with torch.no_grad():
        out = teacher(everything.words, everything.lengths, chars=everything.chars)
        tokens, pairs = marginals(out["logits"], out["mask"], teacher.crf.transitions, teacher.crf.start, teacher.crf.end)
        intents = out["intent_logits"].softmax(-1)
    torch.testing.assert_close(soft.tokens, tokens, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(soft.intents, intents, atol=1e-5, rtol=1e-4)
    rows = torch.tensor([4, 0, 2])
    batch = soft.batch(rows, int(everything.lengths[rows].max()))
    torch.testing.assert_close(batch["pairs"], pairs[rows].sum(0), atol=1e-5, rtol=1e-4)
    assert batch["weight"] == 0.4 and batch["tokens"].shape == (3, int(everything.lengths[rows].max()), len(tagset))
    # a temperature divides every teacher score before the marginals
    hot = soft_targets([str(crf_teacher)], cfg.data, train_ex, tagset, labels, 0.4, batch_size=4, temperature=3.0)
    with torch.no_grad():
        crf = teacher.crf
        tokens3, _ = marginals(out["logits"] / 3, out["mask"], crf.transitions / 3, crf.start / 3, crf.end / 3)
    torch.testing.assert_close(hot.tokens, tokens3, atol=1e-5, rtol=1e-4)
    assert hot.tokens.max(-1).values[out["mask"]].mean() < soft.tokens.max(-1).values[out["mask"]].mean()


def test_a_student_trains_on_an_ensemble_teacher_and_says_so(tiny_corpus: Path, tmp_path: Path, caplog):
    run(compose_train(_data(tiny_corpus) + ["model.head=crf", "trainer.ensemble=2"]), tmp_path / "ens")
    cfg = compose_train(_data(tiny_corpus) + ["model.head=crf", f"trainer.distill_from=[{tmp_path / 'ens'}]",
                                              "trainer.distill_weight=0.7", "seed=5"])
    with caplog.at_level(logging.INFO, logger="slotfill.training"):
        results = train(cfg, tmp_path / "student")
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("distillation:"))
    assert "weight 0.7" in line and "2 tagger(s)" in line and str(tmp_path / "ens") in line
    assert 0.0 <= results["test"]["f1"] <= 1.0
    plain = train(compose_train(_data(tiny_corpus) + ["model.head=crf", "seed=5"]), tmp_path / "plain")
    assert results["history"][0]["train_loss"] != plain["history"][0]["train_loss"]  # the teacher changed the loss


def test_a_softmax_student_learns_from_a_crf_teacher(tiny_corpus: Path, crf_teacher: Path, tmp_path: Path):
    cfg = compose_train(_data(tiny_corpus) + [f"trainer.distill_from=[{crf_teacher}]", "trainer.distill_temperature=2"])
    results = train(cfg, tmp_path / "student")
    assert results["history"] and OmegaConf.load(tmp_path / "student" / "config.yaml").trainer.distill_temperature == 2


def test_a_teacher_trained_on_other_data_is_refused(tiny_corpus: Path, tmp_path: Path):
    run(compose_train(_data(tiny_corpus) + ["data.cv_folds=2", "data.cv_fold=1"]), tmp_path / "fold1")
    cfg = compose_train(_data(tiny_corpus) + ["data.cv_folds=2", "data.cv_fold=0", f"trainer.distill_from=[{tmp_path / 'fold1'}]"])
    with pytest.raises(ConfigError, match=r"trained on other data \(data.cv_fold 1 vs 0\)"):
        train(cfg, tmp_path / "student")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.distill_from=[/nonexistent/run]"], "/nonexistent/run is neither a checkpoint nor a run folder"),
        (["trainer.distill_weight=1.5"], r"trainer.distill_weight=1.5 must be in \[0, 1\]"),
        (["trainer.distill_temperature=0"], r"trainer.distill_temperature=0.0 must be a positive number"),
    ],
)
def test_bad_distillation_settings_are_config_errors(tiny_corpus: Path, tmp_path: Path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(compose_train(_data(tiny_corpus) + overrides), tmp_path / "run")


def test_teachers_with_both_kinds_of_output_layer_are_refused(tiny_corpus: Path, crf_teacher: Path, tmp_path: Path):
    run(compose_train(_data(tiny_corpus)), tmp_path / "softmax")
    cfg = compose_train(_data(tiny_corpus) + [f"trainer.distill_from=[{crf_teacher},{tmp_path / 'softmax'}]"])
    with pytest.raises(ConfigError, match="mix CRF and softmax"):
        train(cfg, tmp_path / "student")


def test_fold_teachers_each_label_the_utterances_they_held_out(tiny_corpus: Path, tmp_path: Path):
    folds = []
    for k in (0, 1):
        run(compose_train(_data(tiny_corpus) + ["model.head=crf", "data.cv_folds=2", f"data.cv_fold={k}"]), tmp_path / f"f{k}")
        folds.append(tmp_path / f"f{k}")
    cfg = compose_train(_data(tiny_corpus) + ["model.head=crf"])
    train_ex, tagset, labels = _student_split(cfg)
    soft = soft_targets([str(f) for f in folds], cfg.data, train_ex, tagset, labels, 0.5)
    assert soft.out_of_fold
    for k, folder in enumerate(folds):
        held = fold_indices(len(train_ex), 2, k, 0)[1]
        state = load_checkpoint(folder / "checkpoints" / "best.pt")
        teacher = build_tagger(state, folder).eval()
        order = [state["tags"].index(tag) if tag in state["tags"] else -1 for tag in tagset.itos]
        batch = EncodedSplit([train_ex[i] for i in held], Vocab.from_state(state["vocab"])).batch(torch.arange(len(held)))
        with torch.no_grad():
            out = teacher(batch.words, batch.lengths, chars=batch.chars)
            tokens, _ = marginals(out["logits"], out["mask"], teacher.crf.transitions, teacher.crf.start, teacher.crf.end)
        for row, i in enumerate(held):
            n = len(train_ex[i])
            for j, tag in enumerate(tagset.itos):
                want = tokens[row, :n, order[j]] if order[j] >= 0 else torch.zeros(n)  # a tag it never saw: ~0
                torch.testing.assert_close(soft.tokens[i, :n, j], want, atol=1e-4, rtol=1e-3)
    assert any(tag not in load_checkpoint(f / "checkpoints" / "best.pt")["tags"] for f in folds for tag in tagset.itos)
    # the student trains on them and says where the labels came from
    student = compose_train(_data(tiny_corpus) + ["model.head=crf", f"trainer.distill_from=[{folds[0]},{folds[1]}]"])
    assert train(student, tmp_path / "student")["history"]
    # one fold alone leaves utterances without a teacher; a teacher of all the data does not mix with folds
    with pytest.raises(ConfigError, match="held out by none"):
        soft_targets([str(folds[0])], cfg.data, train_ex, tagset, labels, 0.5)
    run(compose_train(_data(tiny_corpus) + ["model.head=crf"]), tmp_path / "whole")
    with pytest.raises(ConfigError, match="mixes taggers trained on this run's training data"):
        soft_targets([str(folds[0]), str(folds[1]), str(tmp_path / "whole")], cfg.data, train_ex, tagset, labels, 0.5)
