"""Rows to questions: the names and limits every loader shares, column resolution, cell
validation (answers, texts, accuracy) and duplicate dropping, each error naming where it is."""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from finmcq.errors import InputError
from finmcq.records import (
    SOURCE_LETTERS,
    Provenance,
    SourceLetter,
    SourceQuestion,
    normalize_text,
)

logger = logging.getLogger("finmcq.sources")


KMMLU_HUB_ID = "HAERAE-HUB/KMMLU"


DEFAULT_SOURCE = KMMLU_HUB_ID


KMMLU_SPLITS: tuple[str, ...] = ("train", "dev", "test")


DEFAULT_SUBJECTS: tuple[str, ...] = ("Economics",)


SAMPLE_NAME = "sample"


SAMPLE_DATASET = "finmcq-sample"


SAMPLE_LICENSE = "CC BY 4.0 (finmcq authors)"


USER_FILE_LICENSE = "unknown (user file)"


FILE_SPLIT = "file"
"""Split label of a single-file source (a file is one split)."""


REQUIRED_COLUMNS: tuple[str, ...] = ("question", "answer", *SOURCE_LETTERS)


OPTIONAL_COLUMNS: tuple[str, ...] = ("Category", "Human Accuracy")


MAX_FIELD_CHARS = 100_000
"""Longest accepted question/option text; anything longer is a broken file, not a question."""


HUB_CHECK_TIMEOUT_S = 5.0
"""How long the connectivity check waits for the hub before giving up."""


_HUB_ID_RE = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


_FILE_SUFFIXES = (".csv", ".jsonl")


_TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".jsonl")


_ANSWER_RE = re.compile(r"\+?(\d+)(?:\.0*)?")


_COLUMNS_HELP = (
    "The header must name the columns question, answer, A, B, C, D "
    "(Category and Human Accuracy are optional), in any order"
)


_OTHER_SOURCES = (
    "use --source PATH with a local copy of the KMMLU repository (a folder with its README.md "
    "and data/*.csv) or a .csv/.jsonl file in KMMLU's columns, or --source sample for the "
    "bundled sample"
)

# A CSV row is a list indexed by column position; JSONL and datasets rows are dicts by name.


_Row = Sequence[object] | Mapping[str, object]


_Key = int | str


_Split = tuple[list[str], list[dict[str, object]]]  # columns and rows of one split


_LETTER_OF: dict[int, SourceLetter] = {1: "A", 2: "B", 3: "C", 4: "D"}


@dataclass(frozen=True)
class _Table:
    """The raw rows of one (subject, split), before validation."""

    dataset: str
    subject: str
    split: str
    license: str
    where: str  # the table as a user would name it: a file path, or hub id + subject/split
    header: Sequence[str] | None  # None: every row carries its own keys (JSONL)
    rows: Sequence[_Row]
    locate: Callable[[int], str]  # row index -> "line 7"


def _single_label(values: tuple[str, ...] | None, default: str, kind: str, where: str) -> str:
    """A file is one subject and one split: the caller may relabel it, not split it."""
    if values is None:
        return default
    if len(values) != 1:
        raise InputError(
            f"{len(values)} {kind}s were given ({', '.join(values)}) for a single-file source",
            where=where,
            fix=f"A file holds one {kind}; give at most one {kind}, which only labels its rows",
        )
    return values[0]


def _check_names(given: Sequence[str], available: Sequence[str], kind: str, *, where: str) -> None:
    for name in given:
        if name in available:
            continue
        close = difflib.get_close_matches(name, available, n=1)
        if not close:  # also catch a case slip such as 'economics'
            close = [a for a in available if a.casefold() == name.casefold()][:1]
        hint = f"Did you mean {close[0]!r}? " if close else ""
        raise InputError(
            f"unknown {kind} {name!r}",
            where=where,
            fix=f"{hint}Available {kind}s: {', '.join(available) or 'none'}",
        )


def _column_key(name: str) -> str:
    return name.replace("\ufeff", "").strip().casefold()


def _resolve_columns(header: Sequence[str], where: str) -> dict[str, _Key] | str:
    """Canonical column -> key into the row; or, when a required column is missing, its name.

    Names match exactly, else ignoring case and surrounding spaces ("Question", " A").
    """
    resolved: dict[str, _Key] = {}
    for canonical in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS):
        exact = [i for i, name in enumerate(header) if name == canonical]
        loose = [i for i, name in enumerate(header) if _column_key(name) == _column_key(canonical)]
        found = exact or loose
        if len(found) > 1:
            raise InputError(
                f"column {canonical!r} appears {len(found)} times in the header",
                where=where,
                fix="Keep one column of each name",
            )
        if found:
            resolved[canonical] = found[0]
        elif canonical in REQUIRED_COLUMNS:
            return canonical
    return resolved


def _missing_column(canonical: str, found: Sequence[str], where: str) -> InputError:
    shown = ", ".join(repr(name) for name in found) or "none"
    return InputError(
        f"column {canonical!r} is missing",
        where=where,
        fix=f"{_COLUMNS_HELP}; found columns: {shown}",
    )


def _table_questions(table: _Table) -> list[SourceQuestion]:
    columns: dict[str, _Key] | None = None
    if table.header is not None:
        resolved = _resolve_columns(table.header, table.where)
        if isinstance(resolved, str):
            raise _missing_column(resolved, table.header, table.where)
        # CSV rows are lists (by position); datasets rows are dicts (by name).
        as_names = bool(table.rows) and isinstance(table.rows[0], Mapping)
        columns = {k: table.header[int(v)] if as_names else v for k, v in resolved.items()}
    questions = []
    for index, row in enumerate(table.rows):
        row_columns = columns
        if row_columns is None:  # JSONL: each object names its own keys
            keys = [str(key) for key in row] if isinstance(row, Mapping) else []
            resolved = _resolve_columns(keys, f"{table.where}, {table.locate(index)}")
            if isinstance(resolved, str):
                raise _missing_column(resolved, keys, f"{table.where}, {table.locate(index)}")
            row_columns = {k: keys[int(v)] for k, v in resolved.items()}
        questions.append(_row_question(table, index, row, row_columns))
    return questions


def _cell(row: _Row, key: _Key | None) -> object:
    if key is None:
        return None
    if isinstance(row, Mapping):
        return row.get(str(key))
    return row[int(key)]


def _row_question(
    table: _Table, index: int, row: _Row, columns: Mapping[str, _Key]
) -> SourceQuestion:
    def where(column: str) -> str:
        return f"{table.where}, {table.locate(index)}, column {column!r}"

    question = _required_text(_cell(row, columns["question"]), where("question"), "question")
    a, b, c, d = (
        _required_text(_cell(row, columns[letter]), where(letter), f"option {letter}")
        for letter in SOURCE_LETTERS
    )
    raw_answer = _cell(row, columns["answer"])
    answer = _parse_answer(raw_answer)
    if answer is None:
        shown = "empty" if _is_blank(raw_answer) else repr(raw_answer)
        raise InputError(
            f"the answer is {shown}, not one of 1, 2, 3, 4",
            where=where("answer"),
            fix="The answer column holds the number of the correct option: "
            "1 = A, 2 = B, 3 = C, 4 = D",
        )
    category = _optional_text(_cell(row, columns.get("Category")), where("Category"))
    accuracy = _parse_accuracy(_cell(row, columns.get("Human Accuracy")), where("Human Accuracy"))
    try:
        return SourceQuestion(
            uid=f"{table.subject}/{table.split}/{index}",
            question=question,
            options=(a, b, c, d),
            answer=_LETTER_OF[answer],
            category=category,
            human_accuracy=accuracy,
            provenance=Provenance(
                dataset=table.dataset,
                subject=table.subject,
                split=table.split,
                row_index=index,
                original_answer=answer,
                license=table.license,
            ),
        )
    except ValidationError as exc:  # should not happen after the checks above; never a traceback
        raise InputError(
            f"the row is not a valid question: {exc.errors()[0]['msg']}",
            where=f"{table.where}, {table.locate(index)}",
        ) from exc


def _is_blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _as_text(value: object, where: str, what: str) -> str:
    if _is_blank(value):
        return ""
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)  # a JSON number used as an option, e.g. 100
    else:
        raise InputError(
            f"the {what} is a {type(value).__name__}, not text",
            where=where,
            fix=f"Write the {what} as a string",
        )
    if len(text) > MAX_FIELD_CHARS:
        raise InputError(
            f"the {what} is {len(text):,} characters long (the limit is {MAX_FIELD_CHARS:,})",
            where=where,
            fix="This is usually a broken quote that swallowed the following rows; "
            "check the quoting",
        )
    return text


def _required_text(value: object, where: str, what: str) -> str:
    text = _as_text(value, where, what)
    if not normalize_text(text):
        raise InputError(
            f"the {what} is empty",
            where=where,
            fix="Every row needs a question and four non-empty options A-D; "
            "fill it in or delete the row",
        )
    return text


def _optional_text(value: object, where: str) -> str | None:
    return _as_text(value, where, "category") or None


def _parse_answer(value: object) -> int | None:
    """KMMLU's answer (1..4) from an int, an integral float or a string like "2" or "2.0"."""
    number: int
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():  # also rejects NaN
            return None
        number = int(value)
    elif isinstance(value, str):
        match = _ANSWER_RE.fullmatch(value.strip())
        if match is None:
            return None
        number = int(match.group(1))
    else:
        return None
    return number if 1 <= number <= 4 else None


def _parse_accuracy(value: object, where: str) -> float | None:
    if _is_blank(value):
        return None
    accuracy = math.nan
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):  # reported below
            accuracy = float(value)
    if not 0.0 <= accuracy <= 1.0:
        raise InputError(
            f"Human Accuracy {value!r} is not a number between 0 and 1",
            where=where,
            fix="Write it as a fraction such as 0.62, or leave the cell empty",
        )
    return accuracy


def _duplicate_key(question: SourceQuestion) -> tuple[str, tuple[str, ...]]:
    # Option order does not make a question different.
    options = tuple(sorted(normalize_text(o).casefold() for o in question.options))
    return normalize_text(question.question).casefold(), options


def _drop_duplicates(questions: list[SourceQuestion]) -> list[SourceQuestion]:
    first: dict[tuple[str, tuple[str, ...]], SourceQuestion] = {}
    kept: list[SourceQuestion] = []
    dropped: list[SourceQuestion] = []
    conflicting = 0
    for question in questions:
        key = _duplicate_key(question)
        earlier = first.get(key)
        if earlier is None:
            first[key] = question
            kept.append(question)
            continue
        dropped.append(question)
        if (
            normalize_text(earlier.answer_text).casefold()
            != normalize_text(question.answer_text).casefold()
        ):
            conflicting += 1
    if dropped:
        examples = ", ".join(q.uid for q in dropped[:5]) + (", ..." if len(dropped) > 5 else "")
        conflict_note = f"; {conflicting} of them give a different answer" if conflicting else ""
        logger.warning(
            "skipped %d duplicate question(s) that repeat an earlier row's question and options "
            "(the first is kept)%s: %s",
            len(dropped),
            conflict_note,
            examples,
        )
    return kept
