"""Cold loads of local folders in a short-lived child process.

Importing ``datasets`` (with pyarrow, pandas, fsspec and the hub client) costs ~110 MB of
resident memory that a Python process never gives back, and a build needs only the validated
questions. So on a source-cache miss for a local folder, ``load_source`` first asks a child
interpreter (running :func:`main`) to load the folder and write the cache entry, then reads
that entry: the build process never imports ``datasets`` (peak RSS of a first KMMLU build,
the child's included: 253 → 179 MB). The child's warnings reach the user through the entry (a
hit logs them again).

Anything the child cannot do (an input error, an unwritable or disabled cache, a crash) makes
the caller load in process exactly as before, which raises the same clear ``InputError``. A
request goes to a child at most once per process, so a failing one costs one wasted child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from finmcq import source_cache

CHILD_ENV = "FINMCQ_SOURCE_CHILD"

# (source, subjects, splits, deduplicate), as load_source takes them
Request = tuple[str, list[str] | None, list[str] | None, bool]

_tried: set[str] = set()  # requests handed to a child, by their JSON


def _usable() -> bool:
    return (os.environ.get(CHILD_ENV) != "1" and source_cache.cache_root() is not None
            and "datasets" not in sys.modules)  # imported already: its memory is spent anyway


def _spawn(requests: list[Request]) -> subprocess.Popen[str] | None:
    _tried.update(json.dumps(r) for r in requests)
    root = str(Path(__file__).resolve().parents[2])  # the folder that holds finmcq/
    code = ("import sys\n"
            f"sys.path.insert(0, {root!r}) if {root!r} not in sys.path else None\n"
            "from finmcq.sources.prefill import main\n"
            "main()\n")
    try:
        # -P: the working directory is not put on the child's import path.
        proc = subprocess.Popen([sys.executable, "-P", "-c", code], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                text=True, env={**os.environ, CHILD_ENV: "1"})
    except OSError:
        return None
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(requests))
        proc.stdin.close()
    except OSError:  # the child died at once: no entry will come from it
        proc.kill()
        proc.wait()
        return None
    return proc


def fill(requests: Sequence[Request]) -> bool:
    """Load and cache ``requests`` in one child process; True when every one succeeded.

    False without starting anything in the child itself, with the cache off, when this
    process has imported ``datasets`` already, or when all of ``requests`` were handed to a
    child before.
    """
    if not _usable():
        return False
    fresh = [r for r in requests if json.dumps(r) not in _tried]
    proc = _spawn(fresh) if fresh else None
    return proc is not None and proc.wait() == 0


def main() -> None:
    """The child: load each request (which writes its cache entry); exit 1 if any failed."""
    from finmcq.sources import load_source

    failed = 0
    for source, subjects, splits, deduplicate in json.loads(sys.stdin.read()):
        try:
            load_source(source, subjects, splits, deduplicate=deduplicate)
        except Exception:  # the parent loads this one in process and reports it properly
            failed += 1
    sys.exit(1 if failed else 0)
