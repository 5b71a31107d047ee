"""The review page's queries: filters, keyset paging, counts, one item with its review.

Every list query is ``WHERE <filters> AND seq > ? ORDER BY seq LIMIT n`` over the indexed table
of :mod:`finmcq.review.index`, so a page costs the same at item 10 as at item 99,990 (no
``OFFSET``). Only parameters ever reach SQL; column names come from fixed tables here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from finmcq.records import LETTERS
from finmcq.review.index import FLAGS, TRIGRAM

PAGE_SIZE = 50
COUNT_CAP = 10_000  # counting further costs a scan; the page says "10,000+"
STATES = ("unreviewed", "accepted", "edited", "rejected")
ORIGINS = ("rewrite", "generate")
DIFFICULTIES = ("easy", "medium", "hard", "unknown")


@dataclass(frozen=True)
class Filters:
    """What the list shows: the tab and every filter, as read from (and written to) a URL."""

    tab: str = "delivered"
    topic: str = ""
    difficulty: str = ""
    answer: str = ""
    origin: str = ""
    state: str = ""
    flags: tuple[str, ...] = field(default_factory=tuple)
    stage: str = ""
    reason: str = ""
    q: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str], flags: list[str]) -> Filters:
        def pick(name: str, allowed: tuple[str, ...] | None = None) -> str:
            value = str(query.get(name, "")).strip()
            return value if allowed is None or value in allowed else ""

        return cls(
            tab="dropped" if query.get("tab") == "dropped" else "delivered",
            topic=pick("topic"), difficulty=pick("difficulty", DIFFICULTIES),
            answer=pick("answer", LETTERS), origin=pick("origin", ORIGINS),
            state=pick("state", STATES),
            flags=tuple(f for f in FLAGS if f in flags),
            stage=pick("stage"), reason=pick("reason"), q=pick("q")[:200],
        )

    def query_string(self, **extra: Any) -> str:
        """The URL query for these filters (empty ones left out), plus ``extra``."""
        pairs: list[tuple[str, str]] = []
        for key, value in asdict(self).items():
            if key == "flags":
                pairs += [("flag", f) for f in value]
            elif value and not (key == "tab" and value == "delivered"):
                pairs.append((key, str(value)))
        pairs += [(k, str(v)) for k, v in extra.items() if v is not None and v != ""]
        return urlencode(pairs)

    def with_(self, **changes: Any) -> Filters:
        return replace(self, **changes)

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        columns = (("stage", "reason") if self.tab == "dropped"
                   else ("topic", "difficulty", "answer", "origin", "state"))
        for column in columns:
            value = getattr(self, column)
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.tab == "delivered":
            clauses += [f"{flag} = 1" for flag in self.flags]
        query = self.q.casefold()
        if self.tab == "delivered" and len(query) >= TRIGRAM:
            clauses.append("seq IN (SELECT rowid FROM review_search WHERE review_search MATCH ?)")
            params.append('"' + query.replace('"', '""') + '"')  # one phrase: a substring
        elif query:
            clauses.append("search LIKE ? ESCAPE '\\'")
            escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append("%" + escaped + "%")
        return " AND ".join(clauses) or "1", params

    @property
    def table(self) -> str:
        return "review_dropped" if self.tab == "dropped" else "review_items"


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_after: int | None
    prev_before: int | None
    matching: int


_ITEM_COLUMNS = ("seq", "item_id", "topic", "difficulty", "answer", "origin", *FLAGS,
                 "state", "question")
_DROPPED_COLUMNS = ("seq", "item_id", "stage", "reason", "detail")


def page(db: sqlite3.Connection, filters: Filters, *, after: int | None = None,
         before: int | None = None, size: int = PAGE_SIZE) -> Page:
    """One page of the list, after ``after`` (or before ``before``) in delivery order."""
    columns = _DROPPED_COLUMNS if filters.tab == "dropped" else _ITEM_COLUMNS
    where, params = filters.where()
    select = f"SELECT {', '.join(columns)} FROM {filters.table} WHERE {where}"
    if before is not None:
        rows = db.execute(select + " AND seq < ? ORDER BY seq DESC LIMIT ?",
                          (*params, before, size + 1)).fetchall()
        more_before = len(rows) > size
        rows = list(reversed(rows[:size]))
        more_after = True
    else:
        rows = db.execute(select + " AND seq > ? ORDER BY seq LIMIT ?",
                          (*params, -1 if after is None else after, size + 1)).fetchall()
        more_after = len(rows) > size
        rows = rows[:size]
        more_before = after is not None
    dicts = [dict(zip(columns, row, strict=True)) for row in rows]
    return Page(
        rows=dicts,
        next_after=dicts[-1]["seq"] if dicts and more_after else None,
        prev_before=dicts[0]["seq"] if dicts and more_before else None,
        matching=count(db, filters),
    )


def count(db: sqlite3.Connection, filters: Filters, cap: int = COUNT_CAP) -> int:
    """How many rows match, counted up to ``cap + 1`` (more than ``cap`` shows as "cap+")."""
    where, params = filters.where()
    return int(db.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM {filters.table} WHERE {where} "
                          "LIMIT ?)", (*params, cap + 1)).fetchone()[0])


def progress(db: sqlite3.Connection) -> dict[str, int]:
    """Reviewed / total over the delivered items, and the count per state."""
    # seq runs 0..n-1, so the total is one lookup; each state's count is an index range, as
    # long as the reviewed items (not the whole list).
    total = int(db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM review_items").fetchone()[0])
    per_state = {state: int(db.execute("SELECT COUNT(*) FROM review_items WHERE state = ?",
                                       (state,)).fetchone()[0]) for state in STATES[1:]}
    reviewed = sum(per_state.values())
    return {"total": total, "reviewed": reviewed, "unreviewed": total - reviewed, **per_state}


def topics(db: sqlite3.Connection) -> list[str]:
    return [t for (t,) in db.execute("SELECT DISTINCT topic FROM review_items ORDER BY topic")]


def stages(db: sqlite3.Connection) -> list[str]:
    return [s for (s,) in db.execute("SELECT DISTINCT stage FROM review_dropped ORDER BY stage")]


def reasons(db: sqlite3.Connection) -> list[str]:
    return [r for (r,) in db.execute(
        "SELECT DISTINCT reason FROM review_dropped ORDER BY reason")]


def item_row(db: sqlite3.Connection, item_id: str) -> dict[str, Any] | None:
    row = db.execute(f"SELECT {', '.join(_ITEM_COLUMNS)}, line_offset FROM review_items "
                     "WHERE item_id = ?", (item_id,)).fetchone()
    return dict(zip((*_ITEM_COLUMNS, "line_offset"), row, strict=True)) if row else None


def dropped_rows(db: sqlite3.Connection, item_id: str) -> list[dict[str, Any]]:
    rows = db.execute(f"SELECT {', '.join(_DROPPED_COLUMNS)} FROM review_dropped "
                      "WHERE item_id = ? ORDER BY seq", (item_id,)).fetchall()
    return [dict(zip(_DROPPED_COLUMNS, row, strict=True)) for row in rows]


def neighbours(db: sqlite3.Connection, filters: Filters, seq: int) -> tuple[str | None,
                                                                           str | None]:
    """The item ids before and after ``seq`` in the filtered list (for j/k)."""
    where, params = filters.where()
    table = filters.table
    prev = db.execute(f"SELECT item_id FROM {table} WHERE {where} AND seq < ? "
                      "ORDER BY seq DESC LIMIT 1", (*params, seq)).fetchone()
    nxt = db.execute(f"SELECT item_id FROM {table} WHERE {where} AND seq > ? "
                     "ORDER BY seq LIMIT 1", (*params, seq)).fetchone()
    return (prev[0] if prev else None), (nxt[0] if nxt else None)


def set_state(db: sqlite3.Connection, item_id: str, state: str) -> None:
    db.execute("UPDATE review_items SET state = ? WHERE item_id = ?", (state, item_id))
