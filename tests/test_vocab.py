from __future__ import annotations

import pytest

from slotfill.vocab import NUM, PAD, UNK, LabelSet, Normalizer, TagSet, Vocab


def test_normalizer_modes():
    assert Normalizer(lowercase=True)("Boston") == "boston"
    assert Normalizer(lowercase=False)("Boston") == "Boston"
    assert Normalizer(digits="off")("1030") == "1030"
    assert Normalizer(digits="zero")("ua1030") == "ua0000"
    assert Normalizer(digits="token")("1030") == NUM
    assert Normalizer(digits="token")("ua1030") == "ua1030"
    with pytest.raises(ValueError):
        Normalizer(digits="DIGIT")


def test_vocab_build_min_freq_and_encode():
    sents = [["Show", "flights", "to", "Boston"], ["flights", "to", "denver"]]
    v = Vocab.build(sents, Normalizer(), min_freq=2)
    assert v.itos == [PAD, UNK, "flights", "to"]
    assert v.encode(["FLIGHTS", "boston", "to"]) == [2, 1, 3]
    assert v.counts[1] == 3  # three rare tokens fell to <unk>
    v1 = Vocab.build(sents, Normalizer(), min_freq=1)
    assert v1.rare_mask() == [False, False, False, False, True, True, True]


def test_vocab_round_trip_through_plain_state():
    v = Vocab.build([["a", "b", "b", "7"]], Normalizer(lowercase=False, digits="token"))
    state = v.to_state()
    assert all(isinstance(x, (str, int)) for x in state["itos"] + state["counts"])
    again = Vocab.from_state(state)
    assert again.itos == v.itos and again.counts == v.counts
    assert again.encode(["b", "9", "zzz"]) == v.encode(["b", "9", "zzz"])
    assert again.normalizer == v.normalizer


def test_tagset_from_train_only_and_unknown_tags_raise():
    ts = TagSet.build([["O", "B-to", "I-to"], ["B-from", "O"]])
    assert ts.itos == ["O", "B-from", "B-to", "I-to"]
    assert TagSet.from_state(ts.to_state()).itos == ts.itos
    assert "B-unseen" not in ts
    with pytest.raises(KeyError):
        ts.encode(["B-unseen"])


def test_labelset_keeps_multi_intents_as_labels():
    ls = LabelSet.build(["atis_flight", "atis_flight#atis_airfare", "atis_flight"])
    assert ls.itos == ["atis_flight", "atis_flight#atis_airfare"]


def test_unknown_word_dropouts_replace_only_their_targets_at_their_rate():
    import torch

    from slotfill.data.batching import slot_unk_dropout, unk_dropout

    generator = torch.Generator().manual_seed(0)
    words = torch.randint(2, 50, (400, 25), generator=generator)
    words[:, 20:] = 0  # padding
    tags = torch.randint(0, 3, (400, 25), generator=generator)
    tags[:, 20:] = 0
    out = slot_unk_dropout(words, tags, 0.3, generator)
    changed = out != words
    assert (out[changed] == Vocab.unk_index).all()
    assert not changed[tags == 0].any()  # O and padding stay
    assert abs(changed[tags != 0].float().mean().item() - 0.3) < 0.02
    assert slot_unk_dropout(words, tags, 0.0, generator) is words
    rare = torch.zeros(50, dtype=torch.bool)
    rare[2:10] = True
    out = unk_dropout(words, rare, 0.5, generator)
    changed = out != words
    assert not changed[~rare[words]].any()
    assert abs(changed[rare[words]].float().mean().item() - 0.5) < 0.03
