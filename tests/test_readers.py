"""Tests for the data readers and writers."""

from __future__ import annotations

import logging
import re
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slotfill.data.bio import repair_bio
from slotfill.data.example import Example
from slotfill.data.readers import (
    ReadReport,
    Repair,
    read_conll,
    read_iob,
    read_jointbert,
    read_jointbert_split,
    write_conll,
    write_jointbert_split,
)
from slotfill.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
READERS_LOGGER = "slotfill.data.readers"


def make_split(
    folder: Path, seq_in: str | bytes, seq_out: str | bytes, label: str | bytes | None = None
) -> Path:
    """Writes a JointBERT split folder from raw file contents."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (("seq.in", seq_in), ("seq.out", seq_out), ("label", label)):
        if content is not None:
            data = content if isinstance(content, bytes) else content.encode("utf-8")
            (folder / name).write_bytes(data)
    return folder


def write(path: Path, content: str | bytes) -> Path:
    """Writes raw bytes (str is UTF-8 encoded) and returns the path."""
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def raises_at(
    path: Path, line: int | None, match: str
) -> AbstractContextManager[pytest.ExceptionInfo[DataError]]:
    """``pytest.raises`` for a DataError whose message starts with ``path:line:``."""
    where = str(path) if line is None else f"{path}:{line}"
    return pytest.raises(DataError, match=rf"^{re.escape(where)}: .*{match}")


# --------------------------------------------------------------------------- JointBERT


def test_jointbert_split_reads(tmp_path: Path) -> None:
    d = make_split(
        tmp_path / "train",
        "show flights to boston\nfares from denver please\n",
        "O O O B-toloc\nO O B-fromloc O\n",
        "atis_flight\natis_airfare#atis_flight\n",
    )
    examples = read_jointbert_split(d)
    assert examples == [
        Example(
            ("show", "flights", "to", "boston"),
            ("O", "O", "O", "B-toloc"),
            "atis_flight",
            f"{d / 'seq.in'}:1",
        ),
        Example(
            ("fares", "from", "denver", "please"),
            ("O", "O", "B-fromloc", "O"),
            "atis_airfare#atis_flight",
            f"{d / 'seq.in'}:2",
        ),
    ]


def test_jointbert_without_label_and_without_final_newline(tmp_path: Path) -> None:
    d = make_split(tmp_path / "s", "a b\nc", "O B-x\nI-y")
    examples = read_jointbert_split(d)
    assert [e.intent for e in examples] == [None, None]
    assert examples[1].tags == ("B-y",)


def test_jointbert_crlf_spaces_tabs_bom(tmp_path: Path) -> None:
    d = make_split(
        tmp_path / "s",
        b"\xef\xbb\xbf  hello \t world  \r\n\tcaf\xc3\xa9 ok \r\n",
        b"\xef\xbb\xbfO   B-greet\t\r\nB-x O \r\n",
        b"\xef\xbb\xbf intent_a \r\nb#c\r\n",
    )
    examples = read_jointbert_split(d)
    assert [e.tokens for e in examples] == [("hello", "world"), ("café", "ok")]
    assert [e.tags for e in examples] == [("O", "B-greet"), ("B-x", "O")]
    assert [e.intent for e in examples] == ["intent_a", "b#c"]


def test_jointbert_missing_files(tmp_path: Path) -> None:
    d = make_split(tmp_path / "s", "a\n", "O\n")
    (d / "seq.out").unlink()
    with pytest.raises(DataError, match="missing split file") as info:
        read_jointbert_split(d)
    assert str(d / "seq.out") in str(info.value)
    assert "seq.in" in str(info.value) and "label" in str(info.value)  # layout hint
    (d / "seq.in").unlink()
    with raises_at(d / "seq.in", None, "missing split file"):
        read_jointbert_split(d)
    with pytest.raises(DataError, match="missing split folder"):
        read_jointbert_split(tmp_path / "nope")


def test_jointbert_line_count_mismatch(tmp_path: Path) -> None:
    d = make_split(tmp_path / "s", "a\nb\nc\n", "O\nO\n")
    with raises_at(d / "seq.out", 3, "ends after 2 line.*seq.in has 3.*line 3 has no partner"):
        read_jointbert_split(d)
    d = make_split(tmp_path / "t", "a\nb\n", "O\nO\nO\nO\n")
    with raises_at(d / "seq.in", 3, "ends after 2 line.*seq.out has 4"):
        read_jointbert_split(d)
    d = make_split(tmp_path / "u", "a\nb\n", "O\nO\n", "x\n")
    with raises_at(d / "label", 2, "ends after 1 line.*seq.in has 2"):
        read_jointbert_split(d)


def test_jointbert_line_count_mismatch_mentions_blank_line(tmp_path: Path) -> None:
    d = make_split(tmp_path / "s", "a\n\nb\n", "O\nO\n")
    with raises_at(d / "seq.out", 3, r"seq.in line 2 is blank"):
        read_jointbert_split(d)


def test_jointbert_blank_utterance(tmp_path: Path) -> None:
    d = make_split(tmp_path / "s", "a\n  \nb\n", "O\n\nO\n")
    with raises_at(d / "seq.in", 2, "empty utterance"):
        read_jointbert_split(d)
    # two newlines at the end: the second ends an (empty) line 2
    d = make_split(tmp_path / "t", "a\n\n", "O\n\n")
    with raises_at(d / "seq.in", 2, "empty utterance"):
        read_jointbert_split(d)


def test_jointbert_token_tag_count_mismatch(tmp_path: Path) -> None:
    d = make_split(tmp_path / "s", "a b\nc d e\n", "O O\nO O\n")
    with raises_at(d / "seq.out", 2, "2 tag.* 3 token"):
        read_jointbert_split(d)


def test_jointbert_empty_label(tmp_path: Path) -> None:
    d = make_split(tmp_path / "s", "a\nb\n", "O\nO\n", "x\n \n")
    with raises_at(d / "label", 2, "empty intent label"):
        read_jointbert_split(d)
    d = make_split(tmp_path / "t", "a\n", "O\n", "x y\n")
    with raises_at(d / "label", 1, "contains whitespace"):
        read_jointbert_split(d)


@pytest.mark.parametrize("bad", ["E-x", "S-x", "X", "B-", "PAD", "UNK"])
def test_jointbert_invalid_tag(tmp_path: Path, bad: str) -> None:
    d = make_split(tmp_path / "s", "a\nb c\n", f"O\nO {bad}\n")
    with raises_at(d / "seq.out", 2, rf"invalid tag '{re.escape(bad)}' -- .*IOB2"):
        read_jointbert_split(d)


def test_jointbert_bad_utf8(tmp_path: Path) -> None:
    d = make_split(tmp_path / "s", b"ok\ncaf\xe9 x\n", "O\nO O\n")
    with pytest.raises(DataError) as info:
        read_jointbert_split(d)
    assert str(info.value) == (
        f"{d / 'seq.in'}:2: not valid UTF-8 (byte 0xe9 at column 4) -- re-save the file as UTF-8"
    )


def test_bad_utf8_position_counts_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "f.conll", b"\xef\xbb\xbf\xff O\n")
    with raises_at(path, 1, r"byte 0xff at column 4"):
        read_conll(path)


def test_jointbert_repair_warning_and_report(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = make_split(
        tmp_path / "s",
        "a b c\nd e\nf g h\n",
        "O B-x I-x\nO I-y\nI-x B-y I-x\n",
    )
    report = ReadReport()
    with caplog.at_level(logging.WARNING, logger=READERS_LOGGER):
        examples = read_jointbert_split(d, report=report)
    assert [e.tags for e in examples] == [
        ("O", "B-x", "I-x"),
        ("O", "B-y"),
        ("B-x", "B-y", "B-x"),
    ]
    warnings = [r for r in caplog.records if r.name == READERS_LOGGER]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert warnings[0].getMessage() == (
        f"{d / 'seq.out'}: repaired 3 ill-formed BIO tag(s) (I-x after O or another type "
        "read as B-x); first at line 2"
    )
    assert report.repair_count == 3
    assert report.repairs_in(d / "seq.out") == 3
    assert report.repairs[0] == Repair(str(d / "seq.out"), 2, 1, "I-y")
    assert report.files == [str(d / "seq.out")]


def test_jointbert_no_warning_when_clean(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = make_split(tmp_path / "s", "a b\n", "B-x I-x\n")
    with caplog.at_level(logging.WARNING, logger=READERS_LOGGER):
        read_jointbert_split(d)
    assert not caplog.records


def test_jointbert_bio_repair_false(tmp_path: Path) -> None:
    d = make_split(tmp_path / "s", "a b\nc d\n", "B-x I-x\nB-x I-y\n")
    match = r"ill-formed BIO: tag 'I-y' \(token 2\) follows 'B-x'"
    with raises_at(d / "seq.out", 2, match) as info:
        read_jointbert_split(d, bio_repair=False)
    assert "data.bio_repair=true" in str(info.value)
    d = make_split(tmp_path / "t", "a\n", "I-x\n")
    with raises_at(d / "seq.out", 1, "starts the utterance"):
        read_jointbert_split(d, bio_repair=False)


def test_read_jointbert_root(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for split in ("train", "dev", "test"):
        make_split(root / split, f"{split} word\n", "O B-x\n", "i\n")
    data = read_jointbert(root)
    assert list(data) == ["train", "dev", "test"]
    assert data["dev"][0].tokens == ("dev", "word")
    assert list(read_jointbert(root, splits=("test",))) == ["test"]


def test_read_jointbert_missing_root_or_split(tmp_path: Path) -> None:
    with raises_at(tmp_path / "nope", None, "dataset folder not found"):
        read_jointbert(tmp_path / "nope")
    root = tmp_path / "ds"
    make_split(root / "train", "a\n", "O\n")
    with raises_at(root / "dev", None, "missing split folder"):
        read_jointbert(root)
    not_a_dir = write(tmp_path / "file", "x")
    with pytest.raises(DataError, match="not a folder"):
        read_jointbert(not_a_dir)


def test_read_jointbert_report_spans_splits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "ds"
    make_split(root / "train", "a\n", "I-x\n")
    make_split(root / "dev", "a b\n", "O I-x\n")
    make_split(root / "test", "a\n", "O\n")
    report = ReadReport()
    with caplog.at_level(logging.WARNING, logger=READERS_LOGGER):
        read_jointbert(root, report=report)
    assert report.repair_count == 2
    assert len(report.files) == 3
    assert len(caplog.records) == 2  # one warning per file that needed repairs


# --------------------------------------------------------------------------- CoNLL


def test_conll_reads(tmp_path: Path) -> None:
    path = write(
        tmp_path / "f.conll",
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\n"
        "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n",
    )
    examples = read_conll(path)
    assert examples == [
        Example(("EU", "rejects"), ("B-ORG", "O"), None, f"{path}:3"),
        Example(("Peter", "Blackburn"), ("B-PER", "I-PER"), None, f"{path}:7"),
    ]


def test_conll_crlf_bom_and_surrounding_space(tmp_path: Path) -> None:
    path = write(tmp_path / "f.conll", b"\xef\xbb\xbf  a O \r\n\tb B-x\t\r\n \r\n c  I-y\r\n")
    examples = read_conll(path)
    assert [e.tokens for e in examples] == [("a", "b"), ("c",)]
    assert [e.tags for e in examples] == [("O", "B-x"), ("B-y",)]
    assert examples[1].source == f"{path}:4"


def test_conll_mit_column_order(tmp_path: Path) -> None:
    path = write(tmp_path / "engtrain.bio", "O\twhat\nB-Actor\tsteve\nI-Actor\tmcqueen\n\nO\thi\n")
    examples = read_conll(path, token_column=1, tag_column=0)
    assert examples[0].tokens == ("what", "steve", "mcqueen")
    assert examples[0].tags == ("O", "B-Actor", "I-Actor")
    assert examples[1].source == f"{path}:5"


def test_conll_tab_delimiter_keeps_spaces_in_tokens(tmp_path: Path) -> None:
    path = write(tmp_path / "f.tsv", "new york\tB-city\nto\tO\n")
    assert read_conll(path, delimiter="\t")[0].tokens == ("new york", "to")
    # with the default (whitespace) delimiter the last column is still the tag
    assert read_conll(path)[0].tokens == ("new", "to")
    path = write(tmp_path / "g.tsv", "a\t\tO\n")
    with raises_at(path, 1, "empty token column"):
        read_conll(path, delimiter="\t", token_column=1)


def test_conll_too_few_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "f.conll", "a O\nb O\n\nlonely\n")
    with raises_at(path, 4, r"1 column\(s\) found, 2 needed"):
        read_conll(path)
    path = write(tmp_path / "g.conll", "a b O\nc O\n")
    with raises_at(path, 2, r"2 column\(s\) found, 3 needed"):
        read_conll(path, token_column=0, tag_column=2)
    with raises_at(path, 1, r"3 column\(s\) found, 4 needed"):
        read_conll(path, token_column=2, tag_column=-1)


def test_conll_bad_config(tmp_path: Path) -> None:
    path = write(tmp_path / "f.conll", "a O\n")
    with pytest.raises(ConfigError):
        read_conll(path, token_column=1, tag_column=1)
    with pytest.raises(ConfigError):
        read_conll(path, delimiter="")


def test_conll_invalid_tag_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "f.conll", "a O\nb S-x\n")
    with raises_at(path, 2, "invalid tag 'S-x'"):
        read_conll(path)


def test_conll_repair_line_is_the_tag_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "f.conll", "a O\nb O\n\nc O\nd I-x\ne I-x\nf I-y\n")
    report = ReadReport()
    with caplog.at_level(logging.WARNING, logger=READERS_LOGGER):
        examples = read_conll(path, report=report)
    assert examples[1].tags == ("O", "B-x", "I-x", "B-y")
    assert caplog.records[0].getMessage() == (
        f"{path}: repaired 2 ill-formed BIO tag(s) (I-x after O or another type read as B-x); "
        "first at line 5"
    )
    assert [r.line for r in report.repairs] == [5, 7]
    with raises_at(path, 5, "ill-formed BIO"):
        read_conll(path, bio_repair=False)


def test_conll_missing_file(tmp_path: Path) -> None:
    with raises_at(tmp_path / "nope.conll", None, "file not found"):
        read_conll(tmp_path / "nope.conll")


# --------------------------------------------------------------------------- ATIS .iob


def test_iob_reads(tmp_path: Path) -> None:
    path = write(
        tmp_path / "atis.iob",
        "BOS i want to fly to boston EOS\tO O O O O O B-toloc.city_name atis_flight\r\n"
        "BOS  fares please EOS \t O O O atis_airfare#atis_flight \n",
    )
    examples = read_iob(path)
    assert examples == [
        Example(
            ("i", "want", "to", "fly", "to", "boston"),
            ("O", "O", "O", "O", "O", "B-toloc.city_name"),
            "atis_flight",
            f"{path}:1",
        ),
        Example(("fares", "please"), ("O", "O"), "atis_airfare#atis_flight", f"{path}:2"),
    ]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("BOS a EOS O O intent", "no tab"),
        ("a b EOS\tO O O intent", "start with BOS and end with EOS"),
        ("BOS a b\tO O O intent", "start with BOS and end with EOS"),
        ("BOS EOS\tO intent", "empty utterance"),
        ("BOS a b EOS\tO O intent", r"2 word\(s\) between BOS and EOS but 3 field"),
        ("BOS a EOS\tO O O intent", r"1 word\(s\) between BOS and EOS but 4 field"),
        ("BOS a EOS\tB-x O intent", "the tag of BOS is 'B-x'"),
        ("BOS a EOS\tO PAD intent", "invalid tag 'PAD'"),
        ("   ", "empty line"),
    ],
)
def test_iob_malformed(tmp_path: Path, line: str, match: str) -> None:
    path = write(tmp_path / "f.iob", f"BOS ok EOS\tO O intent\n{line}\n")
    with raises_at(path, 2, match):
        read_iob(path)


def test_iob_repair(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "f.iob", "BOS a b EOS\tO O O i\nBOS a b EOS\tO O I-x i\n")
    report = ReadReport()
    with caplog.at_level(logging.WARNING, logger=READERS_LOGGER):
        examples = read_iob(path, report=report)
    assert examples[1].tags == ("O", "B-x")
    assert report.repairs == [Repair(str(path), 2, 1, "I-x")]
    assert "first at line 2" in caplog.records[0].getMessage()
    with raises_at(path, 2, r"ill-formed BIO: tag 'I-x' \(token 2\) follows 'O'"):
        read_iob(path, bio_repair=False)


# --------------------------------------------------------------------------- writers


def test_writers_round_trip(tmp_path: Path) -> None:
    examples = [
        Example(("show", "café"), ("O", "B-x"), "a#b"),
        Example(("x",), ("O",), "c"),
    ]
    write_jointbert_split(examples, tmp_path / "split")
    back = read_jointbert_split(tmp_path / "split")
    assert [(e.tokens, e.tags, e.intent) for e in back] == [
        (e.tokens, e.tags, e.intent) for e in examples
    ]
    write_conll(examples, tmp_path / "f.conll")
    back = read_conll(tmp_path / "f.conll")
    want = [(e.tokens, e.tags, None) for e in examples]
    assert [(e.tokens, e.tags, e.intent) for e in back] == want
    assert read_conll(tmp_path / "f.conll", delimiter="\t")[1].tokens == ("x",)


def test_write_jointbert_without_intents_removes_stale_label(tmp_path: Path) -> None:
    d = make_split(tmp_path / "s", "old\n", "O\n", "stale\n")
    write_jointbert_split([Example(("a",), ("O",))], d)
    assert not (d / "label").exists()
    assert read_jointbert_split(d)[0].intent is None


@pytest.mark.parametrize(
    "bad",
    [
        [Example(("a b",), ("O",), "i")],
        [Example(("",), ("O",), "i")],
        [Example(("a",), None, "i")],
        [Example((), (), "i")],
        [Example(("a",), ("PAD",), "i")],
        [Example(("a",), ("O",), "two words")],
        [Example(("a",), ("O",), "i"), Example(("b",), ("O",), None)],
        [Example(("\ufeffa",), ("O",), "i")],
    ],
)
def test_write_jointbert_rejects_what_would_not_read_back(
    tmp_path: Path, bad: list[Example]
) -> None:
    with pytest.raises(ValueError):
        write_jointbert_split(bad, tmp_path / "s")


def test_write_conll_rejects_docstart(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="DOCSTART"):
        write_conll([Example(("-DOCSTART-",), ("O",))], tmp_path / "f")


TYPES = ("a", "b", "loc.city")
tag_strategy = st.one_of(
    st.just("O"), st.builds(lambda p, t: f"{p}-{t}", st.sampled_from("BI"), st.sampled_from(TYPES))
)
token_strategy = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufeff"),
    min_size=1,
    max_size=6,
).filter(lambda s: not any(c.isspace() for c in s) and s != "-DOCSTART-")


@st.composite
def example_lists(draw: st.DrawFn) -> list[Example]:
    """Random tagged utterances (tags may be ill-formed BIO), all with or all without intents."""
    with_intent = draw(st.booleans())
    examples = []
    for _ in range(draw(st.integers(0, 5))):
        n = draw(st.integers(1, 8))
        tokens = tuple(draw(st.lists(token_strategy, min_size=n, max_size=n)))
        tags = tuple(draw(st.lists(tag_strategy, min_size=n, max_size=n)))
        intent = draw(token_strategy) if with_intent else None
        examples.append(Example(tokens, tags, intent))
    return examples


def expected(examples: list[Example], *, keep_intent: bool) -> list[tuple]:
    """What the readers must return: tags repaired, intents kept where the format has them."""
    return [
        (e.tokens, tuple(repair_bio(e.tags or ())[0]), e.intent if keep_intent else None)
        for e in examples
    ]


@settings(max_examples=60, deadline=None)
@given(example_lists())
def test_property_jointbert_round_trip(examples: list[Example]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write_jointbert_split(examples, Path(tmp) / "s")
        back = read_jointbert_split(Path(tmp) / "s")
    assert [(e.tokens, e.tags, e.intent) for e in back] == expected(examples, keep_intent=True)


@settings(max_examples=60, deadline=None)
@given(example_lists())
def test_property_conll_round_trip(examples: list[Example]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write_conll(examples, Path(tmp) / "f.conll")
        back = read_conll(Path(tmp) / "f.conll")
        back_tab = read_conll(Path(tmp) / "f.conll", delimiter="\t")
    want = expected(examples, keep_intent=False)
    assert [(e.tokens, e.tags, e.intent) for e in back] == want
    assert [(e.tokens, e.tags, e.intent) for e in back_tab] == want


# --------------------------------------------------------------------------- real data


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present")
@pytest.mark.parametrize(
    ("name", "counts"), [("atis", (4478, 500, 893)), ("snips", (13084, 700, 700))]
)
def test_real_benchmarks(name: str, counts: tuple[int, int, int]) -> None:
    report = ReadReport()
    data = read_jointbert(SHARED / name, report=report)
    assert tuple(len(data[s]) for s in ("train", "dev", "test")) == counts
    assert report.repair_count == 0
    assert all(e.intent for split in data.values() for e in split)
    if name == "atis":
        assert any("#" in (e.intent or "") for e in data["train"])
