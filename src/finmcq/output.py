"""Atomic output files: written to a temporary file beside the target, then renamed.

An interrupted run therefore never leaves a half-written output: a reader sees the old file, the
new file, or none — never part of one.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from finmcq.errors import FinmcqError


class OutputError(FinmcqError):
    """An output file could not be written (disk full, read-only directory, ...)."""


def pause_for_test(point: str) -> None:
    """Test hook: freeze this process (SIGSTOP) at ``point`` if ``FINMCQ_TEST_PAUSE_AT`` names it.

    The reliability tests kill -9 a build frozen at an exact point (e.g. mid-write). The variable
    matches a point by prefix (``write:items`` matches ``write:items_{timestamp}.jsonl``); when it
    is unset this does nothing.
    """
    wanted = os.environ.get("FINMCQ_TEST_PAUSE_AT")
    if wanted and point.startswith(wanted):
        os.kill(os.getpid(), signal.SIGSTOP)


@contextmanager
def atomic_writer(path: Path) -> Iterator[IO[str]]:
    """Open a temp file in ``path``'s folder; on success fsync and rename it over ``path``."""
    path = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(
            f"Cannot write {path}: {exc.strerror}",
            fix="Free disk space or make the directory writable, then rerun with the same --out "
            "(replies already received are kept and not paid for again)",
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            pause_for_test(f"write:{path.name}")  # the temp file is written, not yet renamed
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are for sharing
        os.replace(tmp_name, path)
    except OSError as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise OutputError(
            f"Cannot write {path}: {exc.strerror}",
            fix="Free disk space or make the directory writable, then rerun with the same --out",
        ) from None
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def remove_stale_temp_files(folder: Path) -> int:
    """Delete temp files that a killed run left behind (call while holding the run lock)."""
    removed = 0
    for stale in Path(folder).glob(".*.tmp"):
        stale.unlink(missing_ok=True)
        removed += 1
    return removed


def write_json(path: Path, data: Any) -> None:
    with atomic_writer(path) as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2)
        handle.write("\n")


class RowWriter:
    """Rows added one at a time to a JSONL file or a JSON array (see :func:`row_writer`)."""

    def __init__(self, handle: IO[str], array: bool) -> None:
        self._handle = handle
        self._array = array
        self.count = 0

    def add(self, row: Any) -> None:
        text = json.dumps(row, ensure_ascii=False)
        if self._array:
            self._handle.write((",\n  " if self.count else "\n  ") + text)
        else:
            self._handle.write(text + "\n")
        self.count += 1


@contextmanager
def row_writer(path: Path, *, array: bool) -> Iterator[RowWriter]:
    """Stream rows into ``path`` atomically, as JSONL or (``array``) as one JSON array.

    Several can be open at once, so one pass over the delivered items writes every file.
    """
    with atomic_writer(path) as handle:
        if array:
            handle.write("[")
        rows = RowWriter(handle, array)
        yield rows
        if array:
            handle.write("\n]\n" if rows.count else "]\n")


def write_json_array(path: Path, rows: Iterable[Any]) -> int:
    """Stream ``rows`` into a JSON array without holding the serialised text in memory."""
    with row_writer(path, array=True) as out:
        for row in rows:
            out.add(row)
    return out.count


def write_jsonl(path: Path, rows: Iterable[Any]) -> int:
    with row_writer(path, array=False) as out:
        for row in rows:
            out.add(row)
    return out.count
