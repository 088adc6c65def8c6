"""Slot, intent and sentence metrics on tag strings, with seqeval.

The headline is seqeval's default mode, which chunks like conlleval.pl (an ``I-x`` with
no opening ``B-x`` starts a chunk). The strict IOB2 mode is reported beside it, since the
two differ on ill-formed predictions. Gold tags that the model never saw in training stay
gold chunks: the model cannot predict them, so they count as misses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slotfill.data.bio import split_tag

# seqeval is imported where it is used: its metrics module imports scikit-learn and SciPy
# (~1.5 s), which a command line that stops at a config error, or only tags text, never needs.


def _check_aligned(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")


def _chunks(sequences: list[list[str]]) -> tuple[set[tuple[str, int, int]], set[tuple[str, int, int]]]:
    """The chunks of both of seqeval's modes: ``(type, first, last)`` over the sentences
    joined end to end with an ``O`` between them, as seqeval's default mode indexes them.

    Default (conlleval) chunks are seqeval's own ``get_entities``. Strict IOB2 accepts exactly
    those of them that open with ``B-`` (an ``I-x`` that continues nothing opens no strict
    chunk, and a strict chunk ends where a conlleval one does); tests check this against
    seqeval's strict mode, which takes 5x as long to chunk.
    """
    from seqeval.metrics.sequence_labeling import get_entities

    flat = [tag for sequence in sequences for tag in (*sequence, "O")]
    default = set(get_entities(flat))
    return default, {chunk for chunk in default if flat[chunk[1]][0] == "B"}


def _by_type(gold: set[tuple], pred: set[tuple]) -> dict[str, tuple[int, int, int]]:
    """Slot type -> (correct, predicted, gold) chunk counts, over the types either side has."""
    counts = {name: [0, 0, 0] for name in {chunk[0] for chunk in gold | pred}}
    for chunk in gold & pred:
        counts[chunk[0]][0] += 1
    for chunk in pred:
        counts[chunk[0]][1] += 1
    for chunk in gold:
        counts[chunk[0]][2] += 1
    return {name: (c[0], c[1], c[2]) for name, c in counts.items()}


def _prf(correct: int = 0, predicted: int = 0, gold: int = 0) -> tuple[float, float, float]:
    """Precision, recall and F1 as seqeval computes them with ``zero_division=0``."""
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    denominator = precision + recall
    return precision, recall, 2.0 * precision * recall / denominator if denominator else 0.0


def slot_scores(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    gold_intents: Sequence[str | None] | None = None,
    pred_intents: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every metric slotfill reports, as plain floats in [0, 1] (and counts).

    Keys: ``precision``, ``recall``, ``f1`` (conlleval-compatible), ``strict_precision``,
    ``strict_recall``, ``strict_f1`` (IOB2 strict), ``token_accuracy``,
    ``sentence_accuracy`` (every tag right), ``per_slot`` (slot type -> precision, recall,
    f1, support), ``sentences``, ``tokens``; and when intents are given, ``intent_accuracy``
    and ``frame_accuracy`` (intent and every tag right).
    """
    _check_aligned(gold, pred)
    gold_l = [list(g) for g in gold]
    pred_l = [list(p) for p in pred]
    tokens = sum(len(g) for g in gold_l)
    correct_tokens = sum(a == b for g, p in zip(gold_l, pred_l) for a, b in zip(g, p))
    sentence_ok = [g == p for g, p in zip(gold_l, pred_l)]
    # Each side is chunked once: seqeval's precision/recall/f1/report functions would chunk
    # both sides again for every number (about 20 passes), and training scores dev after every
    # epoch. The arithmetic is seqeval's; tests check every float against it.
    for tag in {tag for sequence in (*gold_l, *pred_l) for tag in sequence}:
        split_tag(tag)  # ValueError unless IOB2, as seqeval's strict mode would raise
    (gold_default, gold_strict), (pred_default, pred_strict) = _chunks(gold_l), _chunks(pred_l)
    default, strict = _by_type(gold_default, pred_default), _by_type(gold_strict, pred_strict)
    scores: dict[str, Any] = {
        **dict(zip(("precision", "recall", "f1"), _prf(*map(sum, zip(*default.values()))))),
        **dict(zip(("strict_precision", "strict_recall", "strict_f1"), _prf(*map(sum, zip(*strict.values()))))),
        "token_accuracy": correct_tokens / tokens if tokens else 0.0,
        "sentence_accuracy": sum(sentence_ok) / len(gold_l) if gold_l else 0.0,
        "per_slot": {
            name: dict(zip(("precision", "recall", "f1"), _prf(*counts)), support=counts[2])
            for name, counts in sorted(default.items())
        },
        "sentences": len(gold_l),
        "tokens": tokens,
    }
    if gold_intents is not None and pred_intents is not None and all(i is not None for i in gold_intents):
        if len(gold_intents) != len(gold_l) or len(pred_intents) != len(gold_l):
            raise ValueError("one intent per sentence is needed")
        intent_ok = [g == p for g, p in zip(gold_intents, pred_intents)]
        scores["intent_accuracy"] = sum(intent_ok) / len(intent_ok) if intent_ok else 0.0
        scores["frame_accuracy"] = (
            sum(a and b for a, b in zip(intent_ok, sentence_ok)) / len(intent_ok) if intent_ok else 0.0
        )
    return scores


def format_report(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], strict: bool = False) -> str:
    """seqeval's per-slot text report (conlleval-compatible, or strict IOB2)."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    _check_aligned(gold, pred)
    kwargs: dict[str, Any] = {"mode": "strict", "scheme": IOB2} if strict else {}
    return classification_report([list(g) for g in gold], [list(p) for p in pred], digits=4, zero_division=0, **kwargs)
