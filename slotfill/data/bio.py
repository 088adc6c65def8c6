"""IOB2 (BIO) tag utilities: validation, repair and chunking.

Tags are ``O``, ``B-<type>`` or ``I-<type>`` with a non-empty type. Chunks are read the way
conlleval reads them: a chunk starts at ``B-x`` or at an ``I-x`` that does not continue a chunk
of type ``x``, and runs over the following ``I-x`` tags.

The pure functions here raise ``ValueError`` on a tag that is not IOB2; readers call
:func:`check_tag` first, which raises a :class:`~slotfill.errors.DataError` that names the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from slotfill.errors import DataError

OUTSIDE = "O"
IOB2_HINT = "tags must be IOB2 (O, B-type, I-type)"


class Span(NamedTuple):
    """A chunk: its type and its token range ``[start, end)``."""

    type: str
    start: int
    end: int


def split_tag(tag: str) -> tuple[str, str | None]:
    """Splits an IOB2 tag into its prefix and type.

    Args:
        tag: ``O``, ``B-type`` or ``I-type``.

    Returns:
        ``("O", None)`` for ``O``, else ``("B", type)`` or ``("I", type)``.

    Raises:
        ValueError: the tag is not IOB2.
    """
    if tag == OUTSIDE:
        return OUTSIDE, None
    if len(tag) > 2 and tag[0] in "BI" and tag[1] == "-" and not any(c.isspace() for c in tag):
        return tag[0], tag[2:]
    raise ValueError(f"invalid tag {tag!r}: {IOB2_HINT}")


def is_valid_tag(tag: str) -> bool:
    """Returns whether ``tag`` is an IOB2 tag (``O``, ``B-type`` or ``I-type``)."""
    try:
        split_tag(tag)
    except ValueError:
        return False
    return True


def check_tag(tag: str, path: str | Path, line: int | None) -> None:
    """Raises a ``DataError`` at ``path:line`` unless ``tag`` is IOB2.

    Args:
        tag: the tag as read.
        path: the file it was read from.
        line: its 1-based line number (``None`` if unknown).

    Raises:
        DataError: the tag is e.g. ``E-x``, ``S-x``, ``X``, ``B-``, ``PAD`` or ``UNK``.
    """
    if not is_valid_tag(tag):
        raise DataError(path, line, f"invalid tag {tag!r}", hint=IOB2_HINT)


def _continues(prev: str | None, tag_type: str) -> bool:
    """Whether an ``I-<tag_type>`` after tag ``prev`` (``None`` at the start) continues a chunk."""
    if prev is None:
        return False
    prefix, prev_type = split_tag(prev)
    return prefix != OUTSIDE and prev_type == tag_type


def find_ill_formed(tags: Sequence[str]) -> list[int]:
    """Finds the ``I-x`` tags that do not continue a chunk of type ``x``.

    Args:
        tags: IOB2 tags.

    Returns:
        Indices of every ``I-x`` at the start, after ``O``, or after a tag of another type.

    Raises:
        ValueError: a tag is not IOB2.
    """
    bad: list[int] = []
    prev: str | None = None
    for i, tag in enumerate(tags):
        prefix, tag_type = split_tag(tag)
        if prefix == "I" and not _continues(prev, tag_type or ""):
            bad.append(i)
        prev = tag
    return bad


def repair_bio(tags: Sequence[str]) -> tuple[list[str], list[int]]:
    """Turns every ill-formed ``I-x`` into ``B-x`` (the chunk conlleval reads there).

    Args:
        tags: IOB2 tags.

    Returns:
        The repaired tags (a new list) and the indices that were changed.

    Raises:
        ValueError: a tag is not IOB2.
    """
    bad = find_ill_formed(tags)
    fixed = list(tags)
    for i in bad:
        fixed[i] = "B-" + fixed[i][2:]
    return fixed, bad


def spans(tags: Sequence[str]) -> list[Span]:
    """Reads the chunks of a tag sequence as conlleval does.

    An ``I-x`` that does not continue a chunk of type ``x`` opens a new chunk.

    Args:
        tags: IOB2 tags.

    Returns:
        The chunks in order, ``end`` exclusive.

    Raises:
        ValueError: a tag is not IOB2.
    """
    chunks: list[Span] = []
    open_type: str | None = None
    start = 0
    for i, tag in enumerate(tags):
        prefix, tag_type = split_tag(tag)
        if open_type is not None and (prefix != "I" or tag_type != open_type):
            chunks.append(Span(open_type, start, i))
            open_type = None
        if prefix != OUTSIDE and open_type is None:
            open_type, start = tag_type, i
    if open_type is not None:
        chunks.append(Span(open_type, start, len(tags)))
    return chunks


def spans_to_tags(chunks: Iterable[Span | tuple[str, int, int]], length: int) -> list[str]:
    """Writes chunks back as IOB2 tags; the inverse of :func:`spans` on well-formed tags.

    Args:
        chunks: ``(type, start, end)`` triples, non-overlapping, any order.
        length: number of tokens.

    Returns:
        ``length`` tags: ``B-type`` on each chunk's first token, ``I-type`` on the rest, ``O``
        elsewhere.

    Raises:
        ValueError: a chunk is empty, out of range, overlaps another, or has an empty type
            or one containing whitespace.
    """
    tags = [OUTSIDE] * length
    for chunk in chunks:
        span = Span(*chunk)
        if not span.type or any(c.isspace() for c in span.type):
            raise ValueError(f"invalid chunk type {span.type!r} in {span}")
        if not 0 <= span.start < span.end <= length:
            raise ValueError(f"chunk {span} is empty or outside 0..{length}")
        if any(t != OUTSIDE for t in tags[span.start : span.end]):
            raise ValueError(f"chunk {span} overlaps another chunk")
        tags[span.start] = "B-" + span.type
        for i in range(span.start + 1, span.end):
            tags[i] = "I-" + span.type
    return tags
