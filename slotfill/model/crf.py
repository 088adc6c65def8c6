"""Linear-chain CRF and Viterbi decoding over masks, with BIO transition constraints.

Scores of a tag path y over emissions e (B, T, C):
    score(y) = start[y_1] + sum_t e_t[y_t] + sum_{t>1} trans[y_{t-1}, y_t] + end[y_T]
and log p(y) = score(y) - log Z with Z summing exp(score) over every path (forward
algorithm). Padded positions (mask false) are skipped: a path ends at each row's own last
real token.

The same :func:`viterbi` decodes a softmax tagger under BIO constraints: pass its token
log-probabilities as emissions and zero/-inf transition scores from :func:`bio_constraints`,
and the best path is the most probable tag sequence that BIO allows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

NEG_INF = float("-inf")


def bio_constraints(tags: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Allowed starts (C,) and transitions (C, C) under IOB2.

    ``I-x`` may only follow ``B-x`` or ``I-x`` and may not start an utterance; every other
    transition is allowed.
    """
    n = len(tags)
    start = torch.ones(n, dtype=torch.bool)
    allowed = torch.ones(n, n, dtype=torch.bool)
    for j, tag in enumerate(tags):
        if tag.startswith("I-"):
            start[j] = False
            kind = tag[2:]
            for i, prev in enumerate(tags):
                allowed[i, j] = prev in (f"B-{kind}", f"I-{kind}")
    return start, allowed


def viterbi(
    emissions: torch.Tensor,
    mask: torch.Tensor,
    transitions: torch.Tensor,
    start: torch.Tensor | None = None,
    end: torch.Tensor | None = None,
) -> list[list[int]]:
    """Best tag path per row.

    Args:
        emissions: (B, T, C) per-token scores.
        mask: (B, T) true at real tokens; each row's real tokens come first.
        transitions: (C, C) score of moving from tag i to tag j (``-inf``: forbidden).
        start: (C,) score of starting in a tag; ``end``: (C,) of ending in it.

    Returns:
        one list of tag indices per row, as long as the row's real tokens.
    """
    batch, length, num_tags = emissions.shape
    start = emissions.new_zeros(num_tags) if start is None else start.to(emissions)
    end = emissions.new_zeros(num_tags) if end is None else end.to(emissions)
    incoming = transitions.to(emissions).t().contiguous()  # (C, C_prev): row j scores i -> j
    score = start + emissions[:, 0]  # (B, C)
    history = []  # the scores before each step; the backtrace recomputes its argmax from them
    for t in range(1, length):
        history.append(score)
        # max over the previous tag without its index (half the cost of max with indices),
        # reduced over the contiguous last dimension
        best = (score.unsqueeze(1) + incoming).amax(dim=2)  # (B, C)
        score = torch.where(mask[:, t].unsqueeze(1), best + emissions[:, t], score)
    score = score + end
    lengths = mask.sum(dim=1)
    last = score.argmax(dim=1)  # (B,) each row's tag at its own last token
    # Backtrace for the whole batch at once: ``tag`` holds each row's tag at position t
    # once t is inside the row, and the row's last tag before that. The best previous tag
    # is the argmax of the same sums the forward pass maximised (first index on ties).
    tags = torch.empty(batch, length, dtype=torch.long, device=emissions.device)
    tags[:, length - 1] = last
    tag = last
    for t in range(length - 1, 0, -1):
        previous = (history[t - 1] + incoming[tag]).argmax(dim=1)
        tag = torch.where(lengths > t, previous, last)
        tags[:, t - 1] = tag
    return [row[:n] for row, n in zip(tags.tolist(), lengths.tolist())]


def marginals(
    emissions: torch.Tensor,
    mask: torch.Tensor,
    transitions: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token and transition marginals of a linear-chain CRF, by forward-backward.

    Args:
        emissions: (B, T, C); ``mask`` (B, T), each row's real tokens first;
        transitions: (C, C); ``start``, ``end``: (C,), as in :class:`CRF`.

    Returns:
        ``tokens`` (B, T, C): p(y_t = c), zero at padding; ``pairs`` (B, C, C): the expected
        number of i -> j transitions in each row's path, sum_t p(y_t = i, y_{t+1} = j).
    """
    batch, length, num_tags = emissions.shape
    lengths = mask.sum(dim=1)
    alphas = [start + emissions[:, 0]]  # (B, C) each: log-sum of the scores of paths ending in c
    for t in range(1, length):
        nxt = torch.logsumexp(alphas[-1].unsqueeze(2) + transitions, dim=1) + emissions[:, t]
        alphas.append(torch.where(mask[:, t].unsqueeze(1), nxt, alphas[-1]))
    end_b = end.expand(batch, num_tags)
    betas = [end_b]  # beta_t: log-sum of the scores of the path's rest after y_t (end included)
    for t in range(length - 2, -1, -1):
        ahead = emissions[:, t + 1] + betas[0]  # (B, C)
        nxt = torch.logsumexp(transitions + ahead.unsqueeze(1), dim=2)
        betas.insert(0, torch.where((lengths > t + 1).unsqueeze(1), nxt, end_b))
    alpha, beta = torch.stack(alphas, 1), torch.stack(betas, 1)  # (B, T, C)
    log_z = torch.logsumexp(alpha[:, 0] + beta[:, 0], dim=1)  # (B,)
    tokens = torch.exp(alpha + beta - log_z.view(-1, 1, 1)) * mask.unsqueeze(2)
    pairs = emissions.new_zeros(batch, num_tags, num_tags)
    for t in range(length - 1):
        step = alpha[:, t].unsqueeze(2) + transitions + (emissions[:, t + 1] + beta[:, t + 1]).unsqueeze(1)
        pairs += torch.exp(step - log_z.view(-1, 1, 1)) * (lengths > t + 1).view(-1, 1, 1)
    return tokens, pairs


class CRF(nn.Module):
    """Linear-chain CRF output layer with learned start, end and transition scores."""

    def __init__(self, num_tags: int):
        super().__init__()
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z per row (B,), by the forward algorithm.

        Each step is ``logsumexp_i(alpha_i + trans_ij)``, computed as one matrix product in
        shifted exp space: ``log(exp(alpha - m) @ exp(trans - M)) + m + M`` with m each row's
        max and M the largest transition score. That is the same number (the shifts are exact
        for any constants, so they carry no gradient) at a fraction of the cost of building
        the (B, C, C) tensor every step: with ATIS's ~120 tags, the broadcast logsumexp made
        the CRF most of a training step.
        """
        top = self.transitions.max().detach()
        exp_transitions = torch.exp(self.transitions - top)  # (C, C), entries in (0, 1]
        tiny = torch.finfo(emissions.dtype).tiny
        alpha = self.start + emissions[:, 0]  # (B, C)
        for t in range(1, emissions.size(1)):
            shift = alpha.max(dim=1, keepdim=True).values.detach()  # (B, 1)
            summed = torch.exp(alpha - shift) @ exp_transitions  # (B, C)
            nxt = torch.log(summed.clamp_min(tiny)) + shift + top + emissions[:, t]
            alpha = torch.where(mask[:, t].unsqueeze(1), nxt, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def path_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """score(y) per row (B,) for gold paths ``tags`` (B, T); padding ignored."""
        maskf = mask.to(emissions.dtype)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        score = self.start[tags[:, 0]] + (emit * maskf).sum(dim=1)
        trans = self.transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        score = score + (trans * maskf[:, 1:]).sum(dim=1)
        last = tags.gather(1, (mask.sum(dim=1, keepdim=True) - 1).clamp(min=0)).squeeze(1)
        return score + self.end[last]

    def expected_score(
        self, emissions: torch.Tensor, mask: torch.Tensor, tokens: torch.Tensor, pairs: torch.Tensor
    ) -> torch.Tensor:
        """E_q[score(y)] summed over the batch's rows, for path distributions q given by their
        marginals: ``tokens`` (B, T, C), zero at padding, and ``pairs`` (C, C), the expected
        transition counts summed over the rows (see :func:`marginals`). With q a point mass on
        the gold paths this is the sum of their :meth:`path_score`; ``log Z - E_q[score]`` is
        the cross-entropy from q to this CRF's distribution (a teacher's soft labels)."""
        last = (mask.sum(dim=1) - 1).clamp(min=0)
        at_last = tokens[torch.arange(tokens.size(0), device=tokens.device), last]  # (B, C)
        return (
            (tokens * emissions).sum() + (tokens[:, 0] @ self.start).sum()
            + (pairs * self.transitions).sum() + (at_last @ self.end).sum()
        )

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """-log p(tags) per row (B,)."""
        return self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)

    @torch.no_grad()
    def decode(
        self,
        emissions: torch.Tensor,
        mask: torch.Tensor,
        allowed_start: torch.Tensor | None = None,
        allowed_transitions: torch.Tensor | None = None,
    ) -> list[list[int]]:
        """Best paths; the optional boolean masks forbid starts/transitions (BIO constraints)."""
        start, transitions = self.start, self.transitions
        if allowed_start is not None:
            start = start.masked_fill(~allowed_start, NEG_INF)
        if allowed_transitions is not None:
            transitions = transitions.masked_fill(~allowed_transitions, NEG_INF)
        return viterbi(emissions, mask, transitions, start, self.end)


def constrained_decode(
    log_probs: torch.Tensor, mask: torch.Tensor, allowed_start: torch.Tensor, allowed_transitions: torch.Tensor
) -> list[list[int]]:
    """The most probable tag sequence of a softmax tagger among those the masks allow."""
    transitions = log_probs.new_zeros(allowed_transitions.shape).masked_fill(~allowed_transitions, NEG_INF)
    start = log_probs.new_zeros(allowed_start.shape).masked_fill(~allowed_start, NEG_INF)
    return viterbi(log_probs, mask, transitions, start)
