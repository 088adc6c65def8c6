"""Slot, intent and sentence metrics on tag strings, with seqeval.

The headline is seqeval's default mode, which chunks like conlleval.pl (an ``I-x`` with
no opening ``B-x`` starts a chunk). The strict IOB2 mode is reported beside it, since the
two differ on ill-formed predictions. Gold tags that the model never saw in training stay
gold chunks: the model cannot predict them, so they count as misses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2


def _check_aligned(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")


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
    report = classification_report(gold_l, pred_l, output_dict=True, zero_division=0)
    scores: dict[str, Any] = {
        "precision": float(precision_score(gold_l, pred_l, zero_division=0)),
        "recall": float(recall_score(gold_l, pred_l, zero_division=0)),
        "f1": float(f1_score(gold_l, pred_l, zero_division=0)),
        "strict_precision": float(precision_score(gold_l, pred_l, mode="strict", scheme=IOB2, zero_division=0)),
        "strict_recall": float(recall_score(gold_l, pred_l, mode="strict", scheme=IOB2, zero_division=0)),
        "strict_f1": float(f1_score(gold_l, pred_l, mode="strict", scheme=IOB2, zero_division=0)),
        "token_accuracy": correct_tokens / tokens if tokens else 0.0,
        "sentence_accuracy": sum(sentence_ok) / len(gold_l) if gold_l else 0.0,
        "per_slot": {
            name: {
                "precision": float(row["precision"]),
                "recall": float(row["recall"]),
                "f1": float(row["f1-score"]),
                "support": int(row["support"]),
            }
            for name, row in report.items()
            if not name.endswith(" avg")
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
    _check_aligned(gold, pred)
    kwargs: dict[str, Any] = {"mode": "strict", "scheme": IOB2} if strict else {}
    return classification_report([list(g) for g in gold], [list(p) for p in pred], digits=4, zero_division=0, **kwargs)
