"""Several taggers trained on the same data, decoding as one."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from slotfill.model.crf import CRF
from slotfill.model.tagger import Tagger

# What members must share to be averaged: the same outputs, decoded the same way.
SHARED = ("vocab_size", "num_tags", "num_intents", "head", "constrained_decoding", "num_chars")


def first_mismatch(members: Sequence[Tagger]) -> tuple[int, list[str]] | None:
    """The first member whose :data:`SHARED` settings differ from member 0's, and those settings."""
    first = members[0].hparams
    for i, member in enumerate(members[1:], start=1):
        differs = [k for k in SHARED if member.hparams[k] != first[k]]
        if differs:
            return i, differs
    return None


class Ensemble(nn.Module):
    """Decodes the average of its members' scores: a product of experts.

    Softmax members: the mean of their per-token log-probabilities, then argmax (or
    BIO-constrained Viterbi). CRF members: one CRF whose emission, start, end and transition
    scores are the members' means, then Viterbi; since each member's log p(y) is its path
    score minus a constant per sentence, that path maximises the members' mean log p(y).
    Intents: the mean of the members' intent log-probabilities. Members are independent
    taggers (different seeds), each trained as usual; the ensemble only predicts.

    Args:
        members: taggers over the same vocabulary and tag set (equal :data:`SHARED` settings).
    """

    def __init__(self, members: Sequence[Tagger]):
        super().__init__()
        if len(members) < 1:
            raise ValueError("an ensemble needs at least one member")
        mismatch = first_mismatch(members)
        if mismatch is not None:
            i, differs = mismatch
            raise ValueError(f"ensemble member {i} differs from member 0 in {', '.join(differs)}")
        self.members = nn.ModuleList(members)

    @property
    def intents(self) -> nn.Module | None:
        return self.members[0].intents

    @property
    def constrained_decoding(self) -> bool:
        return self.members[0].constrained_decoding

    def set_tag_constraints(self, tags: list[str]) -> None:
        for member in self.members:
            member.set_tag_constraints(tags)

    def averaged_crf(self) -> CRF | None:
        """A CRF holding the members' mean start, end and transition scores (``None`` for softmax members)."""
        crfs = [m.crf for m in self.members]
        if crfs[0] is None:
            return None
        mean = CRF(crfs[0].transitions.size(0)).to(crfs[0].transitions.device)
        with torch.no_grad():
            for name in ("start", "end", "transitions"):
                getattr(mean, name).copy_(torch.stack([getattr(c, name) for c in crfs]).mean(0))
        return mean

    def forward(
        self, words: torch.Tensor, lengths: torch.Tensor, chars: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The members' mean scores, as :meth:`Tagger.forward` returns them (no loss): see :meth:`mean_scores`."""
        outs = [m(words, lengths, chars=chars) for m in self.members]
        return {**self.mean_scores(outs), "mask": outs[0]["mask"]}

    def mean_scores(self, outs: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The ensemble's ``logits`` (and ``intent_logits``) from its members' outputs.

        CRF members' slot scores are averaged as they are (the averaged CRF decodes them);
        softmax members' as log-probabilities; intents always as log-probabilities.
        """
        slot = (lambda o: o["logits"]) if self.members[0].crf is not None else (lambda o: o["logits"].log_softmax(-1))
        mean = {"logits": torch.stack([slot(o) for o in outs]).mean(0)}
        if "intent_logits" in outs[0]:
            mean["intent_logits"] = torch.stack([o["intent_logits"].log_softmax(-1) for o in outs]).mean(0)
        return mean

    @torch.no_grad()
    def predict(
        self,
        words: torch.Tensor,
        lengths: torch.Tensor,
        constrained: bool | None = None,
        chars: torch.Tensor | None = None,
    ) -> tuple[list[list[int]], list[int] | None]:
        """As :meth:`Tagger.predict`, from the members' mean scores."""
        out = self(words, lengths, chars=chars)
        return self.members[0].decode(out, lengths, constrained, self.averaged_crf())
