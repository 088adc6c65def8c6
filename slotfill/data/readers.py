"""Readers and writers for the slot-filling file formats.

Formats:
    * JointBERT split folders (``seq.in``, ``seq.out``, optional ``label``), the layout of the
      ATIS and SNIPS benchmarks: :func:`read_jointbert_split`, :func:`read_jointbert`.
    * CoNLL-style columns, one token per line and a blank line between utterances (also the
      MIT corpora's ``TAG<TAB>word`` order): :func:`read_conll`.
    * ATIS ``.iob`` lines, ``BOS w1 .. wn EOS<TAB>O t1 .. tn intent``: :func:`read_iob`.

Every reader returns ``list[Example]`` whose ``source`` is ``"<path>:<line>"`` and raises a
one-line :class:`~slotfill.errors.DataError` (file, line, problem, what to do) on bad input;
nothing is dropped silently. Files are UTF-8 (a leading BOM is fine), CRLF line ends and
spaces or tabs around a line are fine, and tokens are split on runs of whitespace.

Every tag must be IOB2. An ``I-x`` that does not continue a chunk of type ``x`` is ill-formed:
with ``bio_repair=True`` (the default) it is read as ``B-x``, which is how conlleval and seqeval
score it anyway, and one warning per file says how many tags were repaired; with
``bio_repair=False`` the first one is an error. To get the repairs programmatically pass a
:class:`ReadReport` as ``report=``; the readers append to it.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from slotfill.data.bio import check_tag, find_ill_formed, is_valid_tag, repair_bio
from slotfill.data.example import Example
from slotfill.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

JOINTBERT_FILES = ("seq.in", "seq.out", "label")
DOCSTART = "-DOCSTART-"

_JOINTBERT_LAYOUT = (
    "expected a JointBERT split folder: seq.in (one utterance per line), seq.out (one tag "
    "per token, same lines) and optionally label (one intent per line)"
)
_REPAIR_HINT = (
    "fix the tag (an I-x must follow B-x or I-x) or set data.bio_repair=true to read it as B-x"
)


class Repair(NamedTuple):
    """One ill-formed ``I-x`` tag that was read as ``B-x``.

    Attributes:
        path: the file holding the tag.
        line: its 1-based line.
        position: 0-based index of the token in its utterance.
        tag: the tag as written (``I-x``).
    """

    path: str
    line: int
    position: int
    tag: str


@dataclass
class ReadReport:
    """What the readers noticed; pass one as ``report=`` to collect it across calls.

    Attributes:
        files: every tag-bearing file read, in order.
        repairs: every ill-formed BIO tag that was repaired.
    """

    files: list[str] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)

    @property
    def repair_count(self) -> int:
        """Total number of repaired tags."""
        return len(self.repairs)

    def repairs_in(self, path: str | Path) -> int:
        """Number of repaired tags in one file (``path`` as it was passed to the reader)."""
        return sum(1 for r in self.repairs if r.path == str(path))


# --------------------------------------------------------------------------- file access


def _decode(path: Path, data: bytes) -> str:
    """Decodes UTF-8 (optional BOM), naming the line and column of the first bad byte."""
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as err:
        pos = start + err.start
        line = data.count(b"\n", 0, pos) + 1
        column = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
        raise DataError(
            path,
            line,
            f"not valid UTF-8 (byte 0x{data[pos]:02x} at column {column})",
            hint="re-save the file as UTF-8",
        ) from None


def _read_lines(path: Path) -> list[str]:
    """Reads a text file as lines without their ``\\n`` / ``\\r\\n`` ends.

    A single newline at the end of the file does not start another line.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, None, "file not found") from None
    except OSError as err:
        raise DataError(path, None, f"cannot read file ({err.strerror or err})") from None
    lines = _decode(path, data).split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


# --------------------------------------------------------------------------- tag checking


class _TagChecker:
    """Validates and, if allowed, repairs the tags of one file; logs one warning at the end."""

    def __init__(self, path: Path, bio_repair: bool, report: ReadReport | None):
        self.path = path
        self.bio_repair = bio_repair
        self.report = report
        self.count = 0
        self.first_line: int | None = None
        if report is not None:
            report.files.append(str(path))

    def __call__(self, tags: list[str], lines: Sequence[int]) -> list[str]:
        """Checks ``tags`` (tag ``i`` read from line ``lines[i]``); returns them repaired."""
        for tag, line in zip(tags, lines):
            check_tag(tag, self.path, line)
        bad = find_ill_formed(tags)
        if not bad:
            return tags
        if not self.bio_repair:
            i = bad[0]
            after = f"follows {tags[i - 1]!r}" if i > 0 else "starts the utterance"
            raise DataError(
                self.path,
                lines[i],
                f"ill-formed BIO: tag {tags[i]!r} (token {i + 1}) {after}",
                hint=_REPAIR_HINT,
            )
        fixed, _ = repair_bio(tags)
        if self.first_line is None:
            self.first_line = lines[bad[0]]
        self.count += len(bad)
        if self.report is not None:
            self.report.repairs.extend(Repair(str(self.path), lines[i], i, tags[i]) for i in bad)
        return fixed

    def finish(self) -> None:
        """Logs the file's repair warning, if anything was repaired."""
        if self.count:
            logger.warning(
                "%s: repaired %d ill-formed BIO tag(s) (I-x after O or another type read as "
                "B-x); first at line %d",
                self.path,
                self.count,
                self.first_line,
            )


def _check_intent(intent: str, path: Path, line: int) -> str:
    """Returns a stripped intent label, or raises if it is empty or holds whitespace."""
    intent = intent.strip()
    if not intent:
        raise DataError(
            path, line, "empty intent label", hint="give every utterance an intent on its line"
        )
    if any(c.isspace() for c in intent):
        raise DataError(
            path,
            line,
            f"intent label {intent!r} contains whitespace",
            hint="write one intent per line; join multiple intents with '#'",
        )
    return intent


# --------------------------------------------------------------------------- JointBERT


def _first_blank(lines: Sequence[str]) -> int | None:
    """1-based number of the first line holding only whitespace, if any."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            return n
    return None


def _check_line_counts(a: Path, a_lines: list[str], b: Path, b_lines: list[str]) -> None:
    """Raises at the first line of the longer file that has no partner in the shorter one."""
    if len(a_lines) == len(b_lines):
        return
    (short, short_lines), (long, long_lines) = sorted(
        [(a, a_lines), (b, b_lines)], key=lambda item: len(item[1])
    )
    missing = len(short_lines) + 1
    problem = (
        f"ends after {len(short_lines)} line(s) but {long.name} has {len(long_lines)}; "
        f"{long.name} line {missing} has no partner"
    )
    blank = _first_blank(long_lines)
    if blank is not None:
        problem += f" ({long.name} line {blank} is blank)"
    raise DataError(
        short,
        missing,
        problem,
        hint="the files of a split must be line-aligned: line N of each describes utterance N",
    )


def read_jointbert_split(
    split_dir: str | Path, *, bio_repair: bool = True, report: ReadReport | None = None
) -> list[Example]:
    """Reads one JointBERT split folder.

    Args:
        split_dir: folder holding ``seq.in`` and ``seq.out`` and optionally ``label``.
        bio_repair: read ill-formed ``I-x`` as ``B-x`` (with a warning) instead of failing.
        report: collects the files read and the repairs made.

    Returns:
        One example per line; ``intent`` is ``None`` when there is no ``label`` file and keeps
        ``#``-joined multi-intents as written. ``source`` points into ``seq.in``.

    Raises:
        DataError: a missing file, misaligned files, an empty utterance or intent, a token/tag
            count mismatch, a non-IOB2 tag, or (``bio_repair=False``) ill-formed BIO.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DataError(split_dir, None, "missing split folder", hint=_JOINTBERT_LAYOUT)
    seq_in, seq_out, label = (split_dir / name for name in JOINTBERT_FILES)
    for required in (seq_in, seq_out):
        if not required.is_file():
            raise DataError(required, None, "missing split file", hint=_JOINTBERT_LAYOUT)

    in_lines = _read_lines(seq_in)
    out_lines = _read_lines(seq_out)
    _check_line_counts(seq_in, in_lines, seq_out, out_lines)
    label_lines: list[str] | None = None
    if label.exists():
        label_lines = _read_lines(label)
        _check_line_counts(seq_in, in_lines, label, label_lines)

    checker = _TagChecker(seq_out, bio_repair, report)
    examples: list[Example] = []
    for n, (in_line, out_line) in enumerate(zip(in_lines, out_lines), 1):
        tokens = in_line.split()
        if not tokens:
            raise DataError(
                seq_in,
                n,
                "empty utterance (blank line)",
                hint="remove the line from seq.in, seq.out and label together",
            )
        tags = out_line.split()
        if len(tags) != len(tokens):
            raise DataError(
                seq_out,
                n,
                f"{len(tags)} tag(s) for the {len(tokens)} token(s) of seq.in line {n}",
                hint="give every token exactly one tag, separated by spaces",
            )
        tags = checker(tags, [n] * len(tags))
        intent = None if label_lines is None else _check_intent(label_lines[n - 1], label, n)
        examples.append(Example(tuple(tokens), tuple(tags), intent, f"{seq_in}:{n}"))
    checker.finish()
    return examples


def read_jointbert(
    root: str | Path,
    splits: Sequence[str] = ("train", "dev", "test"),
    *,
    bio_repair: bool = True,
    report: ReadReport | None = None,
) -> dict[str, list[Example]]:
    """Reads a JointBERT dataset folder (``<root>/<split>/seq.in`` ...).

    Args:
        root: the dataset folder, e.g. ``data/atis``.
        splits: the split folders to read.
        bio_repair: see :func:`read_jointbert_split`.
        report: collects the files read and the repairs made.

    Returns:
        ``{split: examples}`` in the order of ``splits``.

    Raises:
        DataError: a missing root or split folder, or any error of :func:`read_jointbert_split`.
    """
    root = Path(root)
    layout = f"expected {root}/<split>/seq.in, seq.out and optionally label for splits " + (
        ", ".join(splits)
    )
    if not root.is_dir():
        problem = "dataset path is not a folder" if root.exists() else "dataset folder not found"
        raise DataError(root, None, problem, hint=layout)
    result: dict[str, list[Example]] = {}
    for split in splits:
        split_dir = root / split
        if not split_dir.is_dir():
            raise DataError(split_dir, None, "missing split folder", hint=layout)
        result[split] = read_jointbert_split(split_dir, bio_repair=bio_repair, report=report)
    return result


# --------------------------------------------------------------------------- CoNLL


def _resolve(index: int, n: int) -> int | None:
    """Python-style column index into ``n`` columns, or ``None`` if out of range."""
    j = index if index >= 0 else n + index
    return j if 0 <= j < n else None


def _columns_needed(token_column: int, tag_column: int) -> int:
    """Fewest columns for which both indices exist and name different columns."""
    n = 1
    while True:
        a, b = _resolve(token_column, n), _resolve(tag_column, n)
        if a is not None and b is not None and a != b:
            return n
        n += 1


def read_conll(
    path: str | Path,
    *,
    token_column: int = 0,
    tag_column: int = -1,
    delimiter: str | None = None,
    bio_repair: bool = True,
    report: ReadReport | None = None,
) -> list[Example]:
    """Reads a column file: a token and its tag per line, blank lines between utterances.

    ``-DOCSTART-`` lines are skipped. Extra columns are ignored.

    Args:
        path: the file.
        token_column: index of the token column (negative counts from the end).
        tag_column: index of the tag column; MIT-corpus files (``TAG<TAB>word``) use
            ``token_column=1, tag_column=0``.
        delimiter: ``None`` splits on runs of whitespace; any other string splits on exactly
            that (``"\\t"`` lets tokens contain spaces), and spaces around each field are
            stripped.
        bio_repair: read ill-formed ``I-x`` as ``B-x`` (with a warning) instead of failing.
        report: collects the file read and the repairs made.

    Returns:
        One example per utterance, ``intent=None``, ``source`` at the utterance's first line.

    Raises:
        ConfigError: the two columns are the same, or ``delimiter`` is empty.
        DataError: a line with too few columns or an empty field, a non-IOB2 tag, or
            (``bio_repair=False``) ill-formed BIO.
    """
    path = Path(path)
    if token_column == tag_column:
        raise ConfigError(f"token_column and tag_column must differ (both are {tag_column})")
    if delimiter == "":
        raise ConfigError("the CoNLL delimiter must be None (whitespace) or a non-empty string")
    needed = _columns_needed(token_column, tag_column)
    lines = _read_lines(path)
    checker = _TagChecker(path, bio_repair, report)
    examples: list[Example] = []
    tokens: list[str] = []
    tags: list[str] = []
    tag_lines: list[int] = []

    def flush() -> None:
        if tokens:
            fixed = checker(tags, tag_lines)
            source = f"{path}:{tag_lines[0]}"
            examples.append(Example(tuple(tokens), tuple(fixed), None, source))
            tokens.clear()
            tags.clear()
            tag_lines.clear()

    for n, raw in enumerate(lines, 1):
        line = raw.strip(" \t\r")
        if not line:
            flush()
            continue
        if delimiter is None:
            fields = line.split()
        else:
            fields = [f.strip(" ") for f in line.split(delimiter)]
        if fields[0] == DOCSTART:
            flush()
            continue
        if len(fields) < needed:
            raise DataError(
                path,
                n,
                f"{len(fields)} column(s) found, {needed} needed "
                f"(token column {token_column}, tag column {tag_column})",
                hint="write a token and its tag on each line with a blank line between "
                "utterances, or set token_column/tag_column/delimiter to match the file",
            )
        token, tag = fields[token_column], fields[tag_column]
        if not token or not tag:
            which = "token" if not token else "tag"
            raise DataError(
                path,
                n,
                f"empty {which} column",
                hint="remove the stray delimiter or fill in the missing field",
            )
        tokens.append(token)
        tags.append(tag)
        tag_lines.append(n)
    flush()
    checker.finish()
    return examples


# --------------------------------------------------------------------------- ATIS .iob


def read_iob(
    path: str | Path, *, bio_repair: bool = True, report: ReadReport | None = None
) -> list[Example]:
    """Reads an ATIS ``.iob`` file: ``BOS w1 .. wn EOS<TAB>O t1 .. tn intent`` per line.

    BOS, EOS and the BOS tag are stripped; the last field of the tag part (in the EOS
    position) is the intent, kept as written (``a#b`` multi-intents included).

    Args:
        path: the file.
        bio_repair: read ill-formed ``I-x`` as ``B-x`` (with a warning) instead of failing.
        report: collects the file read and the repairs made.

    Returns:
        One example per line.

    Raises:
        DataError: a blank line, a missing tab, BOS or EOS, an empty utterance, a tag count
            that does not match, a BOS tag other than ``O``, a non-IOB2 tag, or
            (``bio_repair=False``) ill-formed BIO.
    """
    path = Path(path)
    layout = "write each line as 'BOS w1 .. wn EOS<TAB>O t1 .. tn intent'"
    lines = _read_lines(path)
    checker = _TagChecker(path, bio_repair, report)
    examples: list[Example] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            raise DataError(path, n, "empty line", hint="remove it; " + layout)
        words_part, tab, tags_part = line.partition("\t")
        if not tab:
            raise DataError(path, n, "no tab between the words and the tags", hint=layout)
        words = words_part.split()
        fields = tags_part.split()
        if len(words) < 2 or words[0] != "BOS" or words[-1] != "EOS":
            raise DataError(
                path, n, "the words must start with BOS and end with EOS", hint=layout
            )
        tokens = words[1:-1]
        if not tokens:
            raise DataError(path, n, "empty utterance (nothing between BOS and EOS)", hint=layout)
        if len(fields) != len(words):
            raise DataError(
                path,
                n,
                f"{len(tokens)} word(s) between BOS and EOS but {len(fields)} field(s) after "
                f"the tab (expected {len(words)}: the BOS tag, one tag per word, the intent)",
                hint=layout,
            )
        if fields[0] != "O":
            raise DataError(path, n, f"the tag of BOS is {fields[0]!r}, not 'O'", hint=layout)
        tags = checker(fields[1:-1], [n] * len(tokens))
        intent = _check_intent(fields[-1], path, n)
        examples.append(Example(tuple(tokens), tuple(tags), intent, f"{path}:{n}"))
    checker.finish()
    return examples


# --------------------------------------------------------------------------- writers


def _check_writable(example: Example, index: int, *, conll: bool) -> None:
    """Raises ``ValueError`` if ``example`` would not read back as it is."""
    where = example.source or f"example {index}"
    if not example.tokens:
        raise ValueError(f"{where}: cannot write an empty utterance")
    if example.tags is None:
        raise ValueError(f"{where}: cannot write an example without tags")
    for token in example.tokens:
        if not token or any(c.isspace() for c in token):
            raise ValueError(f"{where}: token {token!r} is empty or contains whitespace")
        if conll and token == DOCSTART:
            raise ValueError(f"{where}: token {DOCSTART!r} would be read as a document break")
    for tag in example.tags:
        if not is_valid_tag(tag):
            raise ValueError(f"{where}: tag {tag!r} is not IOB2 (O, B-type, I-type)")
    if example.intent is not None and (
        not example.intent or any(c.isspace() for c in example.intent)
    ):
        raise ValueError(f"{where}: intent {example.intent!r} is empty or contains whitespace")


def _write_text(path: Path, lines: Iterable[str]) -> None:
    """Writes ``lines`` as UTF-8 with ``\\n`` ends."""
    text = "".join(line + "\n" for line in lines)
    if text.startswith("\ufeff"):
        raise ValueError(f"{path}: text starting with U+FEFF would be read as a byte-order mark")
    path.write_text(text, encoding="utf-8", newline="\n")


def write_jointbert_split(examples: Iterable[Example], split_dir: str | Path) -> None:
    """Writes examples as a JointBERT split folder that :func:`read_jointbert_split` reads back.

    ``label`` is written when the examples have intents; when none has one, a ``label`` file
    already in ``split_dir`` is removed so that it cannot be paired with the new lines.

    Args:
        examples: tagged examples; either all or none have an intent.
        split_dir: the folder to write (created if needed; files are overwritten).

    Raises:
        ValueError: an example cannot round-trip (no tags, empty or whitespace-bearing token,
            non-IOB2 tag) or only some examples have an intent.
    """
    examples = list(examples)
    for i, example in enumerate(examples):
        _check_writable(example, i, conll=False)
    with_intent = [e.intent is not None for e in examples]
    if any(with_intent) and not all(with_intent):
        raise ValueError("either all examples or none must have an intent to write a label file")
    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    _write_text(split_dir / "seq.in", (" ".join(e.tokens) for e in examples))
    _write_text(split_dir / "seq.out", (" ".join(e.tags or ()) for e in examples))
    label = split_dir / "label"
    if any(with_intent):
        _write_text(label, (e.intent or "" for e in examples))
    elif label.exists():
        label.unlink()


def write_conll(examples: Iterable[Example], path: str | Path) -> None:
    """Writes examples as ``token<TAB>tag`` lines with a blank line after each utterance.

    The column format has no place for intents, so they are not written. The file reads back
    with :func:`read_conll` (default arguments or ``delimiter="\\t"``).

    Args:
        examples: tagged examples.
        path: the file to write (parent folders are created).

    Raises:
        ValueError: an example cannot round-trip (no tags, empty or whitespace-bearing token,
            a ``-DOCSTART-`` token, non-IOB2 tag).
    """
    examples = list(examples)
    for i, example in enumerate(examples):
        _check_writable(example, i, conll=True)
    lines: list[str] = []
    for example in examples:
        lines.extend(f"{tok}\t{tag}" for tok, tag in zip(example.tokens, example.tags or ()))
        lines.append("")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_text(path, lines)
