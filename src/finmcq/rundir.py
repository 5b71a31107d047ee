"""Read a finished run directory back: its latest stats, items, training pairs and drops.

A run directory holds one set of output files per successful session, named by the session's
timestamp (``processing_stats_{ts}.json``, ``items_{ts}.jsonl``,
``final_training_data_{ts}.json``), plus ``finmcq.sqlite``. Reports and exports read the newest
*complete* set, so a later failed resume (which writes only its stats file) never hides the last
good dataset. Everything here only reads: the store is opened read-only and without the run lock,
so a report can be made while nothing else runs, and never changes the run.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from finmcq.engine.store import STORE_FILENAME
from finmcq.errors import InputError

_STATS_NAME = re.compile(r"^processing_stats_(?P<ts>\d{8}_\d{6})\.json$")

_BUILD_FIX = (
    "Point it at the --out folder of a `finmcq build` (or `finmcq demo`) that finished with "
    "'training pairs written'; if the build stopped early, rerun it with the same --out to resume"
)


@dataclass(frozen=True)
class RunFiles:
    """The paths of one complete output set in a run directory."""

    run_dir: Path
    timestamp: str
    stats: Path
    items: Path
    training_data: Path
    log: Path | None
    store: Path | None


def find_run(run_dir: Path) -> RunFiles:
    """The newest complete output set in ``run_dir``; ``InputError`` when there is none."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "does not exist" if not run_dir.exists() else "is not a folder"
        raise InputError(f"The run directory {run_dir} {what}", fix=_BUILD_FIX)
    stamps = sorted(
        (m["ts"] for p in run_dir.iterdir() if (m := _STATS_NAME.match(p.name))), reverse=True
    )
    if not stamps:
        raise InputError(
            f"{run_dir} is not a finished finmcq run: it has no processing_stats_*.json file",
            fix=_BUILD_FIX,
        )
    for ts in stamps:
        items = run_dir / f"items_{ts}.jsonl"
        training = run_dir / f"final_training_data_{ts}.json"
        if items.is_file() and training.is_file():
            log = run_dir / f"processing_{ts}.log"
            store = run_dir / STORE_FILENAME
            return RunFiles(run_dir=run_dir, timestamp=ts,
                            stats=run_dir / f"processing_stats_{ts}.json", items=items,
                            training_data=training, log=log if log.is_file() else None,
                            store=store if store.is_file() else None)
    raise InputError(
        f"{run_dir} is not a finished finmcq run: its newest stats file "
        f"(processing_stats_{stamps[0]}.json) has no items_{stamps[0]}.jsonl and "
        f"final_training_data_{stamps[0]}.json beside it, so the build did not deliver every "
        "question",
        fix=_BUILD_FIX,
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"Cannot read {path.name}: {exc}", where=str(path),
                         fix="The file is damaged; rerun the build with the same --out "
                         "to write it again (replies are reused at no cost)") from exc


@dataclass(frozen=True)
class DroppedItem:
    """One item a stage did not let through, with what is known of its question."""

    item_id: str
    stage: str
    reason: str
    detail: str
    question: str | None


class Run:
    """A finished run, loaded lazily: ``stats``, ``items`` and ``pairs`` as plain JSON data."""

    def __init__(self, files: RunFiles) -> None:
        self.files = files

    @property
    def run_dir(self) -> Path:
        return self.files.run_dir

    @property
    def timestamp(self) -> str:
        return self.files.timestamp

    @cached_property
    def stats(self) -> dict[str, Any]:
        stats = _read_json(self.files.stats)
        if not isinstance(stats, dict) or stats.get("status") != "complete":
            raise InputError(
                f"{self.files.stats.name} does not describe a complete build",
                where=str(self.files.stats), fix=_BUILD_FIX,
            )
        return stats

    @cached_property
    def items(self) -> list[dict[str, Any]]:
        """Everything about each delivered question, in delivery order."""
        try:
            lines = self.files.items.read_text("utf-8").splitlines()
            return [json.loads(line) for line in lines if line.strip()]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"Cannot read {self.files.items.name}: {exc}",
                             where=str(self.files.items), fix=_BUILD_FIX) from exc

    def iter_items(self) -> Iterator[dict[str, Any]]:
        """The items one at a time, without holding the file (for runs too big for memory)."""
        try:
            with self.files.items.open(encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"Cannot read {self.files.items.name}: {exc}",
                             where=str(self.files.items), fix=_BUILD_FIX) from exc

    @cached_property
    def pairs(self) -> list[dict[str, str]]:
        """The training pairs: two per item (step 1 → solution, step 2 → letter), item order."""
        pairs = _read_json(self.files.training_data)
        if not isinstance(pairs, list) or len(pairs) != 2 * len(self.items):
            raise InputError(
                f"{self.files.training_data.name} should hold 2 pairs per item of "
                f"{self.files.items.name} ({2 * len(self.items)}), it holds "
                f"{len(pairs) if isinstance(pairs, list) else 'no list of'} pairs",
                where=str(self.run_dir), fix=_BUILD_FIX,
            )
        return pairs

    def dropped(self) -> list[DroppedItem]:
        """Every drop recorded in the store (empty when the run has no store)."""
        if self.files.store is None:
            return []
        with _read_only(self.files.store) as db:
            rows = db.execute(
                "SELECT item_id, stage, reason, payload FROM outcomes WHERE status = 'dropped' "
                "ORDER BY item_id, stage").fetchall()
            return [DroppedItem(item_id=item_id, stage=stage, reason=reason or "",
                                detail=_detail(payload), question=question_of(db, item_id))
                    for item_id, stage, reason, payload in rows]


def load_run(run_dir: Path) -> Run:
    """The newest complete output set of ``run_dir``, with its stats validated up front."""
    run = Run(find_run(run_dir))
    _ = run.stats  # fail now, with the message, rather than halfway through a report
    return run


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the run store, closed on exit (sqlite3's ``with`` only commits)."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InputError(f"Cannot open the run store {path}: {exc}",
                         fix="Check that the file is readable") from exc
    try:
        yield db
    except sqlite3.Error as exc:
        raise InputError(f"Cannot read the run store {path}: {exc}",
                         fix="Check that the file is readable and not damaged") from exc
    finally:
        db.close()


def _detail(payload: str | None) -> str:
    if not payload:
        return ""
    try:
        value = json.loads(payload)
    except json.JSONDecodeError:
        return payload
    return str(value.get("detail", "")) if isinstance(value, dict) else str(value)


_INPUT_BLOCK = re.compile(r"<입력>\s*(?P<json>\{.*\})\s*</입력>", re.S)


def question_of(db: sqlite3.Connection, item_id: str) -> str | None:
    """The question a dropped item was about, from the stored LLM traffic of that item.

    A drafted item's question is in its rewrite/generate reply; a source question judged at
    relevance is in that request's input block. Failed calls are not stored, so a question may
    be unknown (``None``).
    """
    rows = db.execute(
        "SELECT stage, request_json, parsed_json FROM responses WHERE item_id = ? "
        "ORDER BY CASE stage WHEN 'rewrite' THEN 0 WHEN 'generate' THEN 0 ELSE 1 END, "
        "created_at", (item_id,)).fetchall()
    for _stage, request_json, parsed_json in rows:
        try:
            parsed = json.loads(parsed_json)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("question"), str):
            return str(parsed["question"])
        try:
            messages = json.loads(request_json).get("messages", [])
            match = _INPUT_BLOCK.search(messages[-1]["content"]) if messages else None
            question = json.loads(match["json"]).get("question") if match else None
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            question = None
        if isinstance(question, str):
            return question
    return None
