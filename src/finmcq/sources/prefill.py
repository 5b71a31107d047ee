"""Cold loads of local folders in a short-lived child process.

Importing ``datasets`` (with pyarrow, pandas, fsspec and the hub client) costs ~110 MB of
resident memory that a Python process never gives back, and a build needs only the validated
questions. So on a source-cache miss for a local folder, ``load_source`` first asks a child
(``python -m finmcq.sources.prefill``) to load the folder and write the cache entry, then reads
that entry: the build process never imports ``datasets`` (peak RSS of a first KMMLU build:
~250 → ~140 MB). The child's warnings reach the user through the entry (a hit logs them again).

Anything the child cannot do (an input error, an unwritable or disabled cache, a crash) makes
the caller load in process exactly as before, which raises the same clear ``InputError``. Each
request goes to a child at most once per process, so an error is never paid for twice more.
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

_tried: set[str] = set()


def fill(requests: Sequence[Request]) -> bool:
    """Load and cache ``requests`` in one child process; True when every one succeeded.

    False without starting anything in the child itself, with the cache off, when this
    process has imported ``datasets`` already, or when all of ``requests`` were handed to a
    child before.
    """
    if (os.environ.get(CHILD_ENV) == "1" or source_cache.cache_root() is None
            or "datasets" in sys.modules):  # imported already: its memory is spent anyway
        return False
    fresh = [r for r in requests if json.dumps(r) not in _tried]
    if not fresh:
        return False
    _tried.update(json.dumps(r) for r in fresh)
    root = str(Path(__file__).resolve().parents[2])  # the folder that holds finmcq/
    code = ("import sys\n"
            f"sys.path.insert(0, {root!r}) if {root!r} not in sys.path else None\n"
            "from finmcq.sources.prefill import main\n"
            "main()\n")
    env = {**os.environ, CHILD_ENV: "1"}
    try:
        # -P: the working directory is not put on the child's import path.
        done = subprocess.run([sys.executable, "-P", "-c", code], input=json.dumps(fresh),
                              text=True, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, check=False)
    except OSError:
        return False
    return done.returncode == 0


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
