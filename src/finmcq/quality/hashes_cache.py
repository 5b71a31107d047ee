"""A content-keyed cache of benchmark shingle hashes, for the contamination index.

Every build compares its items against the KMMLU test splits of six subjects (~2,600
questions); folding and hashing them cost ~0.7 s of CPU per build, the same every time. The
hashes depend only on the questions' texts and the code that folds, hashes and selects them,
so they are kept on disk under that key:

* the key hashes each question's benchmark name, row id, text and stem, the n-gram size, and
  the bytes of ``quality/text.py`` and ``quality/contamination.py`` — a changed question, or a
  change to folding or hashing, makes a new key;
* an entry is one ``.npz`` file of three arrays (no pickles): the documents' hashes end to end,
  each document's length, and the index of the question each document belongs to;
* entries live beside the source cache (``source_cache.cache_root("contamination")``), outside
  any repository, and hold only hashes, never benchmark text; ``FINMCQ_CACHE_DIR=off`` turns
  it off. Writes are atomic; an unreadable or inconsistent entry is ignored and rewritten.
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
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from finmcq import source_cache

if TYPE_CHECKING:
    from finmcq.quality.contamination import BenchmarkQuestion

log = logging.getLogger(__name__)
FORMAT = 1

# hashes (uint64, documents end to end), lengths (int64, per document), owners (int64: the
# question of each document, as an index into the batch)
Hashed = tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64], npt.NDArray[np.int64]]


def _code_digest() -> bytes:
    digest = hashlib.sha256()
    for name in ("text.py", "contamination.py"):
        with contextlib.suppress(OSError):
            digest.update((resources.files("finmcq.quality") / name).read_bytes())
    return digest.digest()


def batch_key(batch: Sequence[BenchmarkQuestion], ngram: int) -> str:
    described = json.dumps([FORMAT, ngram, [[q.benchmark, q.ref, q.text, q.stem] for q in batch]],
                           ensure_ascii=False)
    digest = hashlib.sha256(described.encode("utf-8"))
    digest.update(_code_digest())
    return digest.hexdigest()


def load(batch: Sequence[BenchmarkQuestion], ngram: int) -> Hashed | None:
    """The cached hashes of ``batch``, or None on a miss (or with the cache off)."""
    root = source_cache.cache_root("contamination")
    if root is None or not batch:
        return None
    path = root / f"{batch_key(batch, ngram)}.npz"
    try:
        with np.load(path, allow_pickle=False) as entry:
            hashes = entry["hashes"].astype(np.uint64, copy=False)
            lengths = entry["lengths"].astype(np.int64, copy=False)
            owners = entry["owners"].astype(np.int64, copy=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:  # damaged: hash afresh and rewrite it
        log.debug("ignoring the hashes cache entry %s: %s", path, exc)
        return None
    consistent = (lengths.size == owners.size and int(lengths.sum()) == hashes.size
                  and (owners.size == 0 or 0 <= int(owners.min()) <= int(owners.max())
                       < len(batch)))
    return (hashes, lengths, owners) if consistent else None


def save(batch: Sequence[BenchmarkQuestion], ngram: int, hashed: Hashed) -> None:
    """Store the hashes of ``batch``; a cache that cannot be written is skipped silently."""
    root = source_cache.cache_root("contamination")
    if root is None or not batch:
        return
    hashes, lengths, owners = hashed
    tmp = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".", suffix=".npz")
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, hashes=hashes, lengths=lengths, owners=owners)
        os.replace(tmp, root / f"{batch_key(batch, ngram)}.npz")
    except OSError as exc:
        log.debug("could not write the hashes cache under %s: %s", root, exc)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
