"""The read side of the run store: what reports, estimates and exports ask of a run.

:class:`StoreReads` is a mixin of :class:`~finmcq.engine.store.RunStore` holding its queries
over every session of a run: tokens and USD per stage and per item, the total spend, reasoning
tokens, event counts, and the pipeline outcomes (all at once, streamed in chunks on a read-only
connection, or by item id). None of them is on the per-call path; the cache lookup
(``get_response``) and every write stay in ``engine/store.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any


class StoreReads:
    """Queries of a :class:`~finmcq.engine.store.RunStore` (see the module doc)."""

    path: Path  # the SQLite file (set by RunStore.__init__)

    if TYPE_CHECKING:  # RunStore's own, declared here for the type checker only
        def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...

        def flush(self) -> None: ...

    def usage_by_stage(self) -> dict[str, dict[str, float]]:
        """Tokens and USD of every stored reply, per stage (all sessions of this run)."""
        rows = self._query(
            "SELECT stage, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
            "SUM(cached_tokens), SUM(cost_usd) FROM responses GROUP BY stage"
        )
        return {
            stage: {
                "responses": n,
                "prompt_tokens": pt or 0,
                "completion_tokens": ct or 0,
                "cached_tokens": cached or 0,
                "cost_usd": cost or 0.0,
            }
            for stage, n, pt, ct, cached, cost in rows
        }

    def item_usage(self, *item_ids: str | None) -> dict[str, float]:
        """Tokens and USD of every stored reply that belongs to the given item ids."""
        ids = [i for i in item_ids if i]
        marks = ",".join("?" * len(ids))
        rows = self._query(
            "SELECT COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
            f"COALESCE(SUM(cost_usd), 0) FROM responses WHERE item_id IN ({marks})",
            tuple(ids),
        )
        pt, ct, cost = rows[0]
        return {"prompt_tokens": pt, "completion_tokens": ct, "cost_usd": float(cost)}

    def total_cost(self) -> float:
        """USD of every reply this run paid for: usable ones and unusable ones."""
        rows = self._query(
            "SELECT (SELECT COALESCE(SUM(cost_usd), 0) FROM responses) "
            "+ (SELECT COALESCE(SUM(cost_usd), 0) FROM unusable)")
        return float(rows[0][0])

    def reasoning_by_stage(self) -> dict[str, int]:
        """Reasoning tokens of every stored reply, per stage (all sessions of this run)."""
        rows = self._query("SELECT stage, SUM(reasoning_tokens) FROM reasoning GROUP BY stage")
        return {stage: int(n or 0) for stage, n in rows}

    def event_counts(self) -> dict[str, int]:
        rows = self._query("SELECT kind, COUNT(*) FROM events GROUP BY kind")
        return {str(kind): int(n) for kind, n in rows}

    def iter_outcomes(
        self, stage: str | None = None
    ) -> Iterator[tuple[str, str, str, str | None, str | None]]:
        sql = "SELECT item_id, stage, status, reason, payload FROM outcomes"
        params: tuple[Any, ...] = ()
        if stage is not None:
            sql += " WHERE stage = ?"
            params = (stage,)
        yield from self._query(sql + " ORDER BY item_id", params)

    def stream_outcomes(
        self, stage: str, *, chunk: int = 256
    ) -> Iterator[tuple[str, str, str, str | None, str | None]]:
        """Like :meth:`iter_outcomes` for one stage, but in chunks on a separate read connection.

        ``iter_outcomes`` materialises every row; a 100,000-item build's ``deliver`` payloads
        are gigabytes of JSON. A second connection (WAL: readers never block the writer) lets
        the caller write to the store while it iterates, and only ``chunk`` rows are in memory.
        """
        self.flush()  # the reader sees only what is committed
        reader = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                 check_same_thread=False)
        try:
            cursor = reader.execute(
                "SELECT item_id, stage, status, reason, payload FROM outcomes WHERE stage = ? "
                "ORDER BY item_id", (stage,))
            while rows := cursor.fetchmany(chunk):
                yield from rows
        finally:
            reader.close()

    def get_outcome_payload(self, item_id: str, stage: str) -> str | None:
        """The payload of one outcome row (None if absent), by its primary key."""
        rows = self._query("SELECT payload FROM outcomes WHERE item_id = ? AND stage = ?",
                           (item_id, stage))
        return rows[0][0] if rows else None

    def get_outcome_payloads(self, item_ids: list[str], stage: str) -> dict[str, str | None]:
        """Payloads of several outcome rows of one stage, by item id (absent ids are left out)."""
        out: dict[str, str | None] = {}
        for start in range(0, len(item_ids), 500):  # stay under SQLite's variable limit
            part = item_ids[start:start + 500]
            marks = ",".join("?" * len(part))
            sql = f"SELECT item_id, payload FROM outcomes WHERE stage = ? AND item_id IN ({marks})"
            for item_id, payload in self._query(sql, (stage, *part)):
                out[item_id] = payload
        return out
