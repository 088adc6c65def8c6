from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2, Entities

from slotfill.data.readers import read_jointbert
from slotfill.metrics import _chunks, format_report, slot_scores
from tests.conftest import SHARED


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


def test_misaligned_or_non_iob2_inputs_raise():
    with pytest.raises(ValueError, match="E-a"):
        slot_scores([["B-a", "E-a"]], [["B-a", "I-a"]])
    with pytest.raises(ValueError):
        slot_scores([["O"]], [["O", "O"]])
    with pytest.raises(ValueError):
        slot_scores([["O"]], [])


def test_report_lists_every_slot():
    text = format_report([["B-a", "O", "B-b"]], [["B-a", "O", "O"]])
    assert " a " in text and " b " in text
    assert "micro avg" in text


def seqeval_scores(gold, pred):
    """The numbers as seqeval's own metric functions give them, one call per number."""
    strict = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    return {
        "precision": precision_score(gold, pred, zero_division=0),
        "recall": recall_score(gold, pred, zero_division=0),
        "f1": f1_score(gold, pred, zero_division=0),
        "strict_precision": precision_score(gold, pred, **strict),
        "strict_recall": recall_score(gold, pred, **strict),
        "strict_f1": f1_score(gold, pred, **strict),
        "per_slot": {
            name: {"precision": row["precision"], "recall": row["recall"], "f1": row["f1-score"], "support": row["support"]}
            for name, row in report.items()
            if not name.endswith(" avg")
        },
    }


TAGS = ["O", "B-a", "I-a", "B-b", "I-b", "B-c.d", "I-c.d", "B-e-f", "I-e-f"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # seqeval's macro average of no types
@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.integers(1, 9).flatmap(
            lambda n: st.tuples(st.lists(st.sampled_from(TAGS), min_size=n, max_size=n),
                                st.lists(st.sampled_from(TAGS), min_size=n, max_size=n))
        ),
        min_size=1,
        max_size=6,
    )
)
def test_scores_equal_seqeval_to_the_last_bit(pairs):
    """One chunking per side and mode gives exactly the floats of seqeval's own functions,
    orphan I- tags, type changes mid-chunk and predictions with no chunk at all included."""
    gold = [list(g) for g, _ in pairs]
    pred = [list(p) for _, p in pairs]
    ours, theirs = slot_scores(gold, pred), seqeval_scores(gold, pred)
    for key in ("precision", "recall", "f1", "strict_precision", "strict_recall", "strict_f1"):
        assert ours[key] == theirs[key], key
    assert list(ours["per_slot"]) == list(theirs["per_slot"])
    assert ours["per_slot"] == theirs["per_slot"]


def test_strict_chunks_are_the_conlleval_chunks_that_open_with_b_on_every_short_sequence():
    """Exhaustively, every sequence of up to 5 tags over two types (3,905 of them)."""
    tags = ["O", "B-a", "I-a", "B-b", "I-b"]
    for length in range(1, 6):
        for sequence in itertools.product(tags, repeat=length):
            _, strict = _chunks([list(sequence)])
            theirs = Entities([list(sequence)], IOB2).entities[0]
            assert strict == {(e.tag, e.start, e.end - 1) for e in theirs}, sequence


@pytest.mark.skipif(not (SHARED / "atis" / "dev" / "seq.out").is_file(), reason="../shared/datasets/atis is absent")
def test_scores_equal_seqeval_on_a_benchmark_dev_set():
    """The same on ATIS dev against a noisy copy of itself (3% of tags replaced)."""
    examples = read_jointbert(SHARED / "atis", ["dev"])["dev"]
    gold = [list(ex.tags) for ex in examples]
    tags = sorted({t for g in gold for t in g})
    rng = random.Random(0)
    pred = [[t if rng.random() > 0.03 else rng.choice(tags) for t in g] for g in gold]
    ours, theirs = slot_scores(gold, pred), seqeval_scores(gold, pred)
    assert 0.8 < ours["f1"] < 0.99
    assert {k: ours[k] for k in theirs} == theirs
