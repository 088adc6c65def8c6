"""Gradients of the Elman tagger against hand-written BPTT, clipping, and the gradient-flow measure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from slotfill.data.batching import EncodedSplit
from slotfill.data.example import Example
from slotfill.gradflow import decay_rate, find_checkpoints, gradient_flow, main, plot_gradient_flow
from slotfill.model import Tagger
from slotfill.vocab import Normalizer, TagSet, Vocab


# --------------------------------------------------------------------------- NumPy Elman RNN


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def elman_bptt(U, W, b, V, c, xs, ys):
    """s_t = tanh(U x_t + W s_{t-1} + b), o_t = softmax(V s_t + c), L = sum_t -log o_t[y_t].

    Returns L and the gradients of L with respect to U, W, b, V, c and every x_t.
    """
    T, H = len(xs), W.shape[0]
    s = [np.zeros(H)]
    o = []
    for x in xs:
        s.append(np.tanh(U @ x + W @ s[-1] + b))
        o.append(_softmax(V @ s[-1] + c))
    loss = -sum(math.log(o[t][ys[t]]) for t in range(T))
    dU, dW, db, dV, dc = (np.zeros_like(a) for a in (U, W, b, V, c))
    dxs = [None] * T
    ds_next = np.zeros(H)
    for t in reversed(range(T)):
        dz = o[t].copy()
        dz[ys[t]] -= 1.0
        dV += np.outer(dz, s[t + 1])
        dc += dz
        ds = V.T @ dz + ds_next
        da = ds * (1.0 - s[t + 1] ** 2)
        dU += np.outer(da, xs[t])
        dW += np.outer(da, s[t])
        db += da
        dxs[t] = U.T @ da
        ds_next = W.T @ da
    return loss, {"U": dU, "W": dW, "b": db, "V": dV, "c": dc, "x": dxs}


def _elman_tagger(vocab_size: int = 9, tags: int = 4, emb: int = 5, hidden: int = 6) -> Tagger:
    torch.manual_seed(0)
    model = Tagger(
        vocab_size=vocab_size, num_tags=tags, num_intents=0, embedding_dim=emb, hidden_size=hidden,
        cell="rnn", nonlinearity="tanh", bidirectional=False, num_layers=1, dropout=0.0, context_window=0,
    ).double()
    with torch.no_grad():  # larger weights than the default init, so that tanh is far from linear
        for p in model.parameters():
            p.uniform_(-0.9, 0.9)
        model.words.embedding.weight[0].zero_()
    return model


def test_elman_tagger_gradients_match_numpy_bptt():
    model = _elman_tagger()
    rng = np.random.default_rng(1)
    lengths = [7, 4]
    words = torch.zeros(2, 7, dtype=torch.long)
    tags = torch.zeros(2, 7, dtype=torch.long)
    for i, n in enumerate(lengths):
        words[i, :n] = torch.from_numpy(rng.integers(1, 9, n))
        tags[i, :n] = torch.from_numpy(rng.integers(0, 4, n))
    out = model(words, torch.tensor(lengths), tags, reduction="sum")
    model.zero_grad()
    out["loss"].backward()

    rnn, head, emb = model.encoder.rnn, model.slots.linear, model.words.embedding.weight
    U, W = rnn.weight_ih_l0.detach().numpy(), rnn.weight_hh_l0.detach().numpy()
    b = (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach().numpy()
    V, c, E = head.weight.detach().numpy(), head.bias.detach().numpy(), emb.detach().numpy()
    total = {"U": 0.0, "W": 0.0, "b": 0.0, "V": 0.0, "c": 0.0}
    d_emb = np.zeros_like(E)
    losses = []
    for i, n in enumerate(lengths):  # the batch loss is the mean of the utterances' summed losses
        ids = words[i, :n].tolist()
        loss, grads = elman_bptt(U, W, b, V, c, [E[j] for j in ids], tags[i, :n].tolist())
        losses.append(loss)
        for key in total:
            total[key] = total[key] + grads[key] / len(lengths)
        for j, dx in zip(ids, grads["x"]):
            d_emb[j] += dx / len(lengths)
    assert float(out["loss"].detach()) == pytest.approx(np.mean(losses), abs=1e-12)
    pairs = [
        (rnn.weight_ih_l0.grad, total["U"]), (rnn.weight_hh_l0.grad, total["W"]),
        (rnn.bias_ih_l0.grad, total["b"]), (rnn.bias_hh_l0.grad, total["b"]),
        (head.weight.grad, total["V"]), (head.bias.grad, total["c"]), (emb.grad, d_emb),
    ]
    for grad, expected in pairs:
        np.testing.assert_allclose(grad.numpy(), expected, rtol=0, atol=1e-6)
    assert np.abs(total["W"]).max() > 1e-2  # the recurrence really carries gradient

    # Clipping: scale = clip / ||g|| over all gradients together.
    from slotfill.training import clip_grad_norm

    flat = np.concatenate([g.ravel() for _, g in pairs[:-1]] + [d_emb.ravel()])
    norm = np.linalg.norm(flat)
    clip = 0.25 * norm
    before = [p.grad.clone() for p in model.parameters()]
    returned = clip_grad_norm(model.parameters(), clip)
    assert float(returned) == pytest.approx(norm, rel=1e-12)
    for p, g in zip(model.parameters(), before):
        torch.testing.assert_close(p.grad, g * (clip / norm), rtol=1e-12, atol=1e-15)
    clipped = np.sqrt(sum(float((p.grad**2).sum()) for p in model.parameters()))
    assert clipped == pytest.approx(clip, rel=1e-12)


# --------------------------------------------------------------------------- gradient flow


def _split(lengths: list[int], vocab_words: int = 12, seed: int = 0) -> tuple[EncodedSplit, Vocab]:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(vocab_words)]
    examples = [Example(tuple(words[j] for j in rng.integers(0, vocab_words, n)), ("O",) * n) for n in lengths]
    vocab = Vocab.build((ex.tokens for ex in examples), Normalizer(), 1)
    return EncodedSplit(examples, vocab), vocab


def _linear_rnn(vocab: Vocab, w: float, w_reverse: float | None = None, hidden: int = 5) -> Tagger:
    """A ReLU Elman RNN kept in its linear regime: positive inputs, weights and biases, W = w I."""
    bidirectional = w_reverse is not None
    model = Tagger(
        vocab_size=len(vocab), num_tags=3, embedding_dim=4, hidden_size=hidden, cell="rnn", nonlinearity="relu",
        bidirectional=bidirectional, dropout=0.0,
    ).double()
    rnn = model.encoder.rnn
    with torch.no_grad():
        model.words.embedding.weight.uniform_(0.1, 1.0)
        for suffix, factor in [("", w)] + ([("_reverse", w_reverse)] if bidirectional else []):
            getattr(rnn, f"weight_ih_l0{suffix}").uniform_(0.1, 1.0)
            getattr(rnn, f"weight_hh_l0{suffix}").copy_(factor * torch.eye(hidden, dtype=torch.float64))
            getattr(rnn, f"bias_ih_l0{suffix}").fill_(0.5)
            getattr(rnn, f"bias_hh_l0{suffix}").fill_(0.5)
    return model


@pytest.mark.parametrize("w", [0.5, 0.8, 1.1])
def test_linear_rnn_decays_by_log_w_per_step(w):
    split, vocab = _split([25, 30, 22, 10])
    result = gradient_flow(_linear_rnn(vocab, w), split, min_length=20)
    assert result["utterances"] == 3  # the 10-token utterance is too short
    norms = result["forward"]["norms"]
    ratios = [norms[k + 1] / norms[k] for k in range(len(norms) - 1)]
    assert ratios == pytest.approx([w] * len(ratios), rel=1e-10)
    assert result["forward"]["decay"] == pytest.approx(math.log(w), abs=1e-10)
    assert result["forward"]["ratio"] == pytest.approx(w, rel=1e-10)
    assert result["max_unroll_error"] < 1e-10


def test_bidirectional_linear_rnn_reports_both_directions():
    split, vocab = _split([21, 24])
    result = gradient_flow(_linear_rnn(vocab, 0.7, w_reverse=0.4), split, min_length=20)
    assert result["bidirectional"] is True
    assert result["forward"]["decay"] == pytest.approx(math.log(0.7), abs=1e-10)
    assert result["backward"]["decay"] == pytest.approx(math.log(0.4), abs=1e-10)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_unrolled_states_match_the_packed_module(cell, bidirectional):
    split, vocab = _split([6, 9, 7, 12])
    torch.manual_seed(0)
    model = Tagger(vocab_size=len(vocab), num_tags=3, num_intents=2, embedding_dim=4, hidden_size=5, cell=cell,
                   bidirectional=bidirectional, num_layers=2, context_window=1, dropout=0.3).double()
    model.train()
    result = gradient_flow(model, split, min_length=6)
    assert model.training  # the mode is restored
    assert result["utterances"] == 4 and result["max_unroll_error"] < 1e-12
    assert len(result["forward"]["norms"]) == 6 and result["forward"]["decay"] is not None
    assert ("backward" in result) == bidirectional and ("cell_state" in result) == (cell == "lstm")
    json.dumps(result)  # plain values only


def test_attention_gives_distant_states_a_direct_path():
    """The linear RNN's gradient shrinks by w per step back; attention adds a path of one step."""
    split, vocab = _split([25, 30, 22])
    model = _linear_rnn(vocab, 0.5)
    plain = gradient_flow(model, split, min_length=20)["forward"]["norms"]
    attended = Tagger(**{**model.hparams, "attention": True}).double()
    attended.words.load_state_dict(model.words.state_dict())  # the same embeddings and RNN;
    attended.encoder.load_state_dict(model.encoder.state_dict())  # attention and head are random
    result = gradient_flow(attended, split, min_length=20)
    norms = result["forward"]["norms"]
    assert result["max_unroll_error"] < 1e-10
    assert plain[19] / plain[0] == pytest.approx(0.5**19, rel=1e-6)
    assert norms[19] / norms[0] > 1000 * 0.5**19


def test_gold_targets_are_used_when_known():
    split, vocab = _split([8, 9])
    tagset = TagSet(["O", "B-x"])
    model = _linear_rnn(vocab, 0.5)
    assert gradient_flow(model, split, min_length=5)["gold_targets"] == 0
    assert gradient_flow(model, split, tagset, min_length=5)["gold_targets"] == 2
    tagged = EncodedSplit(split.examples, vocab, tagset)
    assert gradient_flow(model, tagged, min_length=5)["gold_targets"] == 2


def test_no_long_utterance_gives_no_decay():
    split, vocab = _split([3, 4])
    result = gradient_flow(_linear_rnn(vocab, 0.5), split, min_length=20)
    assert result["utterances"] == 0 and result["forward"]["decay"] is None and result["forward"]["norms"] == []


def test_decay_rate_is_the_least_squares_slope():
    assert decay_rate([8.0, 4.0, 2.0, 1.0]) == pytest.approx(math.log(0.5))
    assert decay_rate([1.0]) is None and decay_rate([0.0, 0.0, 1.0]) is None
    assert decay_rate([1.0, math.e, 1.0]) == pytest.approx(0.0)


def test_cli_writes_gradient_flow_json_and_plot(tmp_path: Path, tiny_corpus: Path, capsys):
    from tests.conftest import compose_train
    from slotfill.training import train

    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", "trainer.max_epochs=1", "model.cell=rnn"])
    run = tmp_path / "run"
    train(cfg, run)
    assert find_checkpoints([f"ckpt_path={run / 'checkpoints' / 'best.pt'}"]) == [run / "checkpoints" / "best.pt"]
    assert find_checkpoints([tmp_path]) == [run / "checkpoints" / "best.pt"]
    args = [str(run), "--split", "dev,test", "--min-length", "4", "--write"]
    pytest.importorskip("matplotlib")
    assert main([*args, "--plot", str(tmp_path / "flow.png")]) == 0
    printed = capsys.readouterr().out
    assert "decay" in printed and "init" in printed and "final" in printed
    data = json.loads((run / "gradient_flow.json").read_text())
    assert data["splits"] == ["dev", "test"] and data["final"]["utterances"] == 4
    assert data["final"]["cell"] == "rnn" and data["init"]["forward"]["decay"] is not None
    assert (tmp_path / "flow.png").stat().st_size > 1000
    assert main([str(tmp_path / "nothing-here")]) == 1


def test_overlay_plot_accepts_several_runs_per_label(tmp_path: Path):
    pytest.importorskip("matplotlib")
    curve = {"forward": {"norms": [1.0, 0.5, 0.25]}}
    path = plot_gradient_flow({"rnn": [curve, curve], "lstm": {"forward": {"norms": [1.0, 0.9, 0.81]}}}, tmp_path / "f.png")
    assert path.stat().st_size > 1000
