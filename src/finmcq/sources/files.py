"""Single-file sources: a ``.csv`` or ``.jsonl`` file read and decoded into a table."""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path

from finmcq.errors import InputError
from finmcq.sources.rows import (
    _COLUMNS_HELP,
    _FILE_SUFFIXES,
    FILE_SPLIT,
    USER_FILE_LICENSE,
    _single_label,
    _Table,
)


def _file_table(
    path: Path, subjects: tuple[str, ...] | None, splits: tuple[str, ...] | None
) -> _Table:
    suffix = path.suffix.lower()
    if suffix not in _FILE_SUFFIXES:
        raise InputError(
            f"unsupported file type {path.suffix or '(none)'!r}",
            where=str(path),
            fix="Give a .csv or .jsonl file in KMMLU's columns, or a folder with the hub layout",
        )
    where = str(path)
    subject = _single_label(subjects, path.stem, "subject", where)
    split = _single_label(splits, FILE_SPLIT, "split", where)
    text = _read_text(path)
    if suffix == ".csv":
        return _csv_table(
            text,
            dataset=str(path),
            subject=subject,
            split=split,
            license=USER_FILE_LICENSE,
            where=where,
        )
    return _jsonl_table(
        text,
        dataset=str(path),
        subject=subject,
        split=split,
        license=USER_FILE_LICENSE,
        where=where,
    )


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InputError(
            f"cannot read {path}: {reason}", fix="Check the path and its permissions"
        ) from exc
    return _decode(raw, str(path))


def _decode(raw: bytes, where: str) -> str:
    """UTF-8 text of a file, without its BOM; InputError naming the first bad byte."""
    skipped = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        # Spreadsheet programs write a BOM; it must not end up glued to the first column name.
        text = raw[skipped:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = skipped + exc.start
        line = raw.count(b"\n", 0, offset) + 1
        fix = "Re-save the file as UTF-8"
        if _decodes_as(raw, "cp949"):
            fix = (
                "It looks like CP949/EUC-KR (common for Korean Excel exports): re-save it as "
                "UTF-8, e.g. `iconv -f cp949 -t utf-8 IN > OUT`"
            )
        raise InputError(
            "the file is not valid UTF-8 text",
            where=f"{where}, line {line}, byte {offset}",
            fix=fix,
        ) from exc
    if not text.strip():
        raise InputError(
            "the file is empty",
            where=where,
            fix=f"Give a file with a header row and questions. {_COLUMNS_HELP}",
        )
    return text


def _decodes_as(raw: bytes, encoding: str) -> bool:
    try:
        raw.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _csv_table(
    text: str, *, dataset: str, subject: str, split: str, license: str, where: str
) -> _Table:
    header, rows, lines = _parse_csv(text, where)
    if header is None:
        raise InputError("the file is empty", where=where, fix=_COLUMNS_HELP)
    if not rows:
        raise InputError(
            "the file has a header but no question rows",
            where=where,
            fix="Add at least one question row",
        )
    return _Table(
        dataset=dataset,
        subject=subject,
        split=split,
        license=license,
        where=where,
        header=header,
        rows=rows,
        locate=lambda index: f"line {lines[index]}",
    )


def _parse_csv(text: str, where: str) -> tuple[list[str] | None, list[list[str]], list[int]]:
    """Header, data rows and the line each row starts on (1-based, as an editor shows it)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    previous_end = 0
    try:
        for record in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if len(record) <= 1 and not "".join(record).strip():
                # A blank line, as pandas skips it too (row indices must agree with datasets);
                # a line of empty fields ",,,," is a row, reported as an empty question.
                continue
            if header is None:
                header = record
                continue
            if len(record) != len(header):
                raise InputError(
                    f"the row has {len(record)} fields but the header has {len(header)}",
                    where=f"{where}, line {start}",
                    fix="Quote any field that contains a comma or a line break, and give every "
                    "row the same columns as the header",
                )
            rows.append(record)
            lines.append(start)
    except csv.Error as exc:
        # The stdlib's own size limit (128 Ki characters) is what trips on a runaway field.
        if "field larger than field limit" in str(exc):
            raise InputError(
                "a field is too long to be a question or an option",
                where=f"{where}, row starting at line {previous_end + 1}",
                fix="This is usually an unclosed quote that swallowed the following lines; "
                "check the quotes around this row",
            ) from exc
        raise InputError(
            f"the file is not valid CSV: {exc}",
            where=f"{where}, line {reader.line_num}",
            fix="Check the quoting around this line",
        ) from exc
    return header, rows, lines


def _jsonl_table(
    text: str, *, dataset: str, subject: str, split: str, license: str, where: str
) -> _Table:
    rows: list[dict[str, object]] = []
    lines: list[int] = []
    # Split on newlines only: splitlines() would also cut at U+2028, which JSON allows in strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"the line is not valid JSON: {exc.msg}",
                where=f"{where}, line {number}, column {exc.colno}",
                fix="Each line must hold one JSON object such as "
                '{"question": "...", "answer": 1, "A": "...", "B": "...", "C": "...", "D": "..."}',
            ) from exc
        if not isinstance(value, dict):
            raise InputError(
                f"the line holds a JSON {type(value).__name__}, not an object",
                where=f"{where}, line {number}",
                fix="Each line must hold one JSON object with the keys "
                "question, answer, A, B, C, D",
            )
        rows.append(value)
        lines.append(number)
    if not rows:
        raise InputError("the file has no JSON lines", where=where, fix="Add at least one question")
    return _Table(
        dataset=dataset,
        subject=subject,
        split=split,
        license=license,
        where=where,
        header=None,
        rows=rows,
        locate=lambda index: f"line {lines[index]}",
    )


