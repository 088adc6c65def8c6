"""The model's math: padding invariance, the summed loss, every encoder shape."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from slotfill.model import RecurrentEncoder, Tagger, WordRepresentation


def make_model(**kwargs) -> Tagger:
    torch.manual_seed(0)
    args = dict(vocab_size=30, num_tags=7, embedding_dim=8, hidden_size=6, dropout=0.0)
    args.update(kwargs)
    return Tagger(**args).eval()


def padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    words = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    return words, torch.tensor([len(r) for r in rows])


@pytest.mark.parametrize(
    "cell,bidirectional,num_layers,context_window",
    [(c, b, n, 0) for c, b, n in itertools.product(("rnn", "gru", "lstm"), (False, True), (1, 2))]
    + [("rnn", False, 1, 1), ("lstm", True, 1, 2)],
)
def test_padding_never_changes_logits(cell, bidirectional, num_layers, context_window):
    model = make_model(cell=cell, bidirectional=bidirectional, num_layers=num_layers,
                       context_window=context_window, num_intents=3)
    sentence = [5, 9, 3, 7]
    alone = model(*padded([sentence]))
    batch = model(*padded([[4, 4, 4, 4, 4, 4, 4, 4, 4], sentence, [2, 3]]))
    torch.testing.assert_close(batch["logits"][1, :4], alone["logits"][0], rtol=0, atol=1e-6)
    torch.testing.assert_close(batch["intent_logits"][1], alone["intent_logits"][0], rtol=0, atol=1e-6)


def test_backward_direction_starts_at_each_utterances_own_end():
    """A bidirectional model's last-token state must not depend on padding after it."""
    model = make_model(cell="gru", bidirectional=True)
    words = torch.tensor([[5, 9, 3, 0, 0]])
    short = model(words, torch.tensor([3]))["logits"][0, :3]
    trimmed = model(words[:, :3], torch.tensor([3]))["logits"][0]
    torch.testing.assert_close(short, trimmed, rtol=0, atol=1e-6)


def test_summed_loss_matches_hand_computation():
    model = make_model(cell="rnn", bidirectional=False)
    words, lengths = padded([[1, 2, 3], [4, 5]])
    tags = torch.tensor([[1, 0, 2], [3, 4, 6]])  # 6 sits on padding and must not count
    out = model(words, lengths, tags, reduction="sum")
    logp = out["logits"].log_softmax(-1)
    utt0 = -(logp[0, 0, 1] + logp[0, 1, 0] + logp[0, 2, 2])
    utt1 = -(logp[1, 0, 3] + logp[1, 1, 4])
    torch.testing.assert_close(out["loss"], (utt0 + utt1) / 2)
    mean = model(words, lengths, tags, reduction="mean")["loss"]
    torch.testing.assert_close(mean, (utt0 + utt1) / 5)


def test_intent_loss_is_added_with_its_weight():
    model = make_model(num_intents=4, intent_loss_weight=0.5)
    words, lengths = padded([[1, 2, 3], [4, 5]])
    tags = torch.zeros_like(words)
    intents = torch.tensor([2, 0])
    out = model(words, lengths, tags, intents)
    slot = model(words, lengths, tags)["loss"]
    expected = slot + 0.5 * F.cross_entropy(out["intent_logits"], intents)
    torch.testing.assert_close(out["loss"], expected)


def test_elman_cell_is_the_seed_equation():
    """s_t = tanh(U x_t + W s_{t-1} + b) with s_0 = 0, computed by hand."""
    torch.manual_seed(1)
    enc = RecurrentEncoder(4, 3, cell="rnn", bidirectional=False)
    x = torch.randn(1, 5, 4)
    out = enc(x, torch.tensor([5]))
    rnn = enc.rnn
    s = torch.zeros(3)
    for t in range(5):
        s = torch.tanh(rnn.weight_ih_l0 @ x[0, t] + rnn.bias_ih_l0 + rnn.weight_hh_l0 @ s + rnn.bias_hh_l0)
        torch.testing.assert_close(out[0, t], s)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_cells_are_really_different_modules(cell):
    enc = RecurrentEncoder(4, 3, cell=cell, nonlinearity="relu" if cell == "rnn" else "tanh")
    expected = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    assert type(enc.rnn) is expected
    if cell == "rnn":
        assert enc.rnn.nonlinearity == "relu"


def test_context_window_concatenates_neighbours():
    rep = WordRepresentation(10, 2, context_window=1)
    with torch.no_grad():
        rep.embedding.weight.copy_(torch.arange(20, dtype=torch.float).view(10, 2))
        rep.embedding.weight[0].zero_()
    out = rep(torch.tensor([[3, 4, 5]]))
    assert out.shape == (1, 3, 6)
    e = rep.embedding.weight
    torch.testing.assert_close(out[0, 0], torch.cat([torch.zeros(2), e[3], e[4]]))
    torch.testing.assert_close(out[0, 1], torch.cat([e[3], e[4], e[5]]))
    torch.testing.assert_close(out[0, 2], torch.cat([e[4], e[5], torch.zeros(2)]))


def test_predict_returns_one_tag_per_real_token():
    model = make_model(num_intents=2)
    words, lengths = padded([[1, 2, 3], [4]])
    paths, intents = model.predict(words, lengths)
    assert [len(p) for p in paths] == [3, 1]
    assert len(intents) == 2 and all(0 <= i < 2 for i in intents)
    assert all(0 <= t < 7 for p in paths for t in p)


def test_gradients_reach_every_parameter():
    model = make_model(num_intents=2).train()
    words, lengths = padded([[1, 2, 3], [4, 5]])
    out = model(words, lengths, torch.ones_like(words), torch.tensor([0, 1]))
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert math.isfinite(float(out["loss"].detach()))



@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_unpacked_encoder_equals_packed_module(cell, bidirectional, num_layers):
    """The encoder's padded fast path gives what nn.RNN/GRU/LSTM give on packed sequences,
    outputs and gradients, for ragged and for equal-length batches."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from slotfill.model.encoder import RecurrentEncoder

    torch.manual_seed(0)
    enc = RecurrentEncoder(5, 7, cell, "tanh", bidirectional, num_layers).eval()
    for lengths in (torch.tensor([6, 3, 1, 6]), torch.tensor([4, 4, 4])):
        x = torch.randn(len(lengths), int(lengths.max()), 5, requires_grad=True)
        ours = enc(x, lengths)
        (grad_ours,) = torch.autograd.grad((ours * ours).sum(), x)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        ref, _ = pad_packed_sequence(enc.rnn(packed)[0], batch_first=True, total_length=x.size(1))
        (grad_ref,) = torch.autograd.grad((ref * ref).sum(), x)
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grad_ours, grad_ref, rtol=1e-5, atol=1e-6)


def test_dropout_between_layers_only_in_training():
    from slotfill.model.encoder import RecurrentEncoder

    torch.manual_seed(0)
    enc = RecurrentEncoder(4, 6, "lstm", "tanh", True, 2, dropout=0.5)
    x, lengths = torch.randn(3, 5, 4), torch.tensor([5, 2, 4])
    enc.eval()
    torch.testing.assert_close(enc(x, lengths), enc(x, lengths))
    enc.train()
    assert not torch.allclose(enc(x, lengths), enc(x, lengths))


def test_fast_dropout_rate_and_scale():
    from slotfill.model.dropout import Dropout

    torch.manual_seed(0)
    drop = Dropout(0.3)
    y = drop(torch.ones(200_000))
    assert abs(float((y == 0).float().mean()) - 0.3) < 0.005
    assert abs(float(y.mean()) - 1.0) < 0.01  # kept elements are scaled by 1 / (1 - p)
    values = torch.unique(y).tolist()
    assert values[0] == 0.0 and len(values) == 2 and values[1] == pytest.approx(1 / (1 - drop.effective_p))
    drop.eval()
    x = torch.randn(10)
    assert torch.equal(drop(x), x)
    with pytest.raises(ValueError):
        Dropout(1.0)


def test_locked_dropout_shares_one_mask_across_each_utterances_positions():
    from slotfill.model.dropout import Dropout

    torch.manual_seed(0)
    drop = Dropout(0.5, locked=True)
    y = drop(torch.ones(64, 7, 300))
    dropped = y == 0
    # every position of an utterance drops the same features ...
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))
    # ... while utterances and features draw their own, at the requested rate and scale
    assert not torch.equal(dropped[0, 0], dropped[1, 0])
    assert abs(float(dropped.float().mean()) - 0.5) < 0.01
    assert set(torch.unique(y).tolist()) == {0.0, 2.0}
    # a pooled (B, D) input has one row per utterance: dropped elementwise
    pooled = drop(torch.ones(64, 300))
    assert 0.45 < float((pooled == 0).float().mean()) < 0.55
    drop.eval()
    x = torch.randn(2, 3, 4)
    assert torch.equal(drop(x), x)
    per_token = Dropout(0.5)(torch.ones(64, 7, 300)) == 0
    assert not torch.equal(per_token, per_token[:, :1].expand_as(per_token))


def test_locked_dropout_reaches_every_dropout_on_the_sequence_and_not_evaluation():
    torch.manual_seed(0)
    model = make_model(locked_dropout=True, num_layers=2, dropout=0.5)
    assert model.words.dropout.locked and model.encoder.between_layers.locked and model.slots.dropout.locked
    assert not make_model().words.dropout.locked
    words, lengths = padded([[2, 3, 4, 5], [6, 7, 0, 0]])
    model.eval()
    torch.testing.assert_close(model(words, lengths)["logits"], model(words, lengths)["logits"])
    model.train()
    # the word representation's mask is shared by the positions of an utterance
    emb = model.words(words)
    dropped = emb == 0
    assert torch.equal(dropped[0], dropped[0, :1].expand_as(dropped[0]))


def test_intent_head_max_pools_real_tokens_and_its_loss_and_accuracy_by_hand():
    """Hand-set weights: the head's logits, the joint loss and the predicted intents."""
    from slotfill.model.heads import IntentHead

    head = IntentHead(input_dim=2, num_intents=2).eval()
    with torch.no_grad():
        head.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        head.linear.bias.zero_()
    states = torch.tensor([[[0.5, 2.0], [1.0, -1.0], [9.0, 9.0]],  # third position is padding
                           [[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    logits = head(states, mask)
    # max over real positions: [1.0, 2.0] and [3.0, 1.0]
    torch.testing.assert_close(logits, torch.tensor([[1.0, 2.0], [3.0, 1.0]]))
    gold = torch.tensor([1, 1])
    expected = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(2.0))) / 2
    assert F.cross_entropy(logits, gold).item() == pytest.approx(expected, rel=1e-6)
    predicted = logits.argmax(-1)
    assert predicted.tolist() == [1, 0]
    from slotfill.metrics import slot_scores

    scores = slot_scores([["B-x"], ["O"]], [["B-x"], ["O"]], ["b", "b"], [["a", "b"][i] for i in predicted.tolist()])
    assert scores["intent_accuracy"] == 0.5 and scores["frame_accuracy"] == 0.5


# --------------------------------------------------------------------------- self-attention


@pytest.mark.parametrize("head", ["softmax", "crf"])
def test_attention_is_padding_invariant_and_feeds_both_heads(head):
    model = make_model(attention=True, num_intents=3, head=head)
    assert model.slots.linear.in_features == 2 * model.encoder.output_dim
    assert model.intents.linear.in_features == 2 * model.encoder.output_dim
    sentence = [5, 9, 3, 7]
    alone = model(*padded([sentence]))
    batch = model(*padded([[4, 4, 4, 4, 4, 4, 4, 4, 4], sentence, [2, 3]]))
    torch.testing.assert_close(batch["logits"][1, :4], alone["logits"][0], rtol=0, atol=1e-6)
    torch.testing.assert_close(batch["intent_logits"][1], alone["intent_logits"][0], rtol=0, atol=1e-6)
    paths, _ = model.predict(*padded([[4, 4, 4, 4, 4, 4, 4, 4, 4], sentence, [2, 3]]))
    assert [len(p) for p in paths] == [9, 4, 2]


def test_attention_by_hand():
    """Weights over real positions only, the context as their average, zero at padding."""
    from slotfill.model import SelfAttention

    att = SelfAttention(input_dim=2, attention_dim=1).double()
    with torch.no_grad():
        att.query.weight.copy_(torch.tensor([[1.0, 0.0]]))
        att.query.bias.zero_()
        att.key.weight.copy_(torch.tensor([[0.0, 1.0]]))
    states = torch.tensor([[[1.0, 0.0], [2.0, 1.0], [5.0, 7.0]]], dtype=torch.float64)  # third is padding
    mask = torch.tensor([[True, True, False]])
    out = att(states, mask)
    # q_i = h_i[0] and k_j = h_j[1] (d = 1), so the scores of rows 0 and 1 are [0, 1] and [0, 2]
    for i, q in enumerate([1.0, 2.0]):
        a = torch.softmax(torch.tensor([0.0, q], dtype=torch.float64), 0)
        context = a[0] * states[0, 0] + a[1] * states[0, 1]
        torch.testing.assert_close(out[0, i], torch.cat([states[0, i], context]))
    assert out[0, 2].abs().sum() == 0
    weights = att.weights(states, mask)
    assert weights[0, :, 2].abs().sum() == 0
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 3, dtype=torch.float64))
    changed = states.clone()
    changed[0, 2] = torch.tensor([-3.0, 40.0])  # padding's value cannot matter
    torch.testing.assert_close(att(changed, mask)[0, :2], out[0, :2], rtol=0, atol=0)


def test_attention_gets_gradients_and_is_off_by_default():
    assert make_model().attention is None
    model = make_model(attention=True, num_intents=3).train()
    words, lengths = padded([[5, 9, 3, 7], [2, 3]])
    model(words, lengths, torch.zeros_like(words), torch.tensor([0, 2]))["loss"].backward()
    for name in ("attention.query.weight", "attention.query.bias", "attention.key.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name


# --------------------------------------------------------------------------- intent -> slot bias


def test_intent_slot_bias_starts_at_zero_then_adds_the_intent_distribution_times_the_matrix():
    plain = make_model(num_intents=3)
    model = make_model(num_intents=3, intent_slot_bias=True)
    assert model.intent_bias.shape == (3, 7) and make_model(num_intents=3).intent_bias is None
    words, lengths = padded([[5, 9, 3, 7], [2, 3]])
    # Zero at initialisation: exactly the plain model (same seed, same other weights).
    torch.testing.assert_close(model(words, lengths)["logits"], plain(words, lengths)["logits"], rtol=0, atol=0)
    with torch.no_grad():
        model.intent_bias.copy_(torch.arange(21.0).reshape(3, 7) / 7)
    out, base = model(words, lengths), plain(words, lengths)
    for b in range(2):
        shift = out["intent_logits"][b].softmax(-1) @ model.intent_bias  # (7,), the same at every token
        for t in range(int(lengths[b])):
            torch.testing.assert_close(out["logits"][b, t], base["logits"][b, t] + shift)
    # Padding invariance holds with the bias (the intent head ignores padding).
    alone = model(*padded([[2, 3]]))
    torch.testing.assert_close(out["logits"][1, :2], alone["logits"][0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("head", ["softmax", "crf"])
def test_with_intent_slot_bias_the_slot_loss_trains_the_intent_head(head):
    model = make_model(num_intents=3, intent_slot_bias=True, intent_loss_weight=0.0, head=head).train()
    with torch.no_grad():
        model.intent_bias.normal_()
    words, lengths = padded([[5, 9, 3, 7], [2, 3]])
    tags = torch.tensor([[1, 2, 0, 3], [4, 0, 0, 0]])
    model(words, lengths, tags, torch.tensor([0, 2]))["loss"].backward()
    assert model.intents.linear.weight.grad.abs().sum() > 0 and model.intent_bias.grad.abs().sum() > 0
    # Without the bias, intent weight 0 leaves the intent head untouched by the slot loss.
    plain = make_model(num_intents=3, intent_loss_weight=0.0, head=head).train()
    plain(words, lengths, tags, torch.tensor([0, 2]))["loss"].backward()
    assert plain.intents.linear.weight.grad is None or plain.intents.linear.weight.grad.abs().sum() == 0


def test_intent_slot_bias_without_an_intent_head_is_refused():
    with pytest.raises(ValueError, match="needs an intent head"):
        make_model(intent_slot_bias=True)
