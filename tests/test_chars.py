"""Character CNN word features: vocabulary, batching, model and a run end to end."""

from __future__ import annotations

import json

import pytest
import torch

from slotfill.data.batching import WORD_CHARS, EncodedSplit
from slotfill.data.example import Example
from slotfill.model import Tagger
from slotfill.model.chars import CharCNN
from slotfill.vocab import Normalizer, Vocab
from tests.conftest import compose_train


def test_vocab_collects_characters_of_normalised_words_and_round_trips():
    vocab = Vocab.build([["Boston", "to", "SFO"]], Normalizer(lowercase=True), chars=True)
    assert vocab.chars[:2] == ["<pad>", "<unk>"]
    assert "B" not in vocab.chars and {"b", "s", "f"} <= set(vocab.chars)
    ids = vocab.encode_chars(["to", "zoo"], width=2)
    assert ids[0] == [vocab.char_stoi["t"], vocab.char_stoi["o"]]
    assert ids[1] == [Vocab.unk_index, vocab.char_stoi["o"]]  # z unseen, cut at width 2
    again = Vocab.from_state(vocab.to_state())
    assert again.chars == vocab.chars
    assert Vocab.from_state({**vocab.to_state(), "chars": None}).chars is None
    with pytest.raises(ValueError, match="no characters"):
        Vocab.build([["a"]], Normalizer()).encode_chars(["a"], 3)


def test_split_holds_each_tokens_characters_and_batches_trim_the_width():
    vocab = Vocab.build([["ab", "abcdef"]], Normalizer(), chars=True)
    long_word = "a" * (WORD_CHARS + 5)
    split = EncodedSplit([Example(("ab",)), Example(("abcdef", long_word))], vocab)
    assert split.chars.shape == (2, 2, WORD_CHARS)
    assert int((split.chars[1, 1] != 0).sum()) == WORD_CHARS  # first WORD_CHARS characters kept
    short = split.batch(torch.tensor([0]))
    assert short.chars.shape == (1, 1, 2) and short.chars.dtype == torch.long
    both = split.batch(torch.tensor([0, 1]))
    assert both.chars.shape == (2, 2, WORD_CHARS)


def test_split_matrices_hold_each_example_in_its_own_row():
    """Words, tags, intents and characters land at their row and position; padding is 0."""
    from slotfill.vocab import LabelSet, TagSet

    examples = [Example(("to", "Boston"), ("O", "B-city"), "flight"), Example(("x",), ("O",), "fare"),
                Example(("boston", "to", "zz", "to"), ("B-city", "O", "O", "O"), "flight")]
    vocab = Vocab.build((ex.tokens for ex in examples), Normalizer(lowercase=True), chars=True)
    tagset, labels = TagSet.build(ex.tags for ex in examples), LabelSet.build(ex.intent for ex in examples)
    split = EncodedSplit(examples, vocab, tagset, labels)
    assert split.lengths.tolist() == [2, 1, 4] and split.words.shape == (3, 4)
    for i, ex in enumerate(examples):
        n = len(ex)
        assert split.words[i, :n].tolist() == vocab.encode(ex.tokens) and not split.words[i, n:].any()
        assert split.tags[i, :n].tolist() == tagset.encode(ex.tags) and not split.tags[i, n:].any()
        for j, ids in enumerate(vocab.encode_chars(ex.tokens, WORD_CHARS)):
            assert split.chars[i, j, : len(ids)].tolist() == ids and not split.chars[i, j, len(ids) :].any()
        assert not split.chars[i, n:].any()
    assert split.intents.tolist() == [labels.stoi[ex.intent] for ex in examples]
    empty = EncodedSplit([], vocab, tagset)
    assert empty.words.shape == (0, 0) and empty.chars.shape == (0, 0, WORD_CHARS) and len(empty) == 0


def test_char_features_do_not_depend_on_padding_and_are_zero_for_padding_tokens():
    torch.manual_seed(0)
    cnn = CharCNN(num_chars=10, char_dim=4, filters=6, kernel_size=3)
    word = torch.tensor([[[2, 3, 4]]])  # (1, 1, 3)
    padded = torch.tensor([[[2, 3, 4, 0, 0, 0], [0, 0, 0, 0, 0, 0]]])  # wider, plus a padding token
    alone, batch = cnn(word), cnn(padded)
    torch.testing.assert_close(alone[0, 0], batch[0, 0])
    assert torch.equal(batch[0, 1], torch.zeros(6))
    with pytest.raises(ValueError):
        CharCNN(10, kernel_size=2)


def test_model_with_chars_distinguishes_unknown_words_by_spelling():
    torch.manual_seed(0)
    model = Tagger(vocab_size=5, num_tags=3, embedding_dim=4, hidden_size=6, num_chars=8,
                   char_dim=3, char_filters=5).eval()
    words = torch.tensor([[1, 1]])  # both <unk>
    lengths = torch.tensor([2])
    chars = torch.tensor([[[2, 3, 0], [4, 5, 6]]])
    out = model(words, lengths, chars=chars)["logits"]
    assert not torch.allclose(out[0, 0], out[0, 1])
    assert model.words.output_dim == 4 + 5
    with pytest.raises(ValueError, match="pass chars"):
        model(words, lengths)
    paths, _ = model.predict(words, lengths, chars=chars)
    assert len(paths[0]) == 2


def test_training_with_char_features_end_to_end(tiny_corpus, tmp_path):
    from slotfill.cli import evaluate_checkpoint
    from slotfill.inference import SlotTagger
    from slotfill.training import train
    from tests.conftest import compose_eval

    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", "model.char_filters=8", "model.char_dim=5",
                         "logger.gradient_flow=true", "logger.gradient_flow_min_length=2"])
    results = train(cfg, tmp_path / "run")
    ckpt = tmp_path / "run" / "checkpoints" / "best.pt"
    tagger = SlotTagger.load(ckpt)
    assert tagger.vocab.chars is not None and tagger.model.words.chars is not None
    assert tagger.model.words.chars.output_dim == 8
    # a word never seen in training still gets tagged (through its characters)
    tagged = tagger.tag(["flights from zurich to boston"])[0]
    assert len(tagged["tags"]) == 5
    scored = evaluate_checkpoint(compose_eval([f"ckpt_path={ckpt}", "data=folder", f"data.dir={tiny_corpus}"]), tmp_path / "eval")
    assert scored == pytest.approx(results["test"]["f1"])
    assert json.loads((tmp_path / "run" / "results.json").read_text())["config"]["model"]["char_filters"] == 8


def test_char_settings_are_validated(tiny_corpus, tmp_path):
    from slotfill.errors import ConfigError
    from slotfill.training import train

    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", "model.char_filters=4", "model.char_kernel=2"])
    with pytest.raises(ConfigError, match="char_kernel"):
        train(cfg, tmp_path / "run")


def test_a_character_vocabulary_beyond_int16_is_kept_exactly():
    chars = [chr(0x4E00 + i) for i in range(40_000)]  # CJK ideographs and beyond
    vocab = Vocab.build([["".join(chars[i : i + 10]) for i in range(0, 40_000, 10)]], Normalizer(), chars=True)
    last = chars[-1]
    split = EncodedSplit([Example((last,))], vocab)
    assert split.chars.dtype == torch.int32
    assert int(split.batch(torch.tensor([0])).chars[0, 0, 0]) == vocab.char_stoi[last] > 32767
