"""Tests for finmcq.sources: real files, real ``datasets``, no network.

Every fixture is written here by the test itself; the KMMLU mirror in ../shared/kmmlu (CC BY-ND,
never copied into the project) is only read, and those tests skip when it is absent.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finmcq.errors import ConfigError, FinmcqError, InputError
from finmcq.records import KMMLU_LICENSE, MARKET_TOPICS, SOURCE_LETTERS
from finmcq.sources import (
    FILE_SPLIT,
    SAMPLE_DATASET,
    SAMPLE_LICENSE,
    USER_FILE_LICENSE,
    describe_splits,
    load_source,
)

# ../shared/kmmlu from the repository root (parents[1] is the root, this file is in tests/).
KMMLU_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "kmmlu"
needs_kmmlu = pytest.mark.skipif(not KMMLU_DIR.is_dir(), reason=f"{KMMLU_DIR} not present")
reliability = pytest.mark.reliability

HEADER = "question,answer,A,B,C,D,Category,Human Accuracy"

# Row counts from ../shared/kmmlu/ABOUT.md, by config name (the card maps Korean-History to
# the korean-history-*.csv files).
KMMLU_COUNTS = {
    "Accounting": {"train": 45, "dev": 5, "test": 100},
    "Economics": {"train": 94, "dev": 5, "test": 130},
    "Management": {"train": 1371, "dev": 5, "test": 1000},
    "Marketing": {"train": 701, "dev": 5, "test": 1000},
    "Real-Estate": {"train": 79, "dev": 5, "test": 200},
    "Taxation": {"train": 15, "dev": 5, "test": 200},
    "Korean-History": {"train": 1, "dev": 5, "test": 100},
}
KMMLU_FILES = {name: name for name in KMMLU_COUNTS} | {"Korean-History": "korean-history"}


def row(n: int, answer: object = 1, category: str = "테스트", accuracy: str = "0.5") -> str:
    """One CSV row of made-up content, distinct for each n."""
    return (
        f"시험 문항 {n}: 다음 중 옳은 것은?,{answer},가{n},나{n},다{n},라{n},{category},{accuracy}"
    )


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def csv_file(tmp_path: Path, *rows: str, name: str = "questions.csv", header: str = HEADER) -> Path:
    return write(tmp_path / name, "\n".join([header, *rows]) + "\n")


def error_text(source: str | Path, **kwargs: Any) -> str:
    with pytest.raises(InputError) as info:
        load_source(source, **kwargs)
    return str(info.value)


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def test_error_renders_what_where_fix() -> None:
    error = InputError("the answer is 'B', not one of 1, 2, 3, 4", "q.csv, line 3", "Use 1-4")
    assert str(error) == "the answer is 'B', not one of 1, 2, 3, 4 (q.csv, line 3). Use 1-4."
    assert str(InputError("the file is empty.")) == "the file is empty."
    assert isinstance(error, FinmcqError)
    assert issubclass(ConfigError, FinmcqError)


# --------------------------------------------------------------------------------------------
# bundled sample
# --------------------------------------------------------------------------------------------


def test_sample_loads_with_provenance() -> None:
    questions = load_source("sample")
    assert 30 <= len(questions) <= 40
    for index, question in enumerate(questions):
        assert len(question.options) == 4
        assert all(option.strip() for option in question.options)
        assert len({option for option in question.options}) == 4
        prov = question.provenance
        assert prov.dataset == SAMPLE_DATASET
        assert prov.license == SAMPLE_LICENSE
        assert prov.split == FILE_SPLIT
        assert prov.row_index == index
        assert question.uid == f"{prov.subject}/{prov.split}/{index}"
        assert question.answer == SOURCE_LETTERS[prov.original_answer - 1]
    assert {q.answer for q in questions} == set(SOURCE_LETTERS)
    categories = {q.category for q in questions}
    assert {str(topic) for topic in MARKET_TOPICS} <= categories
    off_topic = [q for q in questions if q.category not in {str(t) for t in MARKET_TOPICS}]
    assert len(off_topic) >= 3


def test_sample_regulation_questions_state_a_date() -> None:
    regulation = [q for q in load_source("sample") if q.category == "금융 규제"]
    assert len(regulation) >= 3
    assert all("년 기준" in q.question for q in regulation)


# --------------------------------------------------------------------------------------------
# good CSV / JSONL files
# --------------------------------------------------------------------------------------------


def test_csv_file_maps_answers_and_provenance(tmp_path: Path) -> None:
    path = csv_file(tmp_path, row(1, 1), row(2, 2), row(3, 3), row(4, 4, accuracy=""))
    questions = load_source(path)
    assert [q.answer for q in questions] == ["A", "B", "C", "D"]
    assert [q.provenance.original_answer for q in questions] == [1, 2, 3, 4]
    assert [q.provenance.row_index for q in questions] == [0, 1, 2, 3]
    first = questions[0]
    assert first.question == "시험 문항 1: 다음 중 옳은 것은?"
    assert first.options == ("가1", "나1", "다1", "라1")
    assert first.answer_text == "가1"
    assert first.category == "테스트"
    assert first.human_accuracy == 0.5
    assert questions[3].human_accuracy is None
    assert first.uid == "questions/file/0"
    assert first.provenance.dataset == str(path)
    assert first.provenance.subject == "questions"
    assert first.provenance.split == FILE_SPLIT
    assert first.provenance.license == USER_FILE_LICENSE


def test_column_order_and_extra_columns_do_not_matter(tmp_path: Path) -> None:
    canonical = load_source(csv_file(tmp_path, row(1, 2), row(2, 4), name="a.csv"))
    shuffled = "\n".join(
        [
            "note,D,Human Accuracy,C,answer,B,question,Category,A",
            "메모,라1,0.5,다1,2,나1,시험 문항 1: 다음 중 옳은 것은?,테스트,가1",
            "메모,라2,0.5,다2,4,나2,시험 문항 2: 다음 중 옳은 것은?,테스트,가2",
        ]
    )
    reordered = load_source(write(tmp_path / "b.csv", shuffled), subjects=["a"])
    strip = [q.model_dump(exclude={"provenance"}) for q in canonical]
    assert [q.model_dump(exclude={"provenance"}) for q in reordered] == strip


def test_optional_columns_may_be_absent(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "질문 하나,3,a,b,c,d", header="question,answer,A,B,C,D")
    (question,) = load_source(path)
    assert question.answer == "C"
    assert question.category is None
    assert question.human_accuracy is None


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.csv", "\ufeff" + HEADER + "\n" + row(1, 2) + "\n")
    (question,) = load_source(path)
    assert question.question.startswith("시험 문항 1")
    assert question.answer == "B"


@pytest.mark.parametrize(
    ("raw", "letter"), [("1", "A"), ("2.0", "B"), (" 3 ", "C"), ('"4"', "D"), ("+2", "B")]
)
def test_numeric_answer_spellings_are_accepted(tmp_path: Path, raw: str, letter: str) -> None:
    (question,) = load_source(csv_file(tmp_path, row(1, raw)))
    assert question.answer == letter


def test_crlf_and_multiline_fields_keep_line_numbers(tmp_path: Path) -> None:
    rows = [HEADER, '"첫 줄\r\n둘째 줄\r\n셋째 줄",1,a,b,c,d,,', row(2, 2)]
    good = write(tmp_path / "good.csv", "\r\n".join(rows) + "\r\n")
    questions = load_source(good)
    assert questions[0].question == "첫 줄\r\n둘째 줄\r\n셋째 줄"
    assert questions[1].answer == "B"
    bad = write(tmp_path / "bad.csv", "\r\n".join([*rows, row(3, 7)]) + "\r\n")
    # header = line 1, the 3-line record = lines 2-4, row 2 = line 5, the bad row = line 6
    message = error_text(bad)
    assert "bad.csv, line 6, column 'answer'" in message


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "gaps.csv", f"\n{HEADER}\n\n{row(1)}\n\n{row(2)}\n\n")
    assert [q.provenance.row_index for q in load_source(path)] == [0, 1]


def test_jsonl_file(tmp_path: Path) -> None:
    lines = [
        {"question": "문항 일", "answer": 2, "A": "a", "B": "b", "C": "c", "D": "d"},
        {"D": 4, "C": 3, "B": 2, "A": 1, "answer": "4.0", "question": "문항 이", "extra": []},
        {
            "question": "문항 삼",
            "answer": 1.0,
            "A": "a",
            "B": "b",
            "C": "c",
            "D": "d",
            "Category": "채권",
            "Human Accuracy": 0.25,
        },
    ]
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n\n"
    questions = load_source(write(tmp_path / "items.jsonl", text))
    assert [q.answer for q in questions] == ["B", "D", "A"]
    assert questions[1].options == ("1", "2", "3", "4")
    assert questions[2].category == "채권" and questions[2].human_accuracy == 0.25
    assert questions[0].uid == "items/file/0"


def test_file_labels_can_be_given_once(tmp_path: Path) -> None:
    path = csv_file(tmp_path, row(1))
    (question,) = load_source(path, subjects=["Finance"], splits=["train"])
    assert question.uid == "Finance/train/0"
    message = error_text(path, splits=["train", "dev"])
    assert "questions.csv" in message and "2 splits" in message


def test_duplicates_keep_first_and_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    swapped = "시험 문항 1: 다음 중 옳은 것은?,2,나1,가1,다1,라1,테스트,0.5"  # options reordered
    path = csv_file(tmp_path, row(1), row(2), row(1), swapped, row(3))
    with caplog.at_level(logging.WARNING, logger="finmcq.sources"):
        questions = load_source(path)
    assert [q.provenance.row_index for q in questions] == [0, 1, 4]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 duplicate" in warnings[0]
    assert "questions/file/2" in warnings[0]
    assert len(load_source(path, deduplicate=False)) == 5


def test_describe_splits() -> None:
    assert describe_splits(["train", "dev"]) is None
    warning = describe_splits(["train", "test"])
    assert warning is not None and "test" in warning and "contaminat" in warning


# --------------------------------------------------------------------------------------------
# bad input: InputError naming file, line and column
# --------------------------------------------------------------------------------------------


@reliability
@pytest.mark.parametrize("answer", ["0", "5", "B", "", "2.5", "-1", "1,2"])
def test_bad_answer_names_file_line_and_column(tmp_path: Path, answer: str) -> None:
    value = f'"{answer}"' if "," in answer else answer
    message = error_text(csv_file(tmp_path, row(1), row(2, value)))
    assert "questions.csv" in message
    assert "line 3" in message
    assert "'answer'" in message
    assert "1 = A" in message


@reliability
@pytest.mark.parametrize("column", ["question", "A", "D"])
def test_empty_question_or_option(tmp_path: Path, column: str) -> None:
    values = dict(zip(HEADER.split(","), row(2).split(","), strict=True))
    values[column] = "   "
    bad = ",".join(values.values())
    message = error_text(csv_file(tmp_path, row(1), row(3), bad))
    assert "empty" in message and "line 4" in message and f"'{column}'" in message


@reliability
def test_missing_column_is_named_with_found_columns(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "질문,1,a,b,c", header="question,answer,A,B,C")
    message = error_text(path)
    assert "column 'D' is missing" in message
    assert "questions.csv" in message
    assert "'question', 'answer', 'A', 'B', 'C'" in message


@reliability
def test_duplicate_column(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "질문,1,a,b,c,d,e", header="question,answer,A,B,C,D,A")
    assert "column 'A' appears 2 times" in error_text(path)
    # a case variant next to the exact name is just an extra column
    ok = csv_file(tmp_path, "질문,1,a,b,c,d,e", header="question,answer,A,B,C,D,a", name="ok.csv")
    assert load_source(ok)[0].options[0] == "a"


@reliability
@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    message = error_text(write(tmp_path / "empty.csv", text))
    assert "empty" in message and "empty.csv" in message


@reliability
def test_header_only_file(tmp_path: Path) -> None:
    message = error_text(csv_file(tmp_path, name="header.csv"))
    assert "no question rows" in message and "header.csv" in message


@reliability
def test_not_utf8_names_line_and_byte(tmp_path: Path) -> None:
    text = HEADER + "\n" + row(1) + "\n" + row(2) + "\n"
    path = write(tmp_path / "excel.csv", text, encoding="cp949")
    message = error_text(path)
    assert "not valid UTF-8" in message
    assert "excel.csv, line 2, byte" in message
    assert "CP949" in message


@reliability
def test_wrong_field_count(tmp_path: Path) -> None:
    unquoted = "금리가 오르면, 채권 가격은?,2,a,b,c,d,테스트,0.5"  # the comma splits the question
    message = error_text(csv_file(tmp_path, row(1), unquoted))
    assert "line 3" in message and "9 fields" in message and "Quote" in message


@reliability
def test_huge_field_gives_clear_error_fast(tmp_path: Path) -> None:
    huge = "가" * (10 * 1024 * 1024)
    path = csv_file(tmp_path, row(1), f'"{huge}",1,a,b,c,d,,')
    started = time.monotonic()
    message = error_text(path)
    assert time.monotonic() - started < 10
    assert "too long" in message and "line 3" in message
    jsonl = {"question": huge, "answer": 1, "A": "a", "B": "b", "C": "c", "D": "d"}
    message = error_text(write(tmp_path / "huge.jsonl", json.dumps(jsonl, ensure_ascii=False)))
    assert "characters long" in message and "line 1" in message


@reliability
def test_unclosed_quote(tmp_path: Path) -> None:
    path = csv_file(tmp_path, row(1), '"열린 따옴표,1,a,b,c,d,,', row(3))
    message = error_text(path)
    assert "questions.csv" in message and "line 3" in message


@reliability
def test_bad_human_accuracy(tmp_path: Path) -> None:
    message = error_text(csv_file(tmp_path, row(1, accuracy="62.5")))
    assert "Human Accuracy" in message and "line 2" in message


@reliability
def test_nonexistent_path(tmp_path: Path) -> None:
    message = error_text(tmp_path / "missing.csv")
    assert "does not exist" in message and "missing.csv" in message
    assert "does not exist" in error_text(str(tmp_path / "nowhere" / "x.jsonl"))


@reliability
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = csv_file(tmp_path, row(1))
    path.chmod(0)
    try:
        message = error_text(path)
    finally:
        path.chmod(0o644)
    assert "cannot read" in message and "questions.csv" in message


@reliability
def test_unsupported_file_type(tmp_path: Path) -> None:
    message = error_text(write(tmp_path / "questions.xlsx", "PK"))
    assert "unsupported file type '.xlsx'" in message


@reliability
def test_directory_without_hub_layout(tmp_path: Path) -> None:
    csv_file(tmp_path, row(1), name="Economics-train.csv")
    message = error_text(tmp_path)
    assert "no dataset card" in message and str(tmp_path) in message
    write(tmp_path / "README.md", "---\nlicense: mit\n---\n# A card without configs\n")
    assert "no `configs` list" in error_text(tmp_path)
    write(tmp_path / "README.md", "---\nconfigs: [unclosed\n---\n")
    assert "YAML" in error_text(tmp_path)


@reliability
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2, 3]", "JSON list, not an object"),
        ('{"question": "q", "A": "a", "B": "b", "C": "c", "D": "d"}', "column 'answer' is missing"),
    ],
)
def test_bad_jsonl_line(tmp_path: Path, line: str, expected: str) -> None:
    good = {"question": "문항", "answer": 1, "A": "a", "B": "b", "C": "c", "D": "d"}
    text = json.dumps(good, ensure_ascii=False) + "\n\n" + line + "\n"
    message = error_text(write(tmp_path / "bad.jsonl", text))
    assert expected in message and "bad.jsonl, line 3" in message


# --------------------------------------------------------------------------------------------
# hub
# --------------------------------------------------------------------------------------------


@pytest.fixture
def dead_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point datasets at a local port nobody listens on, with offline mode off."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    yield


@reliability
def test_unreachable_hub_fails_fast_with_advice(dead_hub: None, tmp_path: Path) -> None:
    started = time.monotonic()
    message = error_text("HAERAE-HUB/KMMLU", cache_dir=tmp_path)
    assert time.monotonic() - started < 10
    assert "could not reach the Hugging Face hub" in message
    assert "--source PATH" in message and "sample" in message


@reliability
def test_offline_mode_without_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    message = error_text("HAERAE-HUB/KMMLU", cache_dir=tmp_path)
    assert "offline" in message and "cache" in message


@reliability
def test_unknown_kmmlu_split_fails_before_network(dead_hub: None) -> None:
    message = error_text("HAERAE-HUB/KMMLU", splits=["validation"])
    assert "unknown split 'validation'" in message and "train, dev, test" in message


@reliability
def test_empty_subject_list() -> None:
    assert "empty subject" in error_text("HAERAE-HUB/KMMLU", subjects=[" "])


# --------------------------------------------------------------------------------------------
# a folder with the hub layout, written here (always runs)
# --------------------------------------------------------------------------------------------

CARD = """---
configs:
- config_name: Finance
  data_files:
  - split: train
    path: data/Finance-train.csv
  - split: test
    path: data/finance-test.csv
- config_name: Ghost
  data_files:
  - split: train
    path: data/Ghost-train.csv
license: cc-by-4.0
---
# Test mirror
"""


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    folder = tmp_path / "mirror"
    (folder / "data").mkdir(parents=True)
    write(folder / "README.md", CARD)
    csv_file(folder / "data", row(1, 3), row(2, 1), name="Finance-train.csv")
    numeric = "숫자 보기 문항,2,0.50,1.0,NA,null,,"  # must stay text, not 0.5 / missing
    csv_file(folder / "data", numeric, name="finance-test.csv")
    return folder


def test_folder_edits_are_never_served_from_a_stale_cache(tmp_path: Path) -> None:
    # datasets 5.2 keys a folder's cache on its name only; sources must read the files afresh.
    first, second = tmp_path / "one" / "mirror", tmp_path / "two" / "mirror"
    for folder, answer in ((first, 1), (second, 2)):
        (folder / "data").mkdir(parents=True)
        write(folder / "README.md", CARD)
        csv_file(folder / "data", row(1, answer), name="Finance-train.csv")
        csv_file(folder / "data", row(2), name="finance-test.csv")
    assert load_source(first, ["Finance"], ["train"])[0].answer == "A"
    assert load_source(second, ["Finance"], ["train"])[0].answer == "B"
    csv_file(first / "data", row(1, 4), row(3), name="Finance-train.csv")
    assert [q.answer for q in load_source(first, ["Finance"], ["train"])] == ["D", "A"]


def test_folder_loads_through_datasets(mirror: Path) -> None:
    questions = load_source(mirror, subjects=["Finance"])
    assert [q.uid for q in questions] == ["Finance/train/0", "Finance/train/1", "Finance/test/0"]
    assert [q.answer for q in questions] == ["C", "A", "B"]
    assert questions[2].options == ("0.50", "1.0", "NA", "null")
    assert questions[0].human_accuracy == 0.5 and questions[2].human_accuracy is None
    assert questions[0].provenance.dataset == str(mirror)
    assert questions[0].provenance.license == "cc-by-4.0"


@reliability
def test_folder_provenance_names_the_folder_as_given_on_every_load(
        mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The loaded-source cache is keyed on the folder's content; provenance must still record
    # the spelling of *this* load, not the one that filled the cache.
    absolute = load_source(mirror, subjects=["Finance"])
    monkeypatch.chdir(mirror.parent)
    relative = load_source("mirror", subjects=["Finance"])
    assert {q.provenance.dataset for q in absolute} == {str(mirror)}
    assert {q.provenance.dataset for q in relative} == {"mirror"}
    assert [q.uid for q in relative] == [q.uid for q in absolute]


def test_folder_bad_row_names_data_file_and_line(mirror: Path) -> None:
    csv_file(mirror / "data", row(1), row(2), row(3, "B"), name="Finance-train.csv")
    message = error_text(mirror, subjects=["Finance"], splits=["train"])
    assert "Finance-train.csv, line 4, column 'answer'" in message


@reliability
def test_folder_file_problems(mirror: Path) -> None:
    train = mirror / "data" / "Finance-train.csv"
    csv_file(
        mirror / "data", "질문,1,a,b,c", name="Finance-train.csv", header="question,answer,A,B,C"
    )
    assert "column 'D' is missing" in error_text(mirror, subjects=["Finance"])
    csv_file(mirror / "data", name="Finance-train.csv")
    assert "no question rows" in error_text(mirror, subjects=["Finance"])
    write(train, HEADER + "\n" + row(1) + "\n", encoding="cp949")
    message = error_text(mirror, subjects=["Finance"])
    assert "not valid UTF-8" in message and "Finance-train.csv, line 2" in message


@reliability
def test_folder_unknown_names(mirror: Path) -> None:
    message = error_text(mirror, subjects=["finance"])
    assert "unknown subject 'finance'" in message and "Did you mean 'Finance'?" in message
    message = error_text(mirror, subjects=["Ghost"])
    assert "data files are missing" in message and "Ghost-train.csv" in message
    message = error_text(mirror, subjects=["Finance"], splits=["dev"])
    assert "unknown split 'dev'" in message and "train, test" in message


# --------------------------------------------------------------------------------------------
# the real KMMLU mirror in ../shared/kmmlu (read only; skipped when absent)
# --------------------------------------------------------------------------------------------


@needs_kmmlu
@pytest.mark.parametrize(
    ("subject", "split"),
    [(subject, split) for subject in KMMLU_COUNTS for split in ("train", "dev", "test")],
)
def test_kmmlu_row_counts(subject: str, split: str) -> None:
    questions = load_source(KMMLU_DIR, [subject], [split], deduplicate=False)
    assert len(questions) == KMMLU_COUNTS[subject][split]
    assert {q.provenance.split for q in questions} == {split}
    assert all(q.provenance.license == KMMLU_LICENSE for q in questions)


@needs_kmmlu
def test_kmmlu_economics_default_matches_csv_rows() -> None:
    questions = load_source(KMMLU_DIR, deduplicate=False)
    assert len(questions) == 94 + 5 + 130
    for split in ("train", "dev", "test"):
        path = KMMLU_DIR / "data" / f"Economics-{split}.csv"
        with path.open(encoding="utf-8", newline="") as handle:
            expected = list(csv.DictReader(handle))
        loaded = [q for q in questions if q.provenance.split == split]
        assert [q.provenance.row_index for q in loaded] == list(range(len(expected)))
        for question, raw in zip(loaded, expected, strict=True):
            assert question.uid == f"Economics/{split}/{question.provenance.row_index}"
            assert question.question == raw["question"].strip()
            assert question.answer == "ABCD"[int(raw["answer"]) - 1]
            assert question.answer_text == raw["ABCD"[int(raw["answer"]) - 1]].strip()
            assert question.provenance.original_answer == int(raw["answer"])
            assert question.provenance.dataset == str(KMMLU_DIR)


@needs_kmmlu
def test_kmmlu_duplicates_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="finmcq.sources"):
        questions = load_source(KMMLU_DIR, ["Korean-History"])
    assert len(questions) < 106
    assert any("duplicate" in r.getMessage() for r in caplog.records)
    assert len({(q.question, tuple(sorted(q.options))) for q in questions}) == len(questions)


@needs_kmmlu
@reliability
def test_kmmlu_subject_errors() -> None:
    message = error_text(KMMLU_DIR, subjects=["Economic"])
    assert "unknown subject 'Economic'" in message and "Did you mean 'Economics'?" in message
    assert "Korean-History" in message and "Real-Estate" in message
    message = error_text(KMMLU_DIR, subjects=["Math"])
    assert "data files are missing" in message and "math-train.csv" in message


@needs_kmmlu
def test_kmmlu_folder_never_touches_the_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> Any:
        attempts.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    questions = load_source(KMMLU_DIR, ["Taxation"], cache_dir=tmp_path, deduplicate=False)
    assert len(questions) == 15 + 5 + 200
    assert attempts == []


@reliability
def test_row_of_empty_fields_is_reported(tmp_path: Path) -> None:
    message = error_text(csv_file(tmp_path, row(1), ",,,,,,,", row(2)))
    assert "the question is empty" in message and "line 3" in message
