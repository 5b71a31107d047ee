"""The batch ledger: what was submitted where, and what came back, in the run's SQLite file.

Three tables next to the run's cache (its own connection, so the engine's group commit is not
involved): ``batches`` (one row per uploaded input file: its batch id once created, status, the
output/error file ids once ingested), ``batch_requests`` (which request, by cache key, went into
which file) and ``batch_results`` (downloaded lines not yet used by a ``call()``). An upload is
recorded *before* its batch is created, so a crash in between is recoverable (see
:mod:`finmcq.engine.batch`).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from finmcq.engine.store import RunStore

log = logging.getLogger("finmcq.engine")

_LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    input_file_id  TEXT PRIMARY KEY,
    batch_id       TEXT UNIQUE,
    model          TEXT NOT NULL,
    status         TEXT NOT NULL,   -- uploaded | provider status | ingested | abandoned
    n_requests     INTEGER NOT NULL,
    bytes          INTEGER NOT NULL,
    output_file_id TEXT,
    error_file_id  TEXT,
    created_at     REAL NOT NULL,
    updated_at     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_requests (
    input_file_id TEXT NOT NULL,
    key           TEXT NOT NULL,
    stage         TEXT,
    item_id       TEXT,
    PRIMARY KEY (input_file_id, key)
);
CREATE INDEX IF NOT EXISTS batch_requests_key ON batch_requests(key);
CREATE TABLE IF NOT EXISTS batch_results (
    key         TEXT PRIMARY KEY,
    batch_id    TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    payload     TEXT NOT NULL,
    received_at REAL NOT NULL
);
"""

_OPEN = "('uploaded', 'validating', 'in_progress', 'finalizing', 'cancelling', " \
        "'completed', 'failed', 'expired', 'cancelled')"


class BatchLedger:
    """What was submitted where, and what came back. Its own connection to the run's file."""

    def __init__(self, store: RunStore) -> None:
        self._db = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_LEDGER_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def record_upload(self, input_file_id: str, model: str, size: int,
                      requests: Iterable[tuple[str, str | None, str | None]]) -> None:
        """An uploaded file and its requests (key, stage, item_id), before its batch exists."""
        now = time.time()
        rows = list(requests)
        with self._transaction():
            self._db.execute(
                "INSERT INTO batches(input_file_id, model, status, n_requests, bytes, created_at, "
                "updated_at) VALUES (?, ?, 'uploaded', ?, ?, ?, ?)",
                (input_file_id, model, len(rows), size, now, now))
            self._db.executemany(
                "INSERT OR IGNORE INTO batch_requests(input_file_id, key, stage, item_id) "
                "VALUES (?, ?, ?, ?)", [(input_file_id, *row) for row in rows])

    def record_batch(self, input_file_id: str, batch_id: str, status: str) -> None:
        self._db.execute("UPDATE batches SET batch_id = ?, status = ?, updated_at = ? "
                         "WHERE input_file_id = ?", (batch_id, status, time.time(), input_file_id))

    def set_status(self, batch_id: str, status: str) -> None:
        self._db.execute("UPDATE batches SET status = ?, updated_at = ? WHERE batch_id = ?",
                         (status, time.time(), batch_id))

    def abandon(self, input_file_id: str) -> None:
        """An upload that never became a batch: its requests are free to be sent again."""
        self._db.execute("UPDATE batches SET status = 'abandoned', updated_at = ? "
                         "WHERE input_file_id = ?", (time.time(), input_file_id))

    def unfinished(self) -> list[tuple[str, str | None, str, float]]:
        """(input_file_id, batch_id, status, created_at) of batches not yet ingested."""
        return list(self._db.execute(
            f"SELECT input_file_id, batch_id, status, created_at FROM batches "
            f"WHERE status IN {_OPEN} ORDER BY created_at"))

    def pending_batch_of(self, key: str) -> str | None:
        """The id of an unfinished batch that holds ``key``, if any."""
        row = self._db.execute(
            f"SELECT b.batch_id FROM batch_requests r JOIN batches b USING (input_file_id) "
            f"WHERE r.key = ? AND b.status IN {_OPEN} AND b.batch_id IS NOT NULL LIMIT 1",
            (key,)).fetchone()
        return row[0] if row else None

    def keys_of(self, batch_id: str) -> list[str]:
        return [k for (k,) in self._db.execute(
            "SELECT r.key FROM batch_requests r JOIN batches b USING (input_file_id) "
            "WHERE b.batch_id = ?", (batch_id,))]

    def ingest(self, batch_id: str, results: Iterable[tuple[str, bool, str]], status: str,
               missing_payload: str, output_file_id: str | None,
               error_file_id: str | None) -> int:
        """Store a finished batch's results in one transaction; requests with no line get
        ``missing_payload`` as an error. Returns the number of lines stored."""
        now = time.time()
        with self._transaction():
            n = 0
            for key, ok, payload in results:
                self._db.execute("INSERT OR REPLACE INTO batch_results(key, batch_id, ok, payload, "
                                 "received_at) VALUES (?, ?, ?, ?, ?)",
                                 (key, batch_id, int(ok), payload, now))
                n += 1
            self._db.execute(
                "INSERT OR IGNORE INTO batch_results(key, batch_id, ok, payload, received_at) "
                "SELECT r.key, ?, 0, ?, ? FROM batch_requests r JOIN batches b "
                "USING (input_file_id) WHERE b.batch_id = ?",
                (batch_id, missing_payload, now, batch_id))
            self._db.execute(
                "UPDATE batches SET status = 'ingested', output_file_id = ?, error_file_id = ?, "
                "updated_at = ? WHERE batch_id = ?",
                (output_file_id, error_file_id, now, batch_id))
        log.info("batch %s ended %s: %d result lines stored", batch_id, status, n)
        return n

    def result(self, key: str) -> tuple[bool, str, str] | None:
        """(ok, payload, batch_id) of a downloaded, not yet used result for ``key``."""
        row = self._db.execute("SELECT ok, payload, batch_id FROM batch_results WHERE key = ?",
                               (key,)).fetchone()
        return (bool(row[0]), row[1], row[2]) if row else None

    def consume(self, key: str) -> None:
        self._db.execute("DELETE FROM batch_results WHERE key = ?", (key,))

    def created_at(self, batch_id: str) -> float | None:
        row = self._db.execute("SELECT created_at FROM batches WHERE batch_id = ?",
                               (batch_id,)).fetchone()
        return float(row[0]) if row else None

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT status, COUNT(*) FROM batches GROUP BY status"))

    @contextlib.contextmanager
    def _transaction(self) -> Any:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
