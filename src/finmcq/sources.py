"""Read KMMLU-format multiple-choice questions into ``SourceQuestion`` records.

``load_source`` accepts four kinds of source:

* a hub id, ``HAERAE-HUB/KMMLU`` by default: downloaded with ``datasets.load_dataset``;
* a local folder with the hub repository's layout (a ``README.md`` dataset card whose YAML
  ``configs`` list names the data files, e.g. ``data/Economics-train.csv``): loaded with
  ``datasets.load_dataset`` as well, which reads such a folder without touching the network;
* a single ``.csv`` or ``.jsonl`` file in KMMLU's columns;
* ``sample``: the small sample bundled with finmcq (``finmcq/data/sample_finance.csv``).

Columns are found by header name (``question, answer, A, B, C, D`` required; ``Category`` and
``Human Accuracy`` optional), never by position. Everything is read and validated before
``load_source`` returns, so bad input stops the run before any LLM call, with an
``InputError`` that names the file, the line and the column.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import difflib
import functools
import importlib
import io
import json
import logging
import math
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from finmcq import source_cache
from finmcq.errors import InputError
from finmcq.records import (
    KMMLU_LICENSE,
    SOURCE_LETTERS,
    Provenance,
    SourceLetter,
    SourceQuestion,
    normalize_text,
)

logger = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def load_source(
    source: str | Path = DEFAULT_SOURCE,
    subjects: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    *,
    cache_dir: str | Path | None = None,
    deduplicate: bool = True,
) -> list[SourceQuestion]:
    """Read, validate and de-duplicate every question of ``source``.

    ``source`` is a hub id (default ``HAERAE-HUB/KMMLU``), a folder with the hub layout, a
    ``.csv``/``.jsonl`` file, or ``"sample"``. A ``Path`` is always taken as a local path.

    For the hub and folders, ``subjects`` are config names (default ``("Economics",)``) and
    ``splits`` split names (default: ``train, dev, test``). A single file or the sample is one
    subject and one split: by default its file stem and ``"file"``; one value given in
    ``subjects``/``splits`` relabels it, more than one is an error. Pass ``None`` when the
    user did not choose, so that a file is not mislabelled with KMMLU's defaults.

    Rows are returned in source order (subjects, then splits, then rows, as requested).
    Repeated questions (same question and options, in any order) are dropped after the first
    and counted in a logged warning; ``deduplicate=False`` keeps them. ``cache_dir`` is the
    ``datasets`` cache for hub downloads (default: the Hugging Face default); local folders
    are always read afresh.

    Raises ``InputError`` for anything wrong with the input, before returning anything.
    """
    subject_names = _clean_names(subjects, "subject")
    split_names = _clean_names(splits, "split")
    key = _cache_key(source, subject_names, split_names, deduplicate)
    if key is not None:  # a local folder: maybe loaded before (see source_cache.py)
        cached = source_cache.load(key)
        if cached is not None:
            return cached
        recorder = source_cache.WarningRecorder()
        logger.addHandler(recorder)
    try:
        tables = _read_tables(source, subject_names, split_names, cache_dir)
        questions = [question for table in tables for question in _table_questions(table)]
        questions = _drop_duplicates(questions) if deduplicate else questions
    finally:
        if key is not None:
            logger.removeHandler(recorder)
    if key is not None:
        source_cache.save(key, questions, recorder.messages)
    return questions


def _cache_key(source: str | Path, subjects: tuple[str, ...] | None,
               splits: tuple[str, ...] | None, deduplicate: bool) -> str | None:
    if isinstance(source, str) and source.strip() in (SAMPLE_NAME, ""):
        return None
    try:
        folder = Path(str(source).strip()).expanduser()
        if not folder.is_dir():
            return None
    except OSError:
        return None
    return source_cache.folder_key(folder, subjects, splits, deduplicate)


def describe_splits(splits: Sequence[str]) -> str | None:
    """A warning to show when ``splits`` include KMMLU's test split, else ``None``."""
    if "test" not in splits:
        return None
    return (
        "the 'test' split is included: training on a benchmark's test split contaminates it, "
        "so a model tuned on this data can no longer be evaluated fairly on KMMLU; "
        "leave out 'test' unless that is intended"
    )


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


def _clean_names(values: Sequence[str] | None, kind: str) -> tuple[str, ...] | None:
    if values is None:
        return None
    if isinstance(values, str):  # a bare string would otherwise be split into characters
        values = (values,)
    cleaned = tuple(dict.fromkeys(value.strip() for value in values))
    if not cleaned or "" in cleaned:
        raise InputError(f"an empty {kind} name was given", fix=f"Name at least one {kind}")
    return cleaned


def _read_tables(
    source: str | Path,
    subjects: tuple[str, ...] | None,
    splits: tuple[str, ...] | None,
    cache_dir: str | Path | None,
) -> list[_Table]:
    if isinstance(source, str) and source.strip() == SAMPLE_NAME:
        return [_sample_table(subjects, splits)]
    text = str(source).strip()
    if not text:
        raise InputError(
            "the source is empty", fix=f"Give a hub id, a folder or a file; or {_OTHER_SOURCES}"
        )
    path = Path(text).expanduser()
    try:
        exists = path.exists()
        is_dir = path.is_dir()
        is_file = path.is_file()
    except OSError as exc:  # e.g. a name too long for the file system
        raise InputError(f"cannot access {path}: {exc}", fix="Check the path") from exc
    if is_dir:
        return _folder_tables(path, subjects, splits)
    if is_file:
        return [_file_table(path, subjects, splits)]
    if exists:
        raise InputError(
            f"{path} is neither a file nor a folder", fix="Give a .csv/.jsonl file or a folder"
        )
    if (
        isinstance(source, str)
        and _HUB_ID_RE.fullmatch(text)
        and not text.lower().endswith(_TEXT_SUFFIXES)
    ):
        return _hub_tables(text, subjects, splits, cache_dir)
    raise InputError(
        f"source {text!r} does not exist",
        fix=f"Check the path; or give a hub id such as {KMMLU_HUB_ID}; or {_OTHER_SOURCES}",
    )


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


# --------------------------------------------------------------------------------------------
# Single files and the bundled sample
# --------------------------------------------------------------------------------------------


def _sample_table(subjects: tuple[str, ...] | None, splits: tuple[str, ...] | None) -> _Table:
    resource = resources.files("finmcq") / "data" / "sample_finance.csv"
    where = "the bundled sample (finmcq/data/sample_finance.csv)"
    try:
        raw = resource.read_bytes()
    except OSError as exc:  # a broken installation, not a user mistake, but say so plainly
        raise InputError(
            "the bundled sample is missing", where=where, fix="Reinstall finmcq"
        ) from exc
    return _csv_table(
        _decode(raw, where),
        dataset=SAMPLE_DATASET,
        subject=_single_label(subjects, "sample_finance", "subject", where),
        split=_single_label(splits, FILE_SPLIT, "split", where),
        license=SAMPLE_LICENSE,
        where=where,
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


# --------------------------------------------------------------------------------------------
# Hub and folders with the hub layout, through `datasets`
# --------------------------------------------------------------------------------------------


def _datasets() -> Any:
    # Imported on first use: it is slow to import and not needed for files or the sample.
    # (import_module also keeps mypy off this untyped package.)
    return importlib.import_module("datasets")


def _hub_tables(
    hub_id: str,
    subjects: tuple[str, ...] | None,
    splits: tuple[str, ...] | None,
    cache_dir: str | Path | None,
) -> list[_Table]:
    is_kmmlu = hub_id.lower() == KMMLU_HUB_ID.lower()
    subjects = subjects or DEFAULT_SUBJECTS
    splits = splits or KMMLU_SPLITS
    if is_kmmlu:  # KMMLU's splits are known: a typo should not wait for the network
        _check_names(splits, KMMLU_SPLITS, "split", where=hub_id)
    datasets = _datasets()
    offline = bool(datasets.config.HF_HUB_OFFLINE)
    # huggingface_hub retries an unreachable hub with back-off (about 25 s, longer when
    # packets are dropped); one short request first makes the common failure quick.
    if not offline and not _hub_reachable(str(datasets.config.HF_ENDPOINT)):
        raise _hub_unreachable(hub_id, str(datasets.config.HF_ENDPOINT), is_kmmlu)
    license = KMMLU_LICENSE if is_kmmlu else f"unknown (hub dataset {hub_id})"
    tables: list[_Table] = []
    for subject in subjects:
        splits_of = _load_with_datasets(
            hub_id, subject, hub=True, cache_dir=cache_dir, csv_options=True
        )
        for split in splits:
            if split not in splits_of:
                _check_names(
                    (split,), tuple(splits_of), "split", where=f"{hub_id}, subject {subject}"
                )
            where = f"{hub_id}, subject {subject}, split {split}"
            tables.append(
                _datasets_table(
                    splits_of[split], hub_id, subject, split, license, where, locate=_hub_row
                )
            )
    return tables


def _hub_row(index: int) -> str:
    return f"row {index} (0-based)"


def _hub_reachable(endpoint: str) -> bool:
    from huggingface_hub import get_session

    try:
        # Any HTTP answer, even an error status, proves the hub can be reached.
        get_session().head(endpoint, timeout=HUB_CHECK_TIMEOUT_S)
    except Exception:  # connection refused, DNS failure, timeout, proxy error ...
        return False
    return True


def _hub_unreachable(hub_id: str, endpoint: str, is_kmmlu: bool) -> InputError:
    fix = f"Check the network, or {_OTHER_SOURCES}"
    if not is_kmmlu:
        fix += f" (no local file or folder is named {hub_id!r} either)"
    fix += "; if the dataset is already in your Hugging Face cache, set HF_HUB_OFFLINE=1"
    return InputError(
        f"could not reach the Hugging Face hub to download {hub_id}", where=endpoint, fix=fix
    )


def _folder_tables(
    folder: Path, subjects: tuple[str, ...] | None, splits: tuple[str, ...] | None
) -> list[_Table]:
    configs, license = _read_card(folder)
    present = {
        name: files
        for name, files in configs.items()
        if all(_data_files(folder, patterns) for patterns in files.values())
    }
    subjects = subjects or DEFAULT_SUBJECTS
    for subject in subjects:
        if subject in configs and subject not in present:
            missing = [
                p
                for patterns in configs[subject].values()
                for p in patterns
                if not _data_files(folder, [p])
            ]
            raise InputError(
                f"subject {subject!r} is listed in the dataset card but its data files are missing",
                where=f"{folder}: {', '.join(missing)}",
                fix=f"Subjects with data in this folder: {', '.join(present) or 'none'}",
            )
        _check_names((subject,), tuple(present), "subject", where=str(folder))
    tables: list[_Table] = []
    for subject in subjects:
        wanted = splits or tuple(configs[subject])
        _check_names(wanted, tuple(configs[subject]), "split", where=f"{folder}, subject {subject}")
        files = {split: _data_files(folder, configs[subject][split]) for split in wanted}
        for paths in files.values():
            for path in paths:
                _precheck_data_file(path)
        csv_only = all(p.suffix.lower() == ".csv" for paths in files.values() for p in paths)
        splits_of = _load_with_datasets(
            str(folder), subject, hub=False, cache_dir=None, csv_options=csv_only
        )
        for split in wanted:
            paths = files[split]
            where = ", ".join(str(p) for p in paths)
            locate = _file_locator(paths[0]) if len(paths) == 1 and csv_only else _data_row
            tables.append(
                _datasets_table(
                    splits_of[split], str(folder), subject, split, license, where, locate=locate
                )
            )
    return tables


def _precheck_data_file(path: Path) -> None:
    """Catch a bad file before pandas does: its errors name neither the file nor the fix."""
    suffix = path.suffix.lower()
    if suffix not in _TEXT_SUFFIXES:
        return  # parquet, arrow ...: left to datasets
    text = _read_text(path)  # encoding and emptiness, with the line of the first bad byte
    if suffix != ".csv":
        return
    where = str(path)
    header, rows, _ = _parse_csv(text, where)  # quoting and field counts, with line numbers
    resolved = _resolve_columns(header or [], where)
    if isinstance(resolved, str):
        # datasets would only say that the splits' columns differ, without naming the file
        raise _missing_column(resolved, header or [], where)
    if not rows:
        raise InputError(
            "the file has a header but no question rows",
            where=where,
            fix="Add at least one question row",
        )


def _read_card(folder: Path) -> tuple[dict[str, dict[str, list[str]]], str]:
    """The card's configs (subject -> split -> file patterns) and the license to record."""
    from huggingface_hub.repocard import metadata_load

    card = folder / "README.md"
    layout_fix = (
        "Expected a folder with the hub repository's layout: a README.md dataset card whose YAML "
        "header lists `configs` (as HAERAE-HUB/KMMLU's card does), with the files it names "
        "(data/{Subject}-{split}.csv). If this is the data/ folder of such a copy, give its "
        f"parent folder; otherwise {_OTHER_SOURCES}"
    )
    if not card.is_file():
        raise InputError(f"{folder} has no dataset card (README.md)", fix=layout_fix)
    try:
        meta = metadata_load(card)
    except Exception as exc:  # unreadable file, bad YAML, not a mapping
        raise InputError(
            f"cannot read the dataset card's YAML header: {exc}", where=str(card), fix=layout_fix
        ) from exc
    configs: dict[str, dict[str, list[str]]] = {}
    for entry in (meta or {}).get("configs") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("config_name"), str):
            continue
        splits = _card_splits(entry.get("data_files"))
        if splits:
            configs[entry["config_name"]] = splits
    if not configs:
        raise InputError(
            f"{folder} has no `configs` list in its dataset card", where=str(card), fix=layout_fix
        )
    card_license = (meta or {}).get("license")
    if isinstance(card_license, list):
        card_license = ", ".join(str(item) for item in card_license)
    if isinstance(card_license, str) and card_license.lower() == "cc-by-nd-4.0":
        license = KMMLU_LICENSE
    elif card_license:
        license = str(card_license)
    else:
        license = f"unknown (no license in {card})"
    return configs, license


def _card_splits(data_files: object) -> dict[str, list[str]]:
    """Split -> file patterns, from the forms a card's ``data_files`` may take."""
    if isinstance(data_files, str):
        return {"train": [data_files]}
    if not isinstance(data_files, list):
        return {}
    if all(isinstance(item, str) for item in data_files):
        return {"train": [str(item) for item in data_files]} if data_files else {}
    splits: dict[str, list[str]] = {}
    for item in data_files:
        if isinstance(item, dict) and isinstance(item.get("split"), str):
            paths = item.get("path")
            patterns = (
                [paths]
                if isinstance(paths, str)
                else [p for p in paths or [] if isinstance(p, str)]
            )
            splits.setdefault(item["split"], []).extend(patterns)
    return splits


def _data_files(folder: Path, patterns: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        if any(char in pattern for char in "*?["):
            files.extend(sorted(p for p in folder.glob(pattern) if p.is_file()))
        elif (folder / pattern).is_file():
            files.append(folder / pattern)
    return files


def _data_row(index: int) -> str:
    return f"data row {index + 1}"


def _file_locator(path: Path) -> Callable[[int], str]:
    """Row index -> "line N" of ``path``; the file is parsed again only if a row is bad."""

    @functools.cache
    def lines() -> list[int]:
        try:
            return _parse_csv(_read_text(path), str(path))[2]
        except InputError:
            return []

    def locate(index: int) -> str:
        starts = lines()
        return f"line {starts[index]}" if index < len(starts) else _data_row(index)

    return locate


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    datasets = _datasets()
    was_disabled = bool(datasets.are_progress_bars_disabled())
    datasets.disable_progress_bars()  # a few small CSVs: bars would only clutter the CLI output
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _load_with_datasets(
    path: str, subject: str, *, hub: bool, cache_dir: str | Path | None, csv_options: bool
) -> dict[str, _Split]:
    """Split -> (columns, rows) of ``datasets.load_dataset(path, subject)``.

    Every failure becomes an InputError.
    """
    with contextlib.ExitStack() as stack:
        if hub:
            cache = str(cache_dir) if cache_dir is not None else None
        else:
            # datasets keys a local folder's cache on the folder's *name* and the config only
            # (seen with datasets 5.2): an edited file, or another folder of the same name,
            # would be served stale from the cache. A throwaway cache makes every load read
            # the files themselves; they are small.
            cache = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="finmcq-datasets-", ignore_cleanup_errors=True)
            )
        return _load_rows(path, subject, hub=hub, cache_dir=cache, csv_options=csv_options)


def _load_rows(
    path: str, subject: str, *, hub: bool, cache_dir: str | None, csv_options: bool
) -> dict[str, _Split]:
    datasets = _datasets()
    kwargs: dict[str, Any] = {}
    if cache_dir is not None:
        kwargs["cache_dir"] = cache_dir
    if csv_options:
        # Read every cell as the text in the file: otherwise pandas turns an all-numeric option
        # column into numbers ("0.50" -> 0.5) and the words "NA"/"null" into missing values.
        kwargs["keep_default_na"] = False
        kwargs["converters"] = {name: str for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)}
    where = f"{path}, subject {subject}"
    try:
        with _quiet_progress():
            loaded = datasets.load_dataset(path, subject, **kwargs)
            return {
                str(split): ([str(c) for c in data.column_names], data.to_list())
                for split, data in loaded.items()
            }
    except InputError:
        raise
    except ConnectionError as exc:  # includes huggingface_hub's OfflineModeIsEnabled
        if datasets.config.HF_HUB_OFFLINE:
            raise InputError(
                f"{path} is not in the local Hugging Face cache and offline mode is on",
                where="HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set",
                fix=f"Unset it to download the data, or {_OTHER_SOURCES}",
            ) from exc
        raise _hub_unreachable(
            path, str(datasets.config.HF_ENDPOINT), path == KMMLU_HUB_ID
        ) from exc
    except ValueError as exc:
        match = re.search(r"BuilderConfig '(.*?)' not found\. Available: \[(.*?)\]", str(exc))
        if match is None:
            raise InputError(f"cannot load {where}: {exc}", fix=_check_fix(hub)) from exc
        available = tuple(name.strip().strip("'\"") for name in match.group(2).split(","))
        _check_names((subject,), available, "subject", where=path)
        raise InputError(f"cannot load {where}: {exc}", fix=_check_fix(hub)) from exc
    except datasets.exceptions.DatasetNotFoundError as exc:
        raise InputError(
            f"dataset {path} was not found on the Hugging Face hub",
            fix=f"Check the hub id, or {_OTHER_SOURCES}",
        ) from exc
    except FileNotFoundError as exc:
        if hub and "LocalEntryNotFoundError" in str(exc):  # the hub did not answer usefully
            raise _hub_unreachable(
                path, str(datasets.config.HF_ENDPOINT), path == KMMLU_HUB_ID
            ) from exc
        raise InputError(f"cannot load {where}: {exc}", fix=_check_fix(hub)) from exc
    except datasets.exceptions.DatasetGenerationError as exc:
        cause = exc.__cause__ or exc
        raise InputError(
            f"cannot parse the data files of {where}: {type(cause).__name__}: {cause}",
            fix="Check that every file is a valid CSV with KMMLU's columns",
        ) from exc
    except Exception as exc:  # anything else from datasets/pandas/pyarrow: no raw traceback
        raise InputError(
            f"cannot load {where}: {type(exc).__name__}: {exc}", fix=_check_fix(hub)
        ) from exc


def _check_fix(hub: bool) -> str:
    if hub:
        return f"Check the hub id and subject, or {_OTHER_SOURCES}"
    return "Check the folder's README.md configs and data files"


def _datasets_table(
    data: _Split,
    name: str,
    subject: str,
    split: str,
    license: str,
    where: str,
    *,
    locate: Callable[[int], str],
) -> _Table:
    header, rows = data
    if not rows:
        raise InputError("the split has no question rows", where=where, fix="Check the data file")
    return _Table(
        dataset=name,
        subject=subject,
        split=split,
        license=license,
        where=where,
        header=header,
        rows=rows,
        locate=locate,
    )


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


# --------------------------------------------------------------------------------------------
# Validation: raw rows -> SourceQuestion
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Duplicates
# --------------------------------------------------------------------------------------------


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
