"""Review decisions: the tables in the run store, the audit trail, and what a rebuild honours.

Two tables live beside the engine's in ``finmcq.sqlite`` and are created here on open (a small
migration, versioned by ``meta.review_schema_version``):

* ``review_actions`` — the audit trail: one row per action (accept, reject, edit, comment) with
  its time, the item, a reason or comment, and for an edit the item before and after. Rows are
  only ever added.
* ``review_state`` — the latest decision per item (accepted / rejected / none) and its edit, so
  the page and the build read the current state with one indexed lookup.

Each action is one SQLite transaction that writes both, so a crash or a reload never shows an
action without its state. The review opens its own connection with a busy timeout and takes no
run lock: the page may stay open while ``finmcq build`` reruns in another terminal.

:class:`ReviewDecisions` is what the pipeline consults (read-only): which delivered items were
rejected (their slots get a new generation), and which were accepted or edited (their slots keep
that delivery, with the edit applied, and are never regenerated).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from finmcq.engine.store import STORE_FILENAME
from finmcq.errors import InputError
from finmcq.records import LETTERS

REVIEW_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS review_actions (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      REAL NOT NULL,
    item_id TEXT NOT NULL,
    action  TEXT NOT NULL CHECK (action IN ('accept', 'reject', 'edit', 'comment')),
    reason  TEXT,
    payload TEXT
);
CREATE INDEX IF NOT EXISTS review_actions_item ON review_actions(item_id, id);
CREATE TABLE IF NOT EXISTS review_state (
    item_id    TEXT PRIMARY KEY,
    slot_id    TEXT NOT NULL,
    decision   TEXT CHECK (decision IN ('accepted', 'rejected')),
    reason     TEXT,
    edit       TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS review_state_slot ON review_state(slot_id);
"""

Action = Literal["accept", "reject", "edit", "comment"]
ReviewState = Literal["unreviewed", "accepted", "edited", "rejected"]


def slot_of(item_id: str) -> str:
    """The slot an item id belongs to: ``s000012.3r`` → ``s000012``."""
    return item_id.rsplit(".", 1)[0]


@dataclass(frozen=True)
class ItemEdit:
    """A reviewer's version of an item: stem, the 7 options in order, the key, maybe a solution.

    ``solution`` is None when the reviewer left the solution alone; the build then keeps it, or
    re-solves the item when the key or the options changed.
    """

    question: str
    options: tuple[str, ...]
    answer: str
    solution: str | None = None

    def to_json(self) -> str:
        return json.dumps({"question": self.question, "options": list(self.options),
                           "answer": self.answer, "solution": self.solution},
                          ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ItemEdit:
        data = json.loads(text)
        options = data["options"]
        if isinstance(options, dict):
            options = [options[ch] for ch in LETTERS]
        return cls(question=str(data["question"]), options=tuple(str(o) for o in options),
                   answer=str(data["answer"]), solution=data.get("solution"))


def state_of(decision: str | None, edit: str | None) -> ReviewState:
    """The state shown for an item: a rejection wins, an edit is an acceptance as edited."""
    if decision == "rejected":
        return "rejected"
    if edit:
        return "edited"
    return "accepted" if decision == "accepted" else "unreviewed"


def open_review_db(run_dir: Path) -> sqlite3.Connection:
    """A read-write connection to the run store with the review tables in place."""
    path = Path(run_dir) / STORE_FILENAME
    if not path.is_file():
        raise InputError(f"{run_dir} has no {STORE_FILENAME}",
                         fix="Review the --out folder of a finished `finmcq build`")
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=10000")
        db.executescript(_SCHEMA)
        db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('review_schema_version', ?)",
                   (str(REVIEW_SCHEMA_VERSION),))
    except sqlite3.Error as exc:
        raise InputError(f"Cannot open the run store {path} for review: {exc}",
                         fix="Check that the file is writable and not damaged") from None
    return db


class ReviewLog:
    """Writes review actions: the audit row and the item's state, in one transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def record(self, item_id: str, action: Action, *, reason: str | None = None,
               edit: ItemEdit | None = None, before: dict[str, Any] | None = None,
               also: Callable[[sqlite3.Connection, ReviewState], None] | None = None) -> float:
        """Save one action now; returns its time (seconds since the epoch).

        ``also`` runs inside the same transaction with the item's new state (the page's index
        keeps its state column in step this way).
        """
        now = time.time()
        payload = None
        if edit is not None:
            payload = json.dumps({"before": before, "after": json.loads(edit.to_json())},
                                 ensure_ascii=False)
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO review_actions(ts, item_id, action, reason, payload) "
                       "VALUES (?, ?, ?, ?, ?)", (now, item_id, action, reason, payload))
            db.execute("INSERT OR IGNORE INTO review_state(item_id, slot_id, updated_at) "
                       "VALUES (?, ?, ?)", (item_id, slot_of(item_id), now))
            if action == "accept":
                db.execute("UPDATE review_state SET decision = 'accepted', reason = NULL, "
                           "updated_at = ? WHERE item_id = ?", (now, item_id))
            elif action == "reject":
                db.execute("UPDATE review_state SET decision = 'rejected', reason = ?, "
                           "updated_at = ? WHERE item_id = ?", (reason, now, item_id))
            elif action == "edit":
                assert edit is not None
                db.execute("UPDATE review_state SET decision = 'accepted', reason = NULL, "
                           "edit = ?, updated_at = ? WHERE item_id = ?",
                           (edit.to_json(), now, item_id))
            else:
                db.execute("UPDATE review_state SET updated_at = ? WHERE item_id = ?",
                           (now, item_id))
            if also is not None:
                decision, edited = db.execute("SELECT decision, edit FROM review_state WHERE "
                                              "item_id = ?", (item_id,)).fetchone()
                also(db, state_of(decision, edited))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return now

    def state(self, item_id: str) -> tuple[ReviewState, str | None, ItemEdit | None]:
        """The item's state, the rejection reason and the edit (if any)."""
        row = self.db.execute("SELECT decision, reason, edit FROM review_state "
                              "WHERE item_id = ?", (item_id,)).fetchone()
        if row is None:
            return "unreviewed", None, None
        decision, reason, edit = row
        return (state_of(decision, edit), reason,
                ItemEdit.from_json(edit) if edit else None)

    def history(self, item_id: str) -> list[dict[str, Any]]:
        """Every action on the item, oldest first (the audit trail)."""
        rows = self.db.execute("SELECT ts, action, reason, payload FROM review_actions "
                               "WHERE item_id = ? ORDER BY id", (item_id,)).fetchall()
        return [{"ts": ts, "action": action, "reason": reason,
                 "payload": json.loads(payload) if payload else None}
                for ts, action, reason, payload in rows]


@dataclass
class ReviewDecisions:
    """The review as the build reads it: per item, accepted (maybe edited) or rejected."""

    rejected: dict[str, str] = field(default_factory=dict)  # item id → reason
    kept: dict[str, tuple[str, ItemEdit | None]] = field(default_factory=dict)  # slot → item
    rejected_per_slot: Counter[str] = field(default_factory=Counter)

    @classmethod
    def load(cls, run_dir: Path) -> ReviewDecisions:
        """Read the decisions from the run store; empty when nothing was ever reviewed."""
        path = Path(run_dir) / STORE_FILENAME
        decisions = cls()
        if not path.is_file():
            return decisions
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            has = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                             "AND name = 'review_state'").fetchone()
            if not has:
                return decisions
            rows = db.execute("SELECT item_id, slot_id, decision, reason, edit FROM "
                              "review_state WHERE decision IS NOT NULL "
                              "ORDER BY updated_at, item_id").fetchall()
        finally:
            db.close()
        for item_id, slot_id, decision, reason, edit in rows:
            if decision == "rejected":
                decisions.rejected[item_id] = reason or ""
                decisions.rejected_per_slot[slot_id] += 1
            else:  # the latest accepted item of a slot is the one kept
                decisions.kept[slot_id] = (item_id, ItemEdit.from_json(edit) if edit else None)
        return decisions

    def __bool__(self) -> bool:
        return bool(self.rejected or self.kept)

    def is_rejected(self, item_id: str) -> bool:
        return item_id in self.rejected

    def protects(self, item_id: str) -> bool:
        """Whether a reviewer accepted this item (as is or edited): the build must keep it."""
        kept = self.kept.get(slot_of(item_id))
        return kept is not None and kept[0] == item_id

    def summary(self) -> dict[str, int]:
        edited = sum(1 for _item, edit in self.kept.values() if edit is not None)
        return {"reviewed": len(self.rejected) + len(self.kept),
                "accepted": len(self.kept) - edited, "edited": edited,
                "rejected": len(self.rejected)}
