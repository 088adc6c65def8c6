"""The auxiliary language-modelling loss: its targets, its sum, and that it never sees its answer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from slotfill.errors import ConfigError
from slotfill.inference import SlotTagger
from slotfill.model import Tagger
from slotfill.model.lm import BOUNDARY, IGNORE, LanguageModelHead
from slotfill.training import describe, train
from tests.conftest import compose_train

I = IGNORE


def padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    words = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    lengths = torch.tensor([len(r) for r in rows])
    return words, lengths


def test_targets_are_next_and_previous_words_with_boundaries_and_unk():
    head = LanguageModelHead(hidden_size=4, directions=2, vocab_size=7)
    words, lengths = padded([[5, 6, 7, 2], [8, 3]])
    mask = torch.arange(4) < lengths.unsqueeze(1)
    following, preceding = head.targets(words, mask)
    # 7 and 8 are outside the 7 classes: they count as <unk> (1); 0 is the boundary.
    assert BOUNDARY == 0
    assert following.tolist() == [[6, 1, 2, 0], [3, 0, I, I]]
    assert preceding.tolist() == [[0, 5, 6, 1], [0, 1, I, I]]
    forward_only = LanguageModelHead(hidden_size=4, directions=1, vocab_size=7)
    assert len(forward_only.targets(words, mask)) == 1


def test_loss_is_the_summed_cross_entropy_of_both_directions_by_hand():
    torch.manual_seed(0)
    head = LanguageModelHead(hidden_size=3, directions=2, vocab_size=6, hidden=4)
    words, lengths = padded([[2, 3, 4], [5, 2]])
    mask = torch.arange(3) < lengths.unsqueeze(1)
    states = torch.randn(2, 3, 6)
    expected = 0.0
    for b, n in enumerate(lengths.tolist()):
        row = words[b, :n].tolist()
        for t in range(n):
            nxt = row[t + 1] if t + 1 < n else 0
            prv = row[t - 1] if t > 0 else 0
            for d, target in ((0, nxt), (1, prv)):
                with torch.no_grad():
                    logits = head.directions[d](states[b, t, d * 3 : (d + 1) * 3])
                expected += float(-F.log_softmax(logits, -1)[target])
    assert float(head.loss(states, words, mask).detach()) == pytest.approx(expected, rel=1e-5)


def test_adaptive_softmax_is_a_distribution_and_its_loss_sums_the_gold_log_probabilities():
    """With cutoffs the head scores P(cluster) x P(word | cluster): still a distribution over
    every class, and the loss is -sum log P(gold), as the full softmax's is."""
    torch.manual_seed(0)
    head = LanguageModelHead(hidden_size=3, directions=2, vocab_size=12, hidden=4, cutoffs=(3, 7))
    assert head.cutoffs == [3, 7]
    words, lengths = padded([[2, 5, 9, 11], [8, 3]])  # targets in the head and in both clusters
    mask = torch.arange(4) < lengths.unsqueeze(1)
    states = torch.randn(2, 4, 6)
    expected = 0.0
    for d, target in enumerate(head.targets(words, mask)):
        with torch.no_grad():
            log_probs = head.log_probs(d, states[..., d * 3 : (d + 1) * 3].reshape(-1, 3))
        torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(8))
        gold = target.reshape(-1)
        expected += float(-log_probs[gold != IGNORE].gather(1, gold[gold != IGNORE, None]).sum())
    assert float(head.loss(states, words, mask).detach()) == pytest.approx(expected, rel=1e-5)
    # The case exercises the head (0, 2), the first cluster (3-6: 5) and the second (7-11: 8, 9).
    assert {int(t) for t in torch.cat([t.reshape(-1) for t in head.targets(words, mask)])} >= {0, 2, 5, 8, 9}


def test_cutoffs_beyond_the_classes_are_dropped_and_none_left_is_a_full_softmax():
    head = LanguageModelHead(hidden_size=3, directions=1, vocab_size=6, cutoffs=(4, 9))
    assert head.cutoffs == [4]
    assert isinstance(head.directions[0][-1], torch.nn.AdaptiveLogSoftmaxWithLoss)
    full = LanguageModelHead(hidden_size=3, directions=1, vocab_size=6, cutoffs=(6, 9))
    assert full.cutoffs == [] and isinstance(full.directions[0][-1], torch.nn.Linear)
    for bad in ((0, 3), (5, 3), (3, 3)):
        with pytest.raises(ValueError, match="increasing positive integers"):
            LanguageModelHead(hidden_size=3, directions=1, vocab_size=6, cutoffs=bad)


@pytest.mark.parametrize("cutoffs", [(), (4, 9)], ids=["full", "adaptive"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_forward_prediction_never_sees_the_next_word_nor_backward_the_previous(num_layers, cutoffs):
    """d(prediction at t) / d(input word at s) is zero for s > t (forward) and s < t (backward).

    With two layers the loss must read the first layer: the second layer's forward states
    read the first layer's backward states, which have seen the word to predict.
    """
    torch.manual_seed(0)
    model = Tagger(vocab_size=20, num_tags=5, embedding_dim=6, hidden_size=5, num_layers=num_layers,
                   dropout=0.0, lm_loss_weight=1.0, lm_vocab=20, lm_cutoffs=cutoffs).eval()
    words, lengths = padded([[3, 4, 5, 6, 7]])
    emb = model.words.embedding(words).detach().requires_grad_(True)
    _, first = model.encoder(emb, lengths, first_layer=True)
    for t in range(5):
        for d in range(2):
            log_probs = model.lm.log_probs(d, first[0, t : t + 1, d * 5 : (d + 1) * 5])
            (grad,) = torch.autograd.grad(log_probs.sum(), emb, retain_graph=True)
            seen = grad[0].abs().sum(-1) > 0
            unseen = range(t + 1, 5) if d == 0 else range(0, t)
            assert not any(seen[s] for s in unseen), (t, d, seen.tolist())
            assert seen[t]


@pytest.mark.parametrize("cutoffs", [(), (4, 9)], ids=["full", "adaptive"])
def test_padding_does_not_change_the_loss(cutoffs):
    torch.manual_seed(0)
    model = Tagger(vocab_size=20, num_tags=5, embedding_dim=6, hidden_size=5, dropout=0.0,
                   lm_loss_weight=1.0, lm_cutoffs=cutoffs).eval()
    rows = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]
    tags = lambda w: torch.zeros_like(w)  # noqa: E731
    together = model(*padded(rows), tags=tags(padded(rows)[0]))["lm_loss"]
    alone = sum(model(*padded([r]), tags=tags(padded([r])[0]))["lm_loss"] for r in rows)
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_tagger_adds_the_weighted_loss_predicts_the_given_words_and_is_off_by_default():
    torch.manual_seed(0)
    args = dict(vocab_size=20, num_tags=5, embedding_dim=6, hidden_size=5, dropout=0.0)
    plain = Tagger(**args).eval()
    assert plain.lm is None
    torch.manual_seed(0)
    model = Tagger(**args, lm_loss_weight=0.25).eval()
    model.load_state_dict({**model.state_dict(), **plain.state_dict()})
    words, lengths = padded([[3, 4, 5], [6, 7]])
    tags = torch.tensor([[1, 2, 0], [0, 3, 0]])
    with_lm = model(words, lengths, tags)
    without = plain(words, lengths, tags)
    # Tagging is untouched; the loss gains weight * (summed LM loss) / utterances.
    torch.testing.assert_close(with_lm["logits"], without["logits"])
    expected = without["loss"] + 0.25 * with_lm["lm_loss"] / 2
    torch.testing.assert_close(with_lm["loss"], expected)
    # The targets are lm_words (the words before <unk> dropout), not the input.
    dropped = words.masked_fill(words == 4, 1)
    a = model(dropped, lengths, tags, lm_words=words)["lm_loss"]
    b = model(dropped, lengths, tags)["lm_loss"]
    assert not torch.equal(a, b)
    first = model.encoder(model.words(dropped), lengths, first_layer=True)[1]
    torch.testing.assert_close(a, model.lm.loss(first, words, torch.arange(3) < lengths.unsqueeze(1)))
    assert "lm_loss" not in model(words, lengths)  # no tags: nothing to train, nothing computed


@pytest.mark.parametrize("cutoffs", [[], [4]], ids=["full", "adaptive"])
def test_training_with_the_loss_and_reloading_the_checkpoint(tiny_corpus: Path, tmp_path: Path, cutoffs):
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", "model.lm_loss_weight=0.5", "model.lm_vocab=10",
                         f"model.lm_cutoffs=[{','.join(map(str, cutoffs))}]", "trainer.max_epochs=3"])
    results = train(cfg, tmp_path / "run")
    assert 0.0 <= results["test"]["f1"] <= 1.0
    tagger = SlotTagger.load(tmp_path / "run")
    assert tagger.model.lm is not None and tagger.model.lm.vocab_size == 10
    assert tagger.model.lm.cutoffs == cutoffs
    assert len(tagger.tag(["flights from boston to denver"])[0]["tags"]) == 5
    summary = describe(tagger.model)
    assert "language-model loss x0.5" in summary
    assert ("adaptive softmax, clusters from words 4" in summary) == bool(cutoffs)


@pytest.mark.parametrize(
    "override,message",
    [(["model.lm_loss_weight=-1"], "model.lm_loss_weight=-1.0 must be >= 0"),
     (["model.lm_loss_weight=0.1", "model.lm_vocab=1"], "model.lm_vocab=1 must be >= 2"),
     (["model.lm_loss_weight=0.1", "model.lm_cutoffs=[1000,200]"], r"model.lm_cutoffs=\[1000, 200\] must be increasing"),
     (["model.lm_loss_weight=0.1", "model.lm_cutoffs=[0]"], "must be increasing positive integers"),
     (["model.lm_loss_weight=0.1", "model.lm_vocab=500", "model.lm_cutoffs=[200,1000]"], "below model.lm_vocab=500")],
)
def test_bad_settings_are_config_errors(override, message, tmp_path):
    cfg = compose_train(["data=folder", "data.dir=/nonexistent", *override])
    with pytest.raises(ConfigError, match=message):
        train(cfg, tmp_path / "run")
