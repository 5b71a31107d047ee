"""Benchmark questions for the contamination check, and where they come from (no numpy).

What a delivered item is compared against (:class:`BenchmarkQuestion`), what a match reports
(:class:`ContaminationHit`) and how benchmarks are read: the KMMLU test splits of the
finance-adjacent subjects from the run's ``--source``, and the files named with
``--contamination-against``. The index that compares them lives in
:mod:`finmcq.quality.contamination`; this module imports no numpy, so a build can start its first
requests before numpy is loaded (issue 12: the first request within 2 s).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finmcq.errors import InputError

FINANCE_ADJACENT_SUBJECTS: tuple[str, ...] = (
    "Economics", "Management", "Accounting", "Taxation", "Marketing", "Real-Estate",
)
_TEXT_FIELDS = ("question", "prompt", "instruction", "input", "stem")
_OPTION_FIELDS = ("A", "B", "C", "D", "E", "F", "G")


@dataclass(frozen=True)
class BenchmarkQuestion:
    """One test question to compare against, with where it came from."""

    benchmark: str  # e.g. "KMMLU/Economics/test" or a file name
    ref: str  # row id within the benchmark
    text: str  # question and options
    stem: str = ""  # the question alone, when it has options


@dataclass(frozen=True)
class ContaminationHit:
    """The benchmark question a delivered item overlaps most, and by how much."""

    benchmark: str
    ref: str
    overlap: float


def item_text(question: str, options: Sequence[str]) -> str:
    """The text of an item or benchmark question as contamination compares it."""
    return "\n".join([question, *options])


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def is_single_file(source: str) -> bool:
    if source.strip() == "sample":
        return True
    path = Path(source).expanduser()
    return path.is_file()


def _from_source(source: str, subjects: Sequence[str]) -> tuple[list[BenchmarkQuestion],
                                                                list[dict[str, Any]], list[str]]:
    """KMMLU test questions of ``subjects`` from a hub id or a local folder in the hub layout."""
    from finmcq.sources import load_source, prefill  # pydantic records: not on the start path

    found: list[BenchmarkQuestion] = []
    described: list[dict[str, Any]] = []
    notes: list[str] = []
    if is_single_file(source):
        notes.append(f"source {source!r} is a single file or the bundled sample: it has no KMMLU "
                     "test split, so only --contamination-against files were compared")
        return found, described, notes
    if Path(source).expanduser().is_dir():  # every subject in one child process (prefill.py)
        prefill.fill([(source, [subject], ["test"], False) for subject in subjects])
    for subject in subjects:
        try:
            rows = load_source(source, [subject], ["test"], deduplicate=False)
        except InputError as exc:
            notes.append(f"KMMLU {subject} test split not available from {source}: {exc}")
            continue
        except Exception as exc:  # e.g. no network for a hub id: report, do not fail the build
            notes.append(f"KMMLU {subject} test split could not be loaded from {source}: {exc}")
            continue
        name = f"KMMLU/{subject}/test"
        found.extend(BenchmarkQuestion(name, q.uid, item_text(q.question, q.options),
                                       q.question) for q in rows)
        described.append({"benchmark": name, "source": source, "questions": len(rows)})
    return found, described, notes


def _records_of(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON / JSONL / CSV file, or one record per non-empty line of a text file."""
    text = path.read_text("utf-8-sig")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if suffix == ".json":
        data = json.loads(text)
        rows = data if isinstance(data, list) else data.get("data", data.get("rows", [data]))
        return [r if isinstance(r, dict) else {"question": str(r)} for r in rows]
    if suffix in (".csv", ".tsv"):
        return list(csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ","))
    return [{"question": line} for line in text.splitlines() if line.strip()]


def _lenient(path: Path) -> list[BenchmarkQuestion]:
    """Questions from a file that is not in KMMLU's columns (e.g. a KRX sample set)."""
    out: list[BenchmarkQuestion] = []
    for row, record in enumerate(_records_of(path)):
        if not isinstance(record, dict):
            continue
        stem = next((str(record[k]) for k in _TEXT_FIELDS if record.get(k)), "")
        options = [str(record[k]) for k in _OPTION_FIELDS if record.get(k)]
        if stem:
            out.append(BenchmarkQuestion(path.name, f"{path.name}/{row}",
                                         item_text(stem, options), stem))
    return out


def _from_file(path: Path) -> list[BenchmarkQuestion]:
    from finmcq.sources import load_source

    try:
        rows = load_source(path, deduplicate=False)
    except InputError:
        return _lenient(path)
    return [BenchmarkQuestion(path.name, q.uid, item_text(q.question, q.options), q.question)
            for q in rows]
