"""slotfill's own LSTM kernel: the same function as torch.nn.LSTM, chosen by ``lstm_kernel``."""

from __future__ import annotations

import copy
import json
import logging

import pytest
import torch

from slotfill import training
from slotfill.config import validate_train
from slotfill.data.loading import load_splits
from slotfill.errors import SlotfillError
from slotfill.evaluation import score_both_decodings
from slotfill.inference import SlotTagger
from slotfill.model import RecurrentEncoder, lstm_kernel
from slotfill.model.encoder import use_kernel
from tests.conftest import compose_train


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def pair(hidden: int, bidirectional: bool, layers: int) -> tuple[RecurrentEncoder, RecurrentEncoder]:
    reference = RecurrentEncoder(7, hidden, "lstm", bidirectional=bidirectional, num_layers=layers, dropout=0.0)
    own = copy.deepcopy(reference)
    use_kernel(own, "slotfill")
    return own, reference


@pytest.mark.parametrize("hidden", [9, 16])  # 9: the scalar tail of the gate loops; 16: two AVX2 vectors
@pytest.mark.parametrize(
    "bidirectional,layers,lengths",
    [(True, 1, [5, 3, 5, 1]), (True, 1, [4, 4, 4]), (False, 1, [5, 2]), (True, 2, [6, 3, 1]), (False, 3, [3, 3])],
)
def test_own_kernel_computes_what_the_torch_lstm_computes(
    own_lstm_kernel, two_threads, hidden, bidirectional, layers, lengths
):
    torch.manual_seed(0)
    own, reference = pair(hidden, bidirectional, layers)
    lengths_t = torch.tensor(lengths)
    x = torch.randn(len(lengths), max(lengths), 7, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    out, out_ref = own(x, lengths_t), reference(x_ref, lengths_t)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-6)
    grad = torch.randn_like(out)
    out.backward(grad)
    out_ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(own.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)
    with torch.inference_mode():
        torch.testing.assert_close(own(x.detach(), lengths_t), out_ref.detach(), rtol=1e-5, atol=1e-6)


def test_own_kernel_is_padding_invariant_and_the_same_at_one_and_two_threads(own_lstm_kernel):
    torch.manual_seed(1)
    own, _ = pair(16, True, 1)
    alone = torch.randn(1, 4, 7)
    batch = torch.zeros(3, 6, 7)
    batch[1, :4] = alone[0]
    batch[0], batch[2, :2] = torch.randn(6, 7), torch.randn(2, 7)
    lengths = torch.tensor([6, 4, 2])
    by_threads = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            by_threads.append(own(batch, lengths))
        finally:
            torch.set_num_threads(1)
    # each direction runs on one thread either way: the same sums in the same order
    assert torch.equal(by_threads[0], by_threads[1])
    torch.testing.assert_close(by_threads[0][1, :4], own(alone, torch.tensor([4]))[0], rtol=1e-5, atol=1e-6)
    assert by_threads[0][1, 4:].abs().max() == 0  # padding comes out zero, as with PyTorch's kernel


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_a_trace_takes_the_torch_kernel(own_lstm_kernel, two_threads):
    own, reference = pair(16, True, 1)
    own.eval()
    x, lengths = torch.randn(2, 5, 7), torch.tensor([5, 5])
    traced = torch.jit.trace(own, (x, lengths), check_trace=False)
    assert "slotfill::" not in str(traced.inlined_graph)
    torch.testing.assert_close(traced(x, lengths), reference.eval()(x, lengths))


def test_auto_picks_the_own_kernel_only_for_a_bidirectional_lstm_on_two_cpu_threads(own_lstm_kernel):
    assert lstm_kernel.resolve("auto", "lstm", "cpu", threads=2) == "slotfill"
    assert lstm_kernel.resolve("auto", "lstm", "cpu", threads=1) == "torch"
    assert lstm_kernel.resolve("auto", "lstm", "cpu", threads=4) == "torch"
    assert lstm_kernel.resolve("auto", "lstm", "cpu", threads=2, bidirectional=False) == "torch"
    assert lstm_kernel.resolve("auto", "gru", "cpu", threads=2) == "torch"
    assert lstm_kernel.resolve("auto", "lstm", "cuda", threads=2) == "torch"
    assert lstm_kernel.resolve("slotfill", "lstm", "cpu", threads=1, bidirectional=False) == "slotfill"
    assert lstm_kernel.resolve("torch", "lstm", "cpu", threads=2) == "torch"
    with pytest.raises(SlotfillError, match="LSTM cells only"):
        lstm_kernel.resolve("slotfill", "rnn", "cpu")
    with pytest.raises(SlotfillError, match="CPU only"):
        lstm_kernel.resolve("slotfill", "lstm", "cuda")
    with pytest.raises(SlotfillError, match="unknown"):
        lstm_kernel.resolve("fast", "lstm", "cpu")


def test_an_unknown_kernel_is_refused_before_training(tiny_corpus):
    cfg = compose_train([f"data.dir={tiny_corpus}", "data=folder", "lstm_kernel=fast"])
    with pytest.raises(SlotfillError, match="lstm_kernel='fast' is unknown: use one of auto, slotfill, torch"):
        validate_train(cfg)


def test_a_failed_build_is_one_line_and_auto_falls_back_with_a_warning(monkeypatch, caplog):
    from torch.utils import cpp_extension

    def broken(*args, **kwargs):
        raise RuntimeError("Error building extension 'slotfill_lstm': [1/2] c++ -MMD ...\nlstm.cpp:1: error")

    monkeypatch.setattr(lstm_kernel, "_loaded", False)
    monkeypatch.setattr(lstm_kernel, "_error", None)
    monkeypatch.setattr(cpp_extension, "load", broken)
    with pytest.raises(SlotfillError) as err:
        lstm_kernel.resolve("slotfill", "lstm", "cpu")
    message = str(err.value)
    assert "\n" not in message and "lstm.cpp" in message and "lstm_kernel=torch" in message
    with caplog.at_level(logging.WARNING):
        assert lstm_kernel.resolve("auto", "lstm", "cpu", threads=2) == "torch"
    assert "using PyTorch's LSTM kernel" in caplog.text
    assert lstm_kernel.for_checkpoint("slotfill", None, "lstm") == "torch"


def test_training_records_the_kernel_and_evaluation_decodes_with_it(own_lstm_kernel, tiny_corpus, tmp_path, caplog):
    for choice in ("auto", "torch"):
        cfg = compose_train([f"data.dir={tiny_corpus}", "data=folder", "threads=2", f"lstm_kernel={choice}"])
        with caplog.at_level(logging.INFO, logger="slotfill.training"):
            results = training.run(cfg, tmp_path / choice)
        torch.set_num_threads(1)
        assert results["lstm_kernel"] == ("slotfill" if choice == "auto" else "torch")
        assert f"LSTM kernel: {results['lstm_kernel']}" in caplog.text
        saved = json.loads((tmp_path / choice / "results.json").read_text())
        assert saved["lstm_kernel"] == results["lstm_kernel"]
        tagger = SlotTagger.load(tmp_path / choice)
        assert tagger.model.encoder.kernel == results["lstm_kernel"]
        test = load_splits(cfg.data, ["test"])["test"]
        scores, _ = score_both_decodings(tagger.model, test, tagger.vocab, tagger.tagset, tagger.labels, 256, "cpu")
        assert scores["f1"] == results["test"]["f1"]
        assert SlotTagger.load(tmp_path / choice, lstm_kernel="torch").model.encoder.kernel == "torch"


def recording_steps(monkeypatch) -> list[int]:
    """Patches the kernel's step loop to record how many rows each call's projection tables
    hold (-1 for a training call, which saves its buffers)."""
    sizes: list[int] = []
    steps = lstm_kernel._steps

    def recorded(rows, positions, w_hhs, lengths, save):
        sizes.append(-1 if save else rows[0].size(0))
        return steps(rows, positions, w_hhs, lengths, save)

    monkeypatch.setattr(lstm_kernel, "_steps", recorded)
    return sizes


@pytest.mark.parametrize(
    "bidirectional,layers,lengths", [(True, 1, [5, 3, 5, 1]), (True, 1, [4, 4, 4]), (False, 2, [5, 2]), (True, 3, [2, 6])]
)
def test_inference_projects_each_distinct_word_once_and_computes_the_same_states(
    own_lstm_kernel, two_threads, monkeypatch, bidirectional, layers, lengths
):
    torch.manual_seed(2)
    own, reference = pair(16, bidirectional, layers)
    own.eval(), reference.eval()
    table = torch.randn(6, 7)
    table[0] = 0.0  # the padding row
    lengths_t = torch.tensor(lengths)
    batch, width = len(lengths), max(lengths)
    ids = torch.randint(1, 6, (batch, width))  # five words: most repeat
    ids[torch.arange(width) >= lengths_t.unsqueeze(1)] = 0
    x = table[ids]
    sizes = recording_steps(monkeypatch)
    with torch.inference_mode():
        expected = reference(x, lengths_t)
        by_word = own(x, lengths_t, lookup=(table, ids))
        assert sizes == [len(ids.unique())] + [batch * width] * (layers - 1)
        by_position = own(x, lengths_t)
        assert sizes[layers:] == [batch * width] * layers
    torch.testing.assert_close(by_word, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(by_position, expected, rtol=1e-5, atol=1e-6)
    assert by_word[lengths_t.unsqueeze(1) <= torch.arange(width)].abs().sum() == 0  # padding is zero
    # recording gradients, the training pass runs (every position projected, buffers saved)
    x.requires_grad_()
    own(x, lengths_t, lookup=(table, ids)).sum().backward()
    assert sizes[2 * layers :] == [-1] * layers and x.grad is not None and x.grad.abs().sum() > 0


def test_a_tagger_projects_distinct_words_only_when_its_inputs_are_plain_embeddings(own_lstm_kernel, monkeypatch):
    from slotfill.model import Tagger

    sizes = recording_steps(monkeypatch)
    words = torch.tensor([[3, 4, 3, 5], [6, 3, 0, 0]])  # four distinct words and padding
    chars = torch.randint(1, 8, (2, 4, 3))
    lengths = torch.tensor([4, 2])
    for extra, rows in (({}, 5), ({"context_window": 1}, 8), ({"num_chars": 8, "char_filters": 4}, 8)):
        sizes.clear()
        torch.manual_seed(3)
        reference = Tagger(vocab_size=8, num_tags=5, num_intents=2, embedding_dim=6, hidden_size=16, **extra).eval()
        own = copy.deepcopy(reference)
        use_kernel(own, "slotfill")
        given_chars = chars if "num_chars" in extra else None
        with torch.inference_mode():
            got = own(words, lengths, chars=given_chars)
            want = reference(words, lengths, chars=given_chars)
        assert sizes == [rows], extra
        torch.testing.assert_close(got["logits"], want["logits"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got["intent_logits"], want["intent_logits"], rtol=1e-5, atol=1e-5)
