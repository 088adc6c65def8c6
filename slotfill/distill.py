"""Distillation: train a tagger on a teacher's soft labels as well as the gold ones.

``trainer.distill_from=[PATH,...]`` names trained taggers: checkpoint files, or run folders
(their ``checkpoints/best.pt``); an ensemble run counts as its members. Before training,
the teachers tag the training split once and their mean scores define the teacher: the same
product of experts that :class:`~slotfill.model.ensemble.Ensemble` decodes. Its soft labels
are kept for every training utterance:

- CRF teachers: each token's tag marginals and the expected count of every tag transition
  (forward-backward, :func:`slotfill.model.crf.marginals`), so a CRF student's loss is the
  exact cross-entropy from the teacher's distribution over whole tag paths to its own;
- softmax teachers: each token's tag distribution (and, for a CRF student, transition counts
  from the products of neighbouring tokens' distributions: such a teacher's tokens are
  independent);
- with intent heads: the intent distribution.

Each utterance's loss is then ``(1 - w)`` x the gold loss + ``w`` x the loss against the
teacher, ``w = trainer.distill_weight`` (:meth:`slotfill.model.Tagger.loss`), and
``trainer.distill_temperature`` softens the teacher (:func:`soft_targets`).

The teachers must have been trained on the same data as the student, folds included: a
teacher trained with the student's dev fold or test split in its training data would hand
their labels over, so that is a :class:`~slotfill.errors.ConfigError`. One exception: for a
student without folds, the taggers of a k-fold cross-validation over its training split
(``data.cv_fold=0..k-1``) each label only the utterances of the fold they held out
(:func:`held_out_rows`), so every soft label comes from a tagger that never trained on its
utterance (on their own training data, taggers are nearly certain of the gold tags).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from slotfill.checkpoint import load_checkpoint
from slotfill.data.batching import EncodedSplit, length_runs
from slotfill.data.example import Example
from slotfill.data.loading import fold_indices
from slotfill.errors import ConfigError
from slotfill.inference import build_taggers
from slotfill.model import Tagger
from slotfill.model.crf import marginals
from slotfill.training import with_schema_defaults
from slotfill.vocab import LabelSet, TagSet, Vocab

PAIR_THRESHOLD = 1e-6
"""Expected transition counts below this are not stored (their sum is logged): a teacher's
transition counts are a (C, C) matrix per utterance, almost all of it ~0 (ATIS: 120 tags)."""


@dataclass
class SoftTargets:
    """A teacher's soft labels for the rows of one split, in the student's tag order."""

    weight: float
    tokens: torch.Tensor  # (N, T, C) tag marginals, zero at padding
    pair_offsets: torch.Tensor  # (N + 1,) row r's transition entries are [offsets[r], offsets[r + 1])
    pair_index: torch.Tensor  # (E,) flat index i * C + j of an i -> j transition (int32)
    pair_value: torch.Tensor  # (E,) its expected count
    intents: torch.Tensor | None  # (N, I) intent distributions
    dropped: float  # expected transitions not stored (below PAIR_THRESHOLD), summed over rows
    taggers: int  # the teacher's members
    temperature: float
    out_of_fold: bool  # each row labelled by the fold taggers that held it out

    @property
    def num_tags(self) -> int:
        return self.tokens.size(2)

    def batch(self, index: torch.Tensor, width: int, device: torch.device | str = "cpu") -> dict[str, Any]:
        """The ``soft`` argument of :meth:`~slotfill.model.Tagger.loss` for rows ``index``, ``width`` tokens wide."""
        start, stop = self.pair_offsets[index], self.pair_offsets[index + 1]
        counts = stop - start
        ends = counts.cumsum(0)
        # the positions of the rows' entries, concatenated: start of the row + offset inside it
        within = torch.arange(int(ends[-1])) - torch.repeat_interleave(ends - counts, counts)
        entries = torch.repeat_interleave(start, counts) + within
        c = self.num_tags
        pairs = torch.zeros(c * c).index_add_(0, self.pair_index[entries].long(), self.pair_value[entries]).view(c, c)
        return {
            "weight": self.weight,
            "tokens": self.tokens[index, :width].to(device),
            "pairs": pairs.to(device),
            "intents": None if self.intents is None else self.intents[index].to(device),
        }


def teacher_file(path: str) -> Path:
    """A teacher's checkpoint: ``path`` itself, or a run folder's ``checkpoints/best.pt``."""
    given = Path(path)
    found = given / "checkpoints" / "best.pt" if given.is_dir() else given
    if not found.is_file():
        raise ConfigError(
            f"trainer.distill_from: {path} is neither a checkpoint nor a run folder with checkpoints/best.pt "
            "-- name the teacher's best.pt or its run folder"
        )
    return found


FOLD_KEYS = ("cv_folds", "cv_fold", "cv_seed")


def held_out_rows(path: Path, teacher: dict[str, Any], student: dict[str, Any], n: int) -> torch.Tensor | None:
    """The rows of the student's training split that a teacher labels: ``None`` for all of them.

    A teacher trained on the student's own data settings labels every row. A teacher trained on
    fold k of a cross-validation over the same training split (``data.cv_fold=k``), for a
    student without folds, labels only the rows of fold k, which it never trained on: with one
    such teacher per fold, every training utterance gets soft labels from a tagger that did
    not see it. Any other difference in the data settings is a :class:`ConfigError` (see the
    module doc). ``teacher`` and ``student`` are whole ``data`` configs (a teacher's saved one
    completed by :func:`~slotfill.training.with_schema_defaults`).
    """
    folds = int(teacher["cv_folds"] or 0)
    out_of_fold = folds >= 2 and not int(student["cv_folds"] or 0)
    differs = []
    for key, value in student.items():
        if key == "download" or (out_of_fold and key in FOLD_KEYS):  # download: where a missing folder comes from
            continue
        other = teacher[key]
        if key in ("dir", "train", "dev", "test") and other is not None and value is not None:
            other, value = os.path.realpath(other), os.path.realpath(value)
        if other != value:
            differs.append(f"data.{key} {other!r} vs {value!r}")
    if differs:
        raise ConfigError(
            f"trainer.distill_from: {path} was trained on other data ({'; '.join(differs)}): its soft labels could "
            "carry labels this run holds out -- distil from taggers trained with this run's data settings"
        )
    if not out_of_fold:
        return None
    return torch.tensor(fold_indices(n, folds, int(teacher["cv_fold"]), int(teacher["cv_seed"]))[1], dtype=torch.long)


@dataclass
class _Teacher:
    path: Path
    members: list[Tagger]
    vocab: Vocab
    tags: list[str]
    intents: list[str] | None
    rows: torch.Tensor | None  # the student's training rows it labels (None: all)
    tag_order: torch.Tensor | None = None  # set by soft_targets: see _order
    intent_order: torch.Tensor | None = None
    encoded: EncodedSplit | None = None  # the student's training split in this teacher's vocabulary


def load_teachers(paths: Sequence[str], data: DictConfig, n: int) -> list[_Teacher]:
    student = OmegaConf.to_container(data, resolve=True)
    teachers = []
    for path in paths:
        file = teacher_file(path)
        state = load_checkpoint(file)
        # a teacher saved before a data option existed trained with its schema default
        saved = OmegaConf.to_container(with_schema_defaults(OmegaConf.create(state.get("config") or {})).data)
        rows = held_out_rows(file, saved, student, n)
        members = [m.eval() for m in build_taggers(state, file)]
        teachers.append(
            _Teacher(file, members, Vocab.from_state(state["vocab"]), list(state["tags"]), state.get("intents"), rows)
        )
    heads = {m.crf is not None for t in teachers for m in t.members}
    if len(heads) > 1:
        raise ConfigError("trainer.distill_from: the teachers mix CRF and softmax output layers -- name teachers with one kind")
    return teachers


def _groups(teachers: list[_Teacher], n: int) -> list[tuple[list[_Teacher], torch.Tensor]]:
    """Teachers grouped by the rows they label; the groups' rows must partition the split."""
    groups: dict[tuple[int, ...] | None, list[_Teacher]] = {}
    for teacher in teachers:
        key = None if teacher.rows is None else tuple(teacher.rows.tolist())
        groups.setdefault(key, []).append(teacher)
    if None in groups and len(groups) > 1:
        raise ConfigError(
            "trainer.distill_from mixes taggers trained on this run's training data with taggers of cross-validation "
            "folds -- name one kind"
        )
    covered = torch.zeros(n, dtype=torch.long)
    for key in groups:
        if key is not None:
            covered[list(key)] += 1
    if None not in groups and not bool((covered == 1).all()):
        raise ConfigError(
            f"trainer.distill_from: the fold taggers must hold out every training utterance once (one or more "
            f"taggers per fold, all of one data.cv_folds and data.cv_seed); {int((covered == 0).sum())} utterances "
            f"are held out by none, {int((covered > 1).sum())} by more than one fold -- name a tagger for every fold"
        )
    return [(group, torch.arange(n) if key is None else torch.tensor(key, dtype=torch.long)) for key, group in groups.items()]


MISSING = -1e4
"""The score a teacher gives a tag or intent it never saw (a fold's training part may lack a
rare one): probability ~0, without the NaNs that -inf - -inf would make."""


def _order(theirs: Sequence[str], ours: Sequence[str], what: str, path: Path, partial: bool) -> torch.Tensor:
    """Index into the teacher's labels for each of the student's, -1 where the teacher lacks it.

    A teacher must know exactly the student's labels, except that a fold teacher (``partial``)
    may lack some: its training part of the data did not hold them.
    """
    extra = sorted(set(theirs) - set(ours))
    lacking = sorted(set(ours) - set(theirs))
    if extra or (lacking and not partial):
        only = (extra + lacking)[:5]
        raise ConfigError(
            f"trainer.distill_from: {path} has other {what} than this run's training data ({', '.join(only)} ...) "
            "-- distil from taggers trained on the same data"
        )
    position = {label: i for i, label in enumerate(theirs)}
    return torch.tensor([position.get(label, -1) for label in ours], dtype=torch.long)


def _pick(scores: torch.Tensor, order: torch.Tensor, fill: float, dims: int = 1) -> torch.Tensor:
    """``scores`` re-indexed in the student's order along its last ``dims`` dimensions; ``fill`` where the teacher lacks a label."""
    index, lacking = order.clamp(min=0), order < 0
    out = scores[..., index]
    out = out.masked_fill(lacking, fill)
    if dims == 2:
        out = out[index].masked_fill(lacking.unsqueeze(1), fill)
    return out


@torch.no_grad()
def soft_targets(
    paths: Sequence[str],
    data: DictConfig,
    examples: Sequence[Example],
    tagset: TagSet,
    labels: LabelSet | None,
    weight: float,
    batch_size: int = 256,
    temperature: float = 1.0,
) -> SoftTargets:
    """The teachers' soft labels for ``examples`` (the student's training split), computed once.

    ``temperature`` T divides the teacher's mean scores (emissions, CRF start, end and
    transition scores, intent log-probabilities) before they are normalised: T > 1 spreads
    the teacher's probability over more tags. On their own training data trained taggers are
    nearly certain (an ATIS ensemble puts 0.999 on the gold tag on average), so at T = 1
    their soft labels are almost the gold ones. Fold teachers (:func:`held_out_rows`) label
    the utterances they never trained on.
    """
    n, c = len(examples), len(tagset)
    teachers = load_teachers(paths, data, n)
    groups = _groups(teachers, n)
    crf = teachers[0].members[0].crf is not None
    partial = teachers[0].rows is not None
    with_intents = labels is not None and all(m.intents is not None for t in teachers for m in t.members)
    encoded: list[tuple[dict[str, Any], EncodedSplit]] = []  # teachers of one configuration share a vocabulary
    for t in teachers:
        t.tag_order = _order(t.tags, tagset.itos, "slot tags", t.path, partial)
        t.intent_order = _order(t.intents or [], labels.itos, "intents", t.path, partial) if with_intents else None
        state = t.vocab.to_state()
        t.encoded = next((split for known, split in encoded if known == state), None)
        if t.encoded is None:  # the split is encoded once per distinct vocabulary
            t.encoded = EncodedSplit(examples, t.vocab)
            encoded.append((state, t.encoded))
    lengths = teachers[0].encoded.lengths
    tokens = torch.zeros(n, int(lengths.max()) if n else 0, c)
    intents = torch.zeros(n, len(labels)) if with_intents else None
    rows: list[tuple[torch.Tensor, torch.Tensor]] = [(torch.empty(0, dtype=torch.int32), torch.empty(0))] * n
    dropped = 0.0
    for group, group_rows in groups:
        if crf:  # the group's mean start, end and transition scores, in the student's tag order
            pieces = [(t.tag_order, m.crf) for t in group for m in t.members]
            mean_s, mean_e, mean_t = (
                torch.stack([_pick(getattr(m, name), order, 0.0, dims) for order, m in pieces]).mean(0) / temperature
                for name, dims in (("start", 1), ("end", 1), ("transitions", 2))
            )
        for chunk in length_runs(lengths[group_rows], batch_size, 1):
            index = group_rows[chunk]
            emissions, intent_scores = [], []
            for teacher in group:
                batch = teacher.encoded.batch(index)
                for member in teacher.members:
                    out = member(batch.words, batch.lengths, chars=batch.chars)
                    scores = out["logits"] if crf else out["logits"].log_softmax(-1)
                    emissions.append(_pick(scores, teacher.tag_order, MISSING))
                    if with_intents:
                        intent_scores.append(_pick(out["intent_logits"].log_softmax(-1), teacher.intent_order, MISSING))
            mean = torch.stack(emissions).mean(0) / temperature  # (B, T, C)
            mask = out["mask"]
            if crf:
                marg, pairs = marginals(mean, mask, mean_t, mean_s, mean_e)
            else:
                marg = mean.softmax(-1) * mask.unsqueeze(2)
                pairs = torch.einsum("bti,btj->bij", marg[:, :-1], marg[:, 1:])  # padding rows are zero
            tokens[index, : marg.size(1)] = marg
            if with_intents:
                intents[index] = (torch.stack(intent_scores).mean(0) / temperature).softmax(-1)
            flat = pairs.reshape(len(index), c * c)
            keep = flat >= PAIR_THRESHOLD
            dropped += float(flat[~keep].sum())
            for row, k, f in zip(index.tolist(), keep, flat):
                where = k.nonzero().squeeze(1)
                rows[row] = (where.to(torch.int32), f[where])
    counts = torch.tensor([len(r[0]) for r in rows], dtype=torch.long)
    offsets = torch.zeros(n + 1, dtype=torch.long)
    offsets[1:] = counts.cumsum(0)
    return SoftTargets(
        weight=weight,
        tokens=tokens,
        pair_offsets=offsets,
        pair_index=torch.cat([r[0] for r in rows]) if n else torch.empty(0, dtype=torch.int32),
        pair_value=torch.cat([r[1] for r in rows]) if n else torch.empty(0),
        intents=intents,
        dropped=dropped,
        taggers=sum(len(t.members) for t in teachers),
        temperature=temperature,
        out_of_fold=partial,
    )


def describe(soft: SoftTargets, paths: Sequence[str]) -> str:
    """One log line: what is distilled from where."""
    return (
        f"distillation: weight {soft.weight:g} on the soft labels (temperature {soft.temperature:g}) of "
        f"{soft.taggers} tagger(s){' of cross-validation folds, each labelling its held-out fold,' if soft.out_of_fold else ''} "
        f"from {', '.join(paths)}; "
        f"{soft.pair_index.numel():,} transition entries kept, {soft.dropped:.2g} expected transitions below "
        f"{PAIR_THRESHOLD:g} dropped"
    )
