"""Tagging a split: evaluation batches, batches on worker threads, oneDNN heads, the encode memo.

Each speed-up must leave the tags exactly those of the model run on each sentence alone.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import warnings

import pytest
import torch
from torch import nn

import slotfill.vocab as vocab_module
from slotfill.data.batching import EVAL_MIN_ROWS, EncodedSplit, length_runs
from slotfill.data.example import Example
from slotfill.evaluation import map_batches, predict
from slotfill.model import Tagger
from slotfill.model.heads import _ONEDNN_LINEAR, checked_linear_op, dense
from slotfill.vocab import LabelSet, Normalizer, TagSet, Vocab

TAGS = ("O", "B-a", "I-a", "B-b", "I-b")


def corpus(n: int = 60, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(25)]
    out = []
    for _ in range(n):
        length = rng.choice([1, 2, 3, 3, 3, 5, 5, 8, 13])
        out.append(Example(
            tuple(rng.choice(words) for _ in range(length)), tuple(rng.choice(TAGS) for _ in range(length)),
            rng.choice(["x", "y", "z"]),
        ))
    return out


def test_length_runs_cut_at_the_cap_and_at_length_changes_after_min_rows():
    lengths = torch.tensor([3, 1, 2, 2, 5, 1, 1, 3, 3])
    # sorted (stable): rows 1, 5, 6 (length 1), 2, 3 (2), 0, 7, 8 (3), 4 (5)
    cut = lambda size, rows: [c.tolist() for c in length_runs(lengths, size, rows)]  # noqa: E731
    assert cut(100, 1) == [[1, 5, 6], [2, 3], [0, 7, 8], [4]]  # every length change
    assert cut(100, 4) == [[1, 5, 6, 2, 3], [0, 7, 8, 4]]  # a change ends a chunk of >= 4 rows
    assert cut(2, 1) == [[1, 5], [6], [2, 3], [0, 7], [8], [4]]  # and so does the cap
    assert cut(100, 100) == [[1, 5, 6, 2, 3, 0, 7, 8, 4]]  # one chunk, in length order
    assert length_runs(torch.tensor([], dtype=torch.long), 4, 1) == []
    with pytest.raises(ValueError, match="batch_size"):
        length_runs(lengths, 0, 1)


def test_evaluation_batches_cover_every_row_once_with_little_padding():
    examples = corpus(400)
    split = EncodedSplit(examples, Vocab.build((ex.tokens for ex in examples), Normalizer()))
    batches = split.batches(64)
    rows = torch.cat([b.index for b in batches]).tolist()
    assert sorted(rows) == list(range(400))
    assert [len(examples[i]) for i in rows] == sorted(len(ex) for ex in examples)
    assert all(len(b.index) <= 64 for b in batches)
    for b in batches:  # a batch spans several lengths only while it is short of EVAL_MIN_ROWS rows
        if int(b.lengths.min()) != int(b.lengths.max()):
            assert len(b.index) - int((b.lengths == b.lengths.max()).sum()) < EVAL_MIN_ROWS


@pytest.mark.parametrize("head", ["softmax", "crf"])
@pytest.mark.parametrize("threads", [1, 2])
def test_tags_are_those_of_each_sentence_alone_at_every_batch_size(head, threads):
    examples = corpus()
    vocab = Vocab.build((ex.tokens for ex in examples[:40]), Normalizer())  # some words unknown
    tagset, labels = TagSet.build(ex.tags for ex in examples), LabelSet.build(ex.intent for ex in examples)
    torch.manual_seed(0)
    model = Tagger(vocab_size=len(vocab), num_tags=len(tagset), num_intents=len(labels), embedding_dim=8,
                   hidden_size=6, head=head, dropout=0.0).eval()
    alone_tags, alone_intents = [], []
    with torch.inference_mode():
        for ex in examples:
            paths, intents = model.predict(torch.tensor([vocab.encode(ex.tokens)]), torch.tensor([len(ex)]))
            alone_tags.append(tagset.decode(paths[0]))
            alone_intents.append(labels.itos[intents[0]])
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for batch_size in (1, 7, 256):
            preds = predict(model, examples, vocab, tagset, labels, batch_size)
            assert preds.tags == alone_tags
            assert preds.intents == alone_intents
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(previous)


def test_map_batches_keeps_order_runs_one_thread_per_batch_and_restores_the_count():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []

        def work(item: int) -> tuple[int, int]:
            seen.append((threading.current_thread().name, torch.get_num_threads()))
            return item * item, torch.get_num_threads()

        out = map_batches(work, list(range(9)))
        assert [v for v, _ in out] == [i * i for i in range(9)]
        assert {n for _, n in out} == {1}
        assert all(name.startswith("slotfill-predict") for name, _ in seen)
        assert torch.get_num_threads() == 2
        # one batch, one thread or another device: in the caller's thread, with its threads
        assert map_batches(work, [3]) == [(9, 2)]
        torch.set_num_threads(1)
        assert map_batches(work, [1, 2]) == [(1, 1), (4, 1)]
        assert seen[-1][0] == threading.current_thread().name
        torch.set_num_threads(2)
        with pytest.raises(ZeroDivisionError):  # a worker's error reaches the caller
            map_batches(lambda item: 1 // item, [1, 0])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_dense_equals_the_layer_and_leaves_autograd_and_tracing_to_it():
    torch.manual_seed(0)
    layer = nn.Linear(40, 12)
    x = torch.randn(5, 7, 40)
    with torch.inference_mode():
        torch.testing.assert_close(dense(layer, x), layer(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(dense(layer, x[:, ::2]), layer(x[:, ::2]), rtol=1e-5, atol=1e-5)  # strided
    out = dense(layer, x)  # training: the layer itself, so gradients flow
    assert out.grad_fn is not None
    out.sum().backward()
    assert layer.weight.grad is not None

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return dense(self.layer, t)

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's notice
        traced = torch.jit.trace(Head(), x)
    assert "linear" in str(traced.graph) and "mkldnn" not in str(traced.graph)  # exports see a plain layer


def test_encode_remembers_raw_tokens_up_to_its_limit(monkeypatch):
    vocab = Vocab.build([["Boston", "to", "Denver", "to"]], Normalizer(lowercase=True, digits="zero"))
    assert vocab.encode(["BOSTON", "to", "Paris"]) == [vocab.stoi["boston"], vocab.stoi["to"], vocab.unk_index]
    assert vocab.encode(["BOSTON", "to", "Paris"]) == [vocab.stoi["boston"], vocab.stoi["to"], vocab.unk_index]
    assert vocab.encode(["denver", "Denver"]) == [vocab.stoi["denver"]] * 2
    monkeypatch.setattr(vocab_module, "ENCODE_MEMO", len(vocab._ids))
    assert vocab.encode(["nowhere", "boston"]) == [vocab.unk_index, vocab.stoi["boston"]]
    assert "nowhere" not in vocab._ids  # full: new tokens are encoded, not remembered


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_worker_pool():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert map_batches(lambda item: item + 1, [1, 2, 3]) == [2, 3, 4]  # the parent's pool exists
        pid = os.fork()
        if pid == 0:  # the child: the parent's pool threads are gone; a hang here fails by timeout
            ok = map_batches(lambda item: item * 2, [1, 2, 3]) == [2, 4, 6]
            os._exit(0 if ok else 1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.waitstatus_to_exitcode(status) == 0
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("map_batches hung in a forked child")
    finally:
        torch.set_num_threads(previous)


def test_the_private_onednn_operator_is_used_only_when_it_computes_the_product(monkeypatch):
    def raises(*args):
        raise RuntimeError("unknown overload")

    def wrong(x, w, b, *rest):
        return x @ w.T  # no bias

    def old_signature(x, w):
        return x @ w.T

    assert checked_linear_op(None) is None
    assert checked_linear_op(raises) is None
    assert checked_linear_op(wrong) is None
    assert checked_linear_op(old_signature) is None  # TypeError: another signature
    right = lambda x, w, b, *rest: x @ w.T + b  # noqa: E731
    assert checked_linear_op(right) is right
    if torch.backends.mkldnn.is_available() and torch.__version__.startswith("2.13"):  # the pinned CPU wheel has it
        assert _ONEDNN_LINEAR is not None
    import slotfill.model.heads as heads

    monkeypatch.setattr(heads, "_ONEDNN_LINEAR", None)  # a build without it: nn.Linear, bit for bit
    layer, x = nn.Linear(6, 3), torch.randn(4, 6)
    with torch.inference_mode():
        assert torch.equal(dense(layer, x), layer(x))
