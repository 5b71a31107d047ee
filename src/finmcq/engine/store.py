"""The run's SQLite store: response cache, resume point and audit log in one file.

One ``finmcq.sqlite`` per run directory. Every successful LLM reply is committed before the
engine hands it to a stage (WAL mode), keyed by a hash of everything that determines the answer,
so a rerun after a crash — even ``kill -9`` — answers those requests from disk at zero cost.

Group commit (``enable_group_commit``, used by the live engine): writes made while the event loop
runs join one transaction, committed at the loop's next turn, so the replies that arrived in one
wakeup share one commit instead of paying one each. The engine awaits :meth:`committed` before
it returns a reply, so a reply a stage has seen is always on disk; what a ``kill -9`` can lose is
the current turn's writes, i.e. replies not yet handed on — in effect still in flight — and the
pipeline outcomes derived in that turn, which a rerun derives again from the cached replies.

The same rows are the audit log: request, reply, tokens, latency, stage, item and time. Failures
and retries go to the ``events`` table. Pipeline outcomes (``outcomes``) let reports and exports
read a run back. The queries that read a run back for reports (usage per stage and item,
events, outcomes) are the :class:`~finmcq.engine.storereads.StoreReads` mixin
(``engine/storereads.py``); the cache lookup and every write are here.

A lock file makes a second process on the same run directory fail fast instead of corrupting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finmcq.engine.keyfilter import KeyFilter
from finmcq.engine.storereads import StoreReads
from finmcq.errors import FinmcqError

STORE_FILENAME = "finmcq.sqlite"
LOCK_FILENAME = ".finmcq.lock"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS responses (
    key               TEXT PRIMARY KEY,
    stage             TEXT NOT NULL,
    item_id           TEXT,
    model             TEXT NOT NULL,
    request_json      TEXT NOT NULL,
    content           TEXT NOT NULL,
    parsed_json       TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    cost_usd          REAL NOT NULL,
    latency_s         REAL NOT NULL,
    attempts          INTEGER NOT NULL,
    created_at        REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_stage ON responses(stage);
CREATE INDEX IF NOT EXISTS responses_item ON responses(item_id);
CREATE TABLE IF NOT EXISTS unusable (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    ts                REAL NOT NULL,
    stage             TEXT NOT NULL,
    item_id           TEXT,
    model             TEXT NOT NULL,
    cause             TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd          REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reasoning (
    key              TEXT PRIMARY KEY,
    stage            TEXT NOT NULL,
    reasoning_tokens INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    ts       REAL NOT NULL,
    stage    TEXT,
    item_id  TEXT,
    kind     TEXT NOT NULL,
    detail   TEXT
);
CREATE TABLE IF NOT EXISTS outcomes (
    item_id    TEXT NOT NULL,
    stage      TEXT NOT NULL,
    status     TEXT NOT NULL,
    reason     TEXT,
    payload    TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (item_id, stage)
);
"""


class RunLockedError(FinmcqError):
    """Another finmcq process is using the same run directory."""


class StoreError(FinmcqError):
    """The store cannot be opened or written (disk full, read-only directory, ...)."""


@dataclass(frozen=True)
class CachedResponse:
    content: str
    parsed_json: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float


class RunStore(StoreReads):
    """SQLite store for one run directory. Thread-safe for the engine's single event loop.

    Its queries for reports (usage per stage and item, events, outcomes) are in
    ``engine/storereads.py``.
    """

    def __init__(self, run_dir: Path, *, lock: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self._lock_fd: int | None = None
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the run directory {self.run_dir}: {exc.strerror}. "
                "Choose another --out or fix its permissions."
            ) from None
        if lock:
            self._acquire_lock()
        self.path = self.run_dir / STORE_FILENAME
        self._mutex = threading.Lock()
        self._group_loop: asyncio.AbstractEventLoop | None = None
        self._group_done: asyncio.Future[None] | None = None
        self._group_error: StoreError | None = None
        self.commits = 0  # transactions committed (group commits count once)
        self._keys = KeyFilter()  # cache keys stored: most lookups of a fresh run skip SQLite
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives a killed process (the WAL is in the OS page
            # cache); only a power cut may lose the last commits, which are then re-requested.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            for (key,) in self._db.execute("SELECT key FROM responses"):
                self._keys.add(key)
        except sqlite3.Error as exc:
            self.close()
            raise StoreError(
                f"Cannot open the run store {self.path}: {exc}. Check free disk space and that "
                "the directory is writable; a rerun resumes from what was saved."
            ) from None

    # -- locking ---------------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        lock_path = self.run_dir / LOCK_FILENAME
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(
                f"Cannot write to the run directory {self.run_dir} ({exc.strerror}). "
                "Make it writable or choose another --out."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(
                f"Another finmcq process is already using {self.run_dir}. Wait for it to finish "
                "(or stop it), or give this run a different --out."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None and self._group_error is None:
            with contextlib.suppress(StoreError):
                self.flush()
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
            self._db = None  # type: ignore[assignment]
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level -------------------------------------------------------------------------

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._mutex:
            if self._group_error is not None:
                raise self._group_error
            if self._group_loop is not None and self._group_loop.is_closed():
                self._group_loop = None  # the run's loop is gone: back to one commit per write
            try:
                if self._group_loop is not None and not self._db.in_transaction:
                    self._db.execute("BEGIN")
                    self._group_loop.call_soon_threadsafe(self._commit_group)
                self._db.execute(sql, params)
                if not self._db.in_transaction:
                    self.commits += 1
            except sqlite3.OperationalError as exc:
                raise self._save_error(exc) from None

    def _save_error(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(
            f"Could not save to {self.path}: {exc}. Free disk space or fix permissions, "
            "then rerun with the same --out: everything saved so far is kept."
        )

    # -- group commit ----------------------------------------------------------------------

    def enable_group_commit(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """From now on, writes join one transaction per turn of ``loop`` (see module doc)."""
        self._group_loop = loop or asyncio.get_running_loop()

    def disable_group_commit(self) -> None:
        self.flush()
        self._group_loop = None

    def flush(self) -> None:
        """Commit the open group transaction now, if any."""
        with self._mutex:
            self._commit_locked()

    def _commit_group(self) -> None:
        with self._mutex, contextlib.suppress(StoreError):
            self._commit_locked()

    def _commit_locked(self) -> None:
        done, self._group_done = self._group_done, None
        if not self._db.in_transaction:
            if done is not None and not done.done():
                done.set_result(None)
            return
        try:
            self._db.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            # Later writes would build on state that is not on disk: stop the run.
            self._group_error = self._save_error(exc)
            if done is not None and not done.done():
                done.set_exception(self._group_error)
                done.exception()  # retrieved here: waiters re-raise it, nobody else must
            raise self._group_error from None
        if done is not None and not done.done():
            done.set_result(None)

    async def committed(self) -> None:
        """Wait until every write made so far is committed (at once when nothing is pending)."""
        with self._mutex:
            if self._group_error is not None:
                raise self._group_error
            if not self._db.in_transaction:
                return
            if self._group_done is None:
                self._group_done = asyncio.get_running_loop().create_future()
            done = self._group_done
        await asyncio.shield(done)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._mutex:
            return list(self._db.execute(sql, params).fetchall())

    # -- meta ------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- response cache / audit log --------------------------------------------------------

    def get_response(self, key: str) -> CachedResponse | None:
        if key not in self._keys:  # surely not stored (see engine/keyfilter.py)
            return None
        rows = self._query(
            "SELECT content, parsed_json, prompt_tokens, completion_tokens, cached_tokens, "
            "cost_usd FROM responses WHERE key = ?",
            (key,),
        )
        return CachedResponse(*rows[0]) if rows else None

    def put_response(
        self,
        *,
        key: str,
        stage: str,
        item_id: str | None,
        model: str,
        request: dict[str, Any] | str,
        content: str,
        parsed_json: str,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int,
        cost_usd: float,
        latency_s: float,
        attempts: int,
    ) -> None:
        self._keys.add(key)
        self._write(
            "INSERT OR REPLACE INTO responses(key, stage, item_id, model, request_json, content, "
            "parsed_json, prompt_tokens, completion_tokens, cached_tokens, cost_usd, latency_s, "
            "attempts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                stage,
                item_id,
                model,
                request if isinstance(request, str) else json.dumps(request, ensure_ascii=False),
                content,
                parsed_json,
                prompt_tokens,
                completion_tokens,
                cached_tokens,
                cost_usd,
                latency_s,
                attempts,
                time.time(),
            ),
        )

    def add_unusable(self, *, stage: str, item_id: str | None, model: str, cause: str,
                     prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
        """A reply that was billed but failed validation (never cached, still paid for)."""
        self._write(
            "INSERT INTO unusable(ts, stage, item_id, model, cause, prompt_tokens, "
            "completion_tokens, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (time.time(), stage, item_id, model, cause, prompt_tokens, completion_tokens,
             cost_usd),
        )

    # -- events (retries, failures) --------------------------------------------------------

    def add_reasoning(self, key: str, stage: str, reasoning_tokens: int) -> None:
        """Hidden reasoning tokens of a stored reply (part of its completion tokens)."""
        self._write("INSERT OR REPLACE INTO reasoning(key, stage, reasoning_tokens) "
                    "VALUES (?, ?, ?)", (key, stage, reasoning_tokens))

    def add_event(self, kind: str, *, stage: str | None, item_id: str | None, detail: str) -> None:
        self._write(
            "INSERT INTO events(ts, stage, item_id, kind, detail) VALUES (?, ?, ?, ?, ?)",
            (time.time(), stage, item_id, kind, detail),
        )

    # -- pipeline outcomes -----------------------------------------------------------------

    def put_outcome(
        self, item_id: str, stage: str, status: str, *, reason: str | None, payload: str | None
    ) -> None:
        self._write(
            "INSERT OR REPLACE INTO outcomes(item_id, stage, status, reason, payload, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (item_id, stage, status, reason, payload, time.time()),
        )

