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


def test_slot_swap_replaces_whole_slots_by_training_values_of_their_type_and_length():
    """p = 1: every gold slot holds a value that training has for its type, with that value's
    own characters; tags and every word outside slots stay."""
    import torch

    from slotfill.data.batching import WORD_CHARS, EncodedSplit, SlotSwap
    from slotfill.data.bio import spans
    from slotfill.data.example import Example
    from tests.conftest import TINY_TRAIN

    examples = [Example(tuple(t.split()), tuple(g.split()), i) for t, g, i in TINY_TRAIN]
    vocab = Vocab.build((ex.tokens for ex in examples), Normalizer(), chars=True)
    split = EncodedSplit(examples, vocab, TagSet.build(ex.tags for ex in examples))
    values: dict[str, set[tuple[str, ...]]] = {}
    for ex in examples:
        for s in spans(ex.tags):
            values.setdefault(s.type, set()).add(ex.tokens[s.start : s.end])
    swap = SlotSwap(split)
    generator = torch.Generator().manual_seed(0)
    batch = split.batch(torch.arange(len(split)))
    seen_change = False
    for _ in range(20):
        words, chars = swap(batch, 1.0, generator)
        assert words.shape == batch.words.shape
        for row, ex in enumerate(examples):
            tokens = [vocab.itos[i] for i in words[row, : len(ex)].tolist()]
            inside = set()
            for s in spans(ex.tags):
                assert tuple(tokens[s.start : s.end]) in values[s.type]
                inside.update(range(s.start, s.end))
                seen_change |= tuple(tokens[s.start : s.end]) != ex.tokens[s.start : s.end]
            assert all(tokens[i] == ex.tokens[i] for i in range(len(ex)) if i not in inside)
            spelled = vocab.encode_chars(tokens, WORD_CHARS)
            for i, ids in enumerate(spelled):
                assert chars[row, i, : len(ids)].tolist() == ids and not chars[row, i, len(ids) :].any()
    assert seen_change  # "new york" (toloc) can become "new york" only; the one-word cities move


def test_slot_swap_rate_and_no_draws_at_zero():
    import torch

    from slotfill.data.batching import EncodedSplit, SlotSwap
    from slotfill.data.example import Example

    # two values of one type and length: a swapped slot keeps its value half the time
    examples = [Example(("to", city), ("O", "B-city"), None) for city in ("paris", "rome")] * 200
    vocab = Vocab.build((ex.tokens for ex in examples), Normalizer())
    split = EncodedSplit(examples, vocab, TagSet.build(ex.tags for ex in examples))
    swap = SlotSwap(split)
    batch = split.batch(torch.arange(len(split)))
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert swap(batch, 0.0, generator)[0] is batch.words
    assert torch.equal(generator.get_state(), state)  # runs without swapping keep their random stream
    words, _ = swap(batch, 0.5, generator)
    assert torch.equal(words[:, 0], batch.words[:, 0])
    changed = (words[:, 1] != batch.words[:, 1]).float().mean().item()
    assert abs(changed - 0.25) < 0.05  # swapped with p = 0.5, to the other city with p = 0.5
