"""Tests for the IOB2 utilities."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slotfill.data.bio import (
    Span,
    check_tag,
    find_ill_formed,
    is_valid_tag,
    repair_bio,
    spans,
    spans_to_tags,
    split_tag,
)
from slotfill.errors import DataError

TYPES = ("a", "b", "loc.city_name")
any_tag = st.one_of(
    st.just("O"), st.builds(lambda p, t: f"{p}-{t}", st.sampled_from("BI"), st.sampled_from(TYPES))
)


@pytest.mark.parametrize("tag", ["O", "B-x", "I-x", "B-fromloc.city_name", "I-B-x", "B-x-y"])
def test_valid_tags(tag: str) -> None:
    assert is_valid_tag(tag)
    check_tag(tag, "f.txt", 3)


@pytest.mark.parametrize(
    "tag",
    ["E-x", "S-x", "X", "B-", "I-", "PAD", "UNK", "<pad>", "o", "b-x", "B_x", "Bx", "", "B- x"],
)
def test_check_tag_rejects(tag: str) -> None:
    assert not is_valid_tag(tag)
    with pytest.raises(DataError) as info:
        check_tag(tag, "data/seq.out", 7)
    message = str(info.value)
    assert message.startswith("data/seq.out:7: invalid tag")
    assert "IOB2 (O, B-type, I-type)" in message


def test_split_tag() -> None:
    assert split_tag("O") == ("O", None)
    assert split_tag("B-x") == ("B", "x")
    assert split_tag("I-a.b") == ("I", "a.b")
    with pytest.raises(ValueError):
        split_tag("S-x")


def test_find_ill_formed_and_repair() -> None:
    tags = ["I-a", "I-a", "O", "I-b", "B-a", "I-b", "I-b", "B-a", "I-a"]
    assert find_ill_formed(tags) == [0, 3, 5]
    fixed, changed = repair_bio(tags)
    assert changed == [0, 3, 5]
    assert fixed == ["B-a", "I-a", "O", "B-b", "B-a", "B-b", "I-b", "B-a", "I-a"]
    assert tags[0] == "I-a"  # input untouched
    assert find_ill_formed(fixed) == []


def test_repair_well_formed_is_identity() -> None:
    tags = ["B-a", "I-a", "O", "B-b"]
    assert repair_bio(tags) == (tags, [])
    assert repair_bio([]) == ([], [])


def test_spans_basic_and_edges() -> None:
    assert spans([]) == []
    assert spans(["O", "O"]) == []
    # single tokens, span at the end
    assert spans(["B-a", "O", "B-b"]) == [Span("a", 0, 1), Span("b", 2, 3)]
    # I- at the start opens a chunk
    assert spans(["I-a", "I-a", "O"]) == [Span("a", 0, 2)]
    # I-x after B-y starts a new chunk
    assert spans(["B-b", "I-a", "I-a"]) == [Span("b", 0, 1), Span("a", 1, 3)]
    # I-x after O starts a new chunk
    assert spans(["O", "I-a"]) == [Span("a", 1, 2)]
    # adjacent B-x B-x are two chunks
    assert spans(["B-a", "B-a", "I-a"]) == [Span("a", 0, 1), Span("a", 1, 3)]
    # multi-token span running to the end
    assert spans(["O", "B-a", "I-a", "I-a"]) == [Span("a", 1, 4)]
    with pytest.raises(ValueError):
        spans(["B-a", "PAD"])


def test_spans_to_tags() -> None:
    assert spans_to_tags([Span("b", 2, 3), ("a", 0, 2)], 4) == ["B-a", "I-a", "B-b", "O"]
    assert spans_to_tags([], 2) == ["O", "O"]
    bad_layouts = [
        [("a", 1, 1)],  # empty
        [("a", 0, 5)],  # past the end
        [("a", -1, 1)],  # before the start
        [("a", 0, 2), ("b", 1, 3)],  # overlapping
        [("", 0, 1)],  # no type
    ]
    for bad in bad_layouts:
        with pytest.raises(ValueError):
            spans_to_tags(bad, 4)


@given(st.lists(any_tag, max_size=20))
def test_spans_inverse_on_repaired_tags(tags: list[str]) -> None:
    fixed, _ = repair_bio(tags)
    # spans() reads a sequence exactly as its repaired form ...
    assert spans(fixed) == spans(tags)
    # ... and spans_to_tags inverts spans on well-formed tags
    assert spans_to_tags(spans(tags), len(tags)) == fixed
    if not find_ill_formed(tags):
        assert spans_to_tags(spans(tags), len(tags)) == tags


@st.composite
def span_layouts(draw: st.DrawFn) -> tuple[list[Span], int]:
    """Non-overlapping spans in order, possibly adjacent (same type included), and a length."""
    segments = draw(
        st.lists(st.tuples(st.none() | st.sampled_from(TYPES), st.integers(1, 4)), max_size=10)
    )
    chunks: list[Span] = []
    position = 0
    for tag_type, size in segments:
        if tag_type is not None:
            chunks.append(Span(tag_type, position, position + size))
        position += size
    return chunks, position


@given(span_layouts())
def test_spans_of_spans_to_tags(layout: tuple[list[Span], int]) -> None:
    chunks, length = layout
    tags = spans_to_tags(chunks, length)
    assert len(tags) == length
    assert find_ill_formed(tags) == []
    assert spans(tags) == chunks
