"""A content-keyed cache of sources loaded from a local folder (KMMLU's hub layout).

Loading a folder goes through ``datasets`` (importing it alone costs over a second of CPU) and
validates every row; for KMMLU Economics that was most of the ~6 s before a build's first LLM
request (issue 12). The result depends only on the folder's files, the subjects and splits
asked for, and finmcq's loading code, so it is cached under that key:

* the key hashes every file under the folder (relative path, size, modification time in ns),
  the subjects, splits and de-duplication asked for, and the bytes of the ``sources``
  package's modules and ``records.py`` — editing a CSV, or the loader, makes a new key;
* an entry is the validated questions, one JSON line each, after a header line that holds the
  warnings the cold load logged (they are logged again on a hit);
* entries live in ``$FINMCQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/finmcq/sources``, else
  ``~/.cache/finmcq/sources`` (outside any repository: KMMLU text is not ours to copy);
  ``FINMCQ_CACHE_DIR=off`` turns the cache off. Writes are atomic; an unreadable entry is
  ignored and rewritten.

Hub ids are not cached here: ``datasets`` keeps its own download cache for them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from finmcq import __version__
from finmcq.records import SourceQuestion

log = logging.getLogger(__name__)
FORMAT = 1


def cache_root(kind: str = "sources") -> Path | None:
    """Where entries of ``kind`` live, or None when the cache is off.

    Source entries sit in the cache folder itself; other kinds (the contamination index's
    shingle hashes) in a subfolder of it named after the kind.
    """
    configured = os.environ.get("FINMCQ_CACHE_DIR")
    if configured is not None:
        if configured.strip().lower() in ("", "off", "0", "none"):
            return None
        root = Path(configured).expanduser()
        return root if kind == "sources" else root / kind
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "finmcq" / kind


def _code_digest() -> bytes:
    """The loading code: every module of ``finmcq.sources`` and ``records.py``."""
    digest = hashlib.sha256()
    package = resources.files("finmcq")
    with contextlib.suppress(OSError):
        modules = sorted((p for p in (package / "sources").iterdir() if p.name.endswith(".py")),
                         key=lambda p: p.name)
        for module in [*modules, package / "records.py"]:
            digest.update(module.name.encode() + b"\0" + module.read_bytes())
    return digest.digest()


def folder_key(folder: Path, subjects: Sequence[str] | None, splits: Sequence[str] | None,
               deduplicate: bool) -> str | None:
    """The cache key of loading ``folder`` this way, or None when it cannot be listed."""
    files: list[tuple[str, int, int]] = []
    try:
        root = folder.resolve()
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                stat = path.stat()
                files.append((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    except OSError:
        return None
    # The folder as the user spelled it is in the key too: provenance records that spelling.
    described = json.dumps({"format": FORMAT, "version": __version__, "folder": str(root),
                            "spelled": str(folder),
                            "subjects": list(subjects) if subjects is not None else None,
                            "splits": list(splits) if splits is not None else None,
                            "deduplicate": deduplicate, "files": files})
    digest = hashlib.sha256(described.encode("utf-8"))
    digest.update(_code_digest())
    return digest.hexdigest()


def load(key: str) -> list[SourceQuestion] | None:
    """The cached questions for ``key`` (their warnings logged again), or None on a miss."""
    root = cache_root()
    if root is None:
        return None
    path = root / f"{key}.jsonl"
    try:
        with path.open("r", encoding="utf-8") as handle:
            header = json.loads(handle.readline())
            questions = [SourceQuestion.model_validate_json(line) for line in handle]
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # a damaged entry: load afresh and rewrite it
        log.debug("ignoring the source cache entry %s: %s", path, exc)
        return None
    if header.get("count") != len(questions):
        return None
    for message in header.get("warnings", []):
        logging.getLogger("finmcq.sources").warning("%s", message)
    return questions


def save(key: str, questions: Sequence[SourceQuestion], warnings: Sequence[str]) -> None:
    """Store ``questions`` under ``key``; a cache that cannot be written is skipped silently."""
    root = cache_root()
    if root is None:
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"count": len(questions), "warnings": list(warnings)},
                                    ensure_ascii=False) + "\n")
            for question in questions:
                handle.write(question.model_dump_json() + "\n")
        os.replace(tmp, root / f"{key}.jsonl")
    except OSError as exc:
        log.debug("could not write the source cache under %s: %s", root, exc)
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp)


class WarningRecorder(logging.Handler):
    """Collects the warnings the sources loader logs during a cold load."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
