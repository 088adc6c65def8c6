"""The bundled airline corpus (data/airline): reproducible, well formed, and context-dependent."""

from __future__ import annotations

import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from slotfill.data import synthetic
from slotfill.data.synthetic import DEFAULT_SIZES, FILES, SPLITS, generate, main, write_corpus

CORPUS = Path(__file__).resolve().parents[1] / "data" / "airline"
TAG = re.compile(r"O|[BI]-[a-z_]+(\.[a-z_]+)?")
INTENT = re.compile(r"atis_[a-z_]+(#atis_[a-z_]+)*")

Rows = list[tuple[list[str], list[str], str]]


def _read(split: str) -> Rows:
    texts = {name: (CORPUS / split / name).read_text(encoding="utf-8") for name in FILES}
    for name, text in texts.items():
        assert text.endswith("\n") and "\r" not in text, f"{split}/{name}: needs \\n line ends and a final newline"
    lines = {name: text[:-1].split("\n") for name, text in texts.items()}
    return [(words.split(" "), tags.split(" "), intent)
            for words, tags, intent in zip(lines["seq.in"], lines["seq.out"], lines["label"], strict=True)]


@pytest.fixture(scope="module")
def corpus() -> dict[str, Rows]:
    return {split: _read(split) for split in SPLITS}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("airline")
    write_corpus(root)
    return root


def _spans(tags: list[str]) -> list[tuple[str, int]]:
    """(slot type, start) of every chunk."""
    return [(tag[2:], i) for i, tag in enumerate(tags) if tag.startswith("B-")]


def _words_by_slot(rows: Rows) -> dict[str, set[str]]:
    """Slot type -> the words that start one of its chunks."""
    out: dict[str, set[str]] = defaultdict(set)
    for tokens, tags, _ in rows:
        for slot, start in _spans(tags):
            out[slot].add(tokens[start])
    return out


# ---- reproducibility ------------------------------------------------------------------------


def test_regenerating_reproduces_the_committed_corpus_byte_for_byte(fresh: Path) -> None:
    for split in SPLITS:
        for name in FILES:
            assert (fresh / split / name).read_bytes() == (CORPUS / split / name).read_bytes(), (
                f"data/airline/{split}/{name} is stale: run python -m slotfill.data.synthetic")


def test_check_exits_1_naming_the_file_when_a_file_differs(fresh: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "airline"
    shutil.copytree(fresh, copy)
    label = copy / "dev" / "label"
    label.write_bytes(label.read_bytes().replace(b"atis_flight\n", b"atis_airfare\n", 1))
    assert main(["--out", str(copy), "--check"]) == 1
    assert str(label) in capsys.readouterr().err


def test_generation_is_deterministic_and_depends_on_the_seed() -> None:
    sizes = {"train": 150, "dev": 40, "test": 40}
    first = generate(seed=13, sizes=sizes)
    assert first == generate(seed=13, sizes=sizes)
    assert first != generate(seed=14, sizes=sizes)
    assert [len(first[split]) for split in SPLITS] == [150, 40, 40]


def test_sizes_default_and_are_validated() -> None:
    assert DEFAULT_SIZES == {"train": 4000, "dev": 500, "test": 800}
    assert [len(rows) for rows in generate(sizes={"train": 3, "dev": 0, "test": 1}).values()] == [3, 0, 1]
    with pytest.raises(ValueError, match="unknown split"):
        generate(sizes={"valid": 10})
    with pytest.raises(ValueError, match="non-negative"):
        generate(sizes={"dev": -1})


# ---- form -----------------------------------------------------------------------------------


def test_files_are_line_aligned_with_well_formed_iob2(corpus: dict[str, Rows]) -> None:
    for split, rows in corpus.items():
        assert len(rows) == DEFAULT_SIZES[split]
        for n, (tokens, tags, intent) in enumerate(rows, 1):
            where = f"{split}:{n}"
            assert len(tokens) == len(tags), where
            assert all(tokens) and " ".join(tokens) == " ".join(tokens).lower(), where
            assert INTENT.fullmatch(intent), where
            previous = "O"
            for tag in tags:
                assert TAG.fullmatch(tag), f"{where}: {tag}"
                if tag.startswith("I-"):
                    assert previous != "O" and previous[2:] == tag[2:], f"{where}: {tag} after {previous}"
                previous = tag


def test_lengths_intents_and_splits_look_like_atis(corpus: dict[str, Rows]) -> None:
    train = corpus["train"]
    lengths = [len(tokens) for tokens, _, _ in train]
    assert max(lengths) <= synthetic.MAX_TOKENS
    assert sum(5 <= n <= 25 for n in lengths) / len(lengths) > 0.9
    intents = Counter(intent for _, _, intent in train)
    assert 0.6 < intents["atis_flight"] / len(train) < 0.75
    assert len(intents) >= 15 and any("#" in intent for intent in intents)
    assert len({slot for _, tags, _ in train for slot, _ in _spans(tags)}) >= 45
    assert len(synthetic.FRAMES) >= 60
    seen = {tuple(tokens) for tokens, _, _ in train}
    assert not any(tuple(tokens) in seen for split in ("dev", "test") for tokens, _, _ in corpus[split])


# ---- context decides the slot ---------------------------------------------------------------


def test_the_same_city_fills_origin_destination_and_stop(corpus: dict[str, Rows]) -> None:
    words = _words_by_slot(corpus["train"])
    assert len(words["fromloc.city_name"] & words["toloc.city_name"]) >= 40
    assert len(words["fromloc.city_name"] & words["toloc.city_name"] & words["stoploc.city_name"]) >= 20
    assert len(words["toloc.city_name"] & words["city_name"]) >= 20
    assert words["fromloc.airport_name"] & words["toloc.airport_name"]


def test_the_same_dates_fill_departure_arrival_and_return(corpus: dict[str, Rows]) -> None:
    words = _words_by_slot(corpus["train"])
    for part, at_least in (("day_name", 7), ("month_name", 10), ("day_number", 10)):
        shared = words[f"depart_date.{part}"] & words[f"arrive_date.{part}"] & words[f"return_date.{part}"]
        assert len(shared) >= at_least, part


def test_the_same_times_fill_departure_and_arrival(corpus: dict[str, Rows]) -> None:
    words = _words_by_slot(corpus["train"])
    for part, at_least in (("time", 10), ("time_relative", 3), ("period_of_day", 4)):
        assert len(words[f"depart_time.{part}"] & words[f"arrive_time.{part}"]) >= at_least, part
    assert {"first"} <= words["depart_date.day_number"] & words["flight_mod"] & words["class_type"]


def test_arrival_is_often_decided_several_words_to_the_left(corpus: dict[str, Rows]) -> None:
    """``i need to arrive in denver by 5 pm on monday``: an arrive_date 4+ words after ``arrive``."""
    verbs = {"arrive", "arrives", "arriving", "be", "land", "get"}
    far = 0
    for tokens, tags, _ in corpus["train"]:
        for slot, start in _spans(tags):
            before = [i for i in range(start) if tokens[i] in verbs]
            if slot.startswith("arrive_date.") and before and start - before[-1] >= 4:
                far += 1
    assert far >= 50


def test_most_slot_words_are_ambiguous_out_of_context(corpus: dict[str, Rows]) -> None:
    tags_of: dict[str, set[str]] = defaultdict(set)
    train = corpus["train"]
    for tokens, tags, _ in train:
        for word, tag in zip(tokens, tags):
            tags_of[word].add(tag)
    slot_words = [word for tokens, tags, _ in train for word, tag in zip(tokens, tags) if tag != "O"]
    assert sum(len(tags_of[word]) > 1 for word in slot_words) / len(slot_words) > 0.6


# ---- deliberate quirks ----------------------------------------------------------------------


def test_dev_and_test_hold_a_few_unseen_cities_slots_and_intents(corpus: dict[str, Rows]) -> None:
    train = corpus["train"]
    train_text = {" " + " ".join(tokens) + " " for tokens, _, _ in train}
    train_slots = {slot for _, tags, _ in train for slot, _ in _spans(tags)}
    train_intents = {intent for _, _, intent in train}
    unseen_cities = {city for city, _ in synthetic.UNSEEN_CITIES}
    assert not any(f" {city} " in text for city in unseen_cities for text in train_text)
    for split in ("dev", "test"):
        rows = corpus[split]
        new_slot = [tags for _, tags, _ in rows if any(slot not in train_slots for slot, _ in _spans(tags))]
        new_intent = [intent for _, _, intent in rows if intent not in train_intents]
        assert 1 <= len(new_slot) <= 0.01 * len(rows) and 1 <= len(new_intent) <= 0.01 * len(rows), split
        assert any("B-booking_class" in tags for tags in new_slot) and "atis_day_name" in new_intent
        cities = _words_by_slot(rows)["fromloc.city_name"] | _words_by_slot(rows)["toloc.city_name"]
        assert {city.split()[0] for city in unseen_cities} & cities, split


def test_no_benchmark_sentence_is_in_the_bundled_corpus():
    """The corpus is ours: no utterance of five or more tokens equals an ATIS/SNIPS one.

    (A few four-token formulas such as "what airline is aa" occur in both by coincidence.)
    """
    shared = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    if not shared.is_dir():
        pytest.skip("../shared/datasets is absent")
    benchmark = {
        line.strip()
        for path in shared.glob("*/*/seq.in")
        for line in path.read_text(encoding="utf-8").splitlines()
    }
    ours = {line for path in CORPUS.glob("*/seq.in") for line in path.read_text(encoding="utf-8").splitlines()}
    shared_lines = sorted(line for line in ours & benchmark if len(line.split()) >= 5)
    assert not shared_lines, shared_lines[:5]
