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

import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from finmcq import source_cache
from finmcq.errors import InputError
from finmcq.records import SourceQuestion
from finmcq.sources import prefill
from finmcq.sources.files import _csv_table, _decode, _file_table
from finmcq.sources.hub import _folder_tables, _hub_tables
from finmcq.sources.rows import (
    _HUB_ID_RE,
    _OTHER_SOURCES,
    _TEXT_SUFFIXES,
    DEFAULT_SOURCE,
    DEFAULT_SUBJECTS,
    FILE_SPLIT,
    HUB_CHECK_TIMEOUT_S,
    KMMLU_HUB_ID,
    KMMLU_SPLITS,
    MAX_FIELD_CHARS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    SAMPLE_DATASET,
    SAMPLE_LICENSE,
    SAMPLE_NAME,
    USER_FILE_LICENSE,
    _drop_duplicates,
    _single_label,
    _Table,
    _table_questions,
)

logger = logging.getLogger("finmcq.sources")

__all__ = [
    "DEFAULT_SOURCE",
    "DEFAULT_SUBJECTS",
    "FILE_SPLIT",
    "HUB_CHECK_TIMEOUT_S",
    "KMMLU_HUB_ID",
    "KMMLU_SPLITS",
    "MAX_FIELD_CHARS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "SAMPLE_DATASET",
    "SAMPLE_LICENSE",
    "SAMPLE_NAME",
    "USER_FILE_LICENSE",
    "describe_splits",
    "load_source",
]


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
        if cached is None and prefill.fill([(str(source), _listed(subject_names),
                                             _listed(split_names), deduplicate)]):
            cached = source_cache.load(key)  # a child loaded it: no datasets import here
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


def _listed(names: tuple[str, ...] | None) -> list[str] | None:
    return list(names) if names is not None else None


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
