"""The CRF's math against brute-force enumeration, and BIO-constrained decoding."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slotfill.data.bio import find_ill_formed
from slotfill.model.crf import CRF, bio_constraints, constrained_decode

TAGS = ["O", "B-a", "I-a", "B-b", "I-b"]


def _random_crf(num_tags: int, seed: int) -> CRF:
    torch.manual_seed(seed)
    crf = CRF(num_tags).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


@torch.no_grad()
def _enumerate(crf: CRF, emissions: torch.Tensor, length: int) -> dict[tuple[int, ...], float]:
    num_tags = emissions.size(-1)
    scores = {}
    for path in itertools.product(range(num_tags), repeat=length):
        tags = torch.tensor([list(path) + [0] * (emissions.size(1) - length)])
        mask = torch.arange(emissions.size(1)).unsqueeze(0) < length
        scores[path] = float(crf.path_score(emissions, tags, mask)[0])
    return scores


@pytest.mark.parametrize("length", [1, 2, 3])
def test_log_partition_equals_brute_force(length):
    crf = _random_crf(4, seed=length)
    emissions = torch.randn(1, 3, 4, dtype=torch.double)  # padded beyond `length`
    mask = torch.arange(3).unsqueeze(0) < length
    scores = _enumerate(crf, emissions, length)
    expected = torch.logsumexp(torch.tensor(list(scores.values()), dtype=torch.double), dim=0)
    torch.testing.assert_close(crf.log_partition(emissions, mask)[0], expected)
    # probabilities of all paths sum to one
    nll = {p: s - float(expected) for p, s in scores.items()}
    assert sum(torch.exp(torch.tensor(list(nll.values())))) == pytest.approx(1.0)


def test_nll_of_a_batch_matches_rows_alone():
    crf = _random_crf(5, seed=7)
    emissions = torch.randn(2, 4, 5, dtype=torch.double)
    tags = torch.tensor([[1, 2, 0, 3], [3, 4, 0, 0]])
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    batch = crf.nll(emissions, tags, mask)
    alone = crf.nll(emissions[1:, :2], tags[1:, :2], mask[1:, :2])
    torch.testing.assert_close(batch[1], alone[0])
    assert (batch > 0).all()


@pytest.mark.parametrize("length", [1, 2, 3])
def test_viterbi_equals_best_enumerated_path(length):
    crf = _random_crf(4, seed=10 + length)
    emissions = torch.randn(1, 3, 4, dtype=torch.double)
    mask = torch.arange(3).unsqueeze(0) < length
    scores = _enumerate(crf, emissions, length)
    best = max(scores, key=scores.get)
    assert crf.decode(emissions, mask) == [list(best)]


def test_viterbi_of_a_ragged_batch_equals_each_row_alone_and_enumeration():
    crf = _random_crf(4, seed=7)
    lengths = [3, 1, 2, 3]
    emissions = torch.randn(len(lengths), 3, 4, dtype=torch.double, generator=torch.Generator().manual_seed(3))
    mask = torch.arange(3).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    paths = crf.decode(emissions, mask)
    assert [len(p) for p in paths] == lengths
    for row, n in enumerate(lengths):
        assert paths[row] == crf.decode(emissions[row : row + 1, :n], mask[row : row + 1, :n])[0]
        scores = _enumerate(crf, emissions[row : row + 1], n)
        assert tuple(paths[row]) == max(scores, key=scores.get)


def test_bio_constraints():
    start, allowed = bio_constraints(TAGS)
    assert start.tolist() == [True, True, False, True, False]
    i = TAGS.index
    assert allowed[i("B-a"), i("I-a")] and allowed[i("I-a"), i("I-a")]
    assert not allowed[i("O"), i("I-a")] and not allowed[i("B-b"), i("I-a")] and not allowed[i("I-b"), i("I-a")]
    assert allowed[i("I-a"), i("B-b")] and allowed[i("I-a"), i("O")]


@settings(max_examples=200, deadline=None)
@given(
    scores=st.lists(st.lists(st.floats(-20, 20), min_size=5, max_size=5), min_size=1, max_size=8),
    crf_head=st.booleans(),
)
def test_constrained_decoding_never_emits_a_forbidden_transition(scores, crf_head):
    emissions = torch.tensor([scores], dtype=torch.double)
    mask = torch.ones(1, len(scores), dtype=torch.bool)
    start, allowed = bio_constraints(TAGS)
    if crf_head:
        crf = CRF(len(TAGS)).double()
        with torch.no_grad():
            crf.transitions.copy_(torch.randn(5, 5, generator=torch.Generator().manual_seed(len(scores))))
        path = crf.decode(emissions, mask, start, allowed)[0]
    else:  # softmax head: Viterbi over log-probabilities with 0/-inf transitions
        path = constrained_decode(emissions.log_softmax(-1), mask, start, allowed)[0]
    assert find_ill_formed([TAGS[t] for t in path]) == []


def test_constrained_softmax_decoding_repairs_what_greedy_gets_wrong():
    # greedy: O I-a (ill-formed); constrained: the best BIO-valid path
    log_probs = torch.log(torch.tensor([[[0.6, 0.3, 0.0, 0.1, 0.0], [0.1, 0.0, 0.8, 0.1, 0.0]]]) + 1e-9)
    start, allowed = bio_constraints(TAGS)
    assert log_probs.argmax(-1).tolist() == [[0, 2]]
    assert constrained_decode(log_probs, torch.ones(1, 2, dtype=torch.bool), start, allowed) == [[1, 2]]


def test_log_partition_matches_broadcast_logsumexp_in_value_and_gradient():
    """The matrix-product forward algorithm equals the textbook (B, C, C) logsumexp recursion."""
    torch.manual_seed(0)
    crf = CRF(9)
    with torch.no_grad():
        crf.transitions.normal_(0, 8)  # wide scores: the shifts must keep exp in range
        crf.start.normal_()
        crf.end.normal_()
    emissions = torch.randn(4, 7, 9, dtype=torch.float64) * 5
    emissions.requires_grad_(True)
    mask = torch.arange(7) < torch.tensor([7, 1, 4, 6]).unsqueeze(1)
    crf = crf.double()

    def textbook(e):
        alpha = crf.start + e[:, 0]
        for t in range(1, e.size(1)):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + crf.transitions, dim=1) + e[:, t]
            alpha = torch.where(mask[:, t].unsqueeze(1), nxt, alpha)
        return torch.logsumexp(alpha + crf.end, dim=1)

    ours, reference = crf.log_partition(emissions, mask), textbook(emissions)
    torch.testing.assert_close(ours, reference)
    grads = torch.autograd.grad(ours.sum(), [emissions, crf.transitions, crf.start, crf.end])
    expected = torch.autograd.grad(reference.sum(), [emissions, crf.transitions, crf.start, crf.end])
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e)
