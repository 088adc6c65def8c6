from __future__ import annotations

import pytest

from slotfill.metrics import format_report, slot_scores


def test_perfect_and_partial_scores():
    gold = [["B-a", "I-a", "O", "B-b"], ["O", "B-a"]]
    assert slot_scores(gold, gold)["f1"] == 1.0
    pred = [["B-a", "I-a", "O", "O"], ["O", "B-b"]]
    s = slot_scores(gold, pred)
    # gold chunks: a, b, a; predicted: a, b (wrong place) -> 1 correct of 2 predicted, of 3 gold
    assert s["precision"] == pytest.approx(1 / 2)
    assert s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert s["token_accuracy"] == pytest.approx(4 / 6)
    assert s["sentence_accuracy"] == 0.0
    assert s["per_slot"]["a"]["support"] == 2


def test_gold_tags_unseen_in_training_are_misses_not_dropped():
    """A model that cannot emit B-booking_class still has that chunk in gold."""
    gold = [["B-booking_class", "O", "B-to"]]
    pred = [["O", "O", "B-to"]]
    s = slot_scores(gold, pred)
    assert s["recall"] == pytest.approx(0.5)
    assert s["precision"] == 1.0
    assert s["per_slot"]["booking_class"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert "UNK" not in s["per_slot"]


def test_default_mode_is_conlleval_and_strict_differs_on_orphan_i():
    gold = [["B-a", "I-a", "O"]]
    pred = [["I-a", "I-a", "O"]]  # conlleval reads the orphan I-a as opening the chunk
    s = slot_scores(gold, pred)
    assert s["f1"] == 1.0
    assert s["strict_f1"] == 0.0


def test_intent_and_frame_accuracy():
    gold = [["O", "B-a"], ["O", "O"]]
    pred = [["O", "B-a"], ["B-a", "O"]]
    s = slot_scores(gold, pred, ["x", "y"], ["x", "x"])
    assert s["intent_accuracy"] == 0.5
    assert s["frame_accuracy"] == 0.5  # first: intent and slots right; second: both wrong
    s2 = slot_scores(gold, gold, ["x", "never_seen"], ["x", "x"])
    assert s2["intent_accuracy"] == 0.5 and s2["frame_accuracy"] == 0.5


def test_misaligned_inputs_raise():
    with pytest.raises(ValueError):
        slot_scores([["O"]], [["O", "O"]])
    with pytest.raises(ValueError):
        slot_scores([["O"]], [])


def test_report_lists_every_slot():
    text = format_report([["B-a", "O", "B-b"]], [["B-a", "O", "O"]])
    assert " a " in text and " b " in text
    assert "micro avg" in text
