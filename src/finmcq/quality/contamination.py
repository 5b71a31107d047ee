"""Benchmark contamination: does a delivered question overlap a benchmark's test question?

The benchmark set is the KMMLU test split of the finance-adjacent subjects, read from the same
``--source`` the run loads (hub id or local folder), plus any files the user names
(``--contamination-against``: KMMLU-format CSV/JSONL, or JSON/JSONL/CSV/text files with a question
per record or line, e.g. KRX sample sets). A bundled sample or a single-file source has no test
split; then only the named files are used, and the stats say so.

The measure is *overlap*: the share of a benchmark question's character n-gram shingles (folded as
in :mod:`finmcq.quality.text`) that also occur in the delivered item (stem + options), taken for
the benchmark's question with its options and for its stem alone (when the stem is specific
enough to mean something on its own); the larger counts. A rewrite that keeps a test question
inside a new market context overlaps almost fully, however long the context. Every shingle hash
of every benchmark question sits in one sorted array, so a lookup is a few vectorised searches
and the index costs ~12 bytes per shingle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from finmcq.errors import InputError
from finmcq.quality import hashes_cache
from finmcq.quality.benchmarks import (  # re-exported: their home before the split
    FINANCE_ADJACENT_SUBJECTS,
    BenchmarkQuestion,
    ContaminationHit,
    _from_file,
    _from_source,
    is_single_file,
    item_text,
)
from finmcq.quality.text import DEFAULT_NGRAM, shingle_hashes

__all__ = ["FINANCE_ADJACENT_SUBJECTS", "MIN_SHINGLES", "MIN_STEM_SHINGLES", "BenchmarkQuestion",
           "ContaminationHit", "ContaminationIndex", "item_text", "load_benchmarks"]

# Below this many shingles a benchmark question ("다음 중 옳은 것은?") matches anything.
MIN_SHINGLES = 12
# A stem compared on its own must be longer: short stems are generic ("…에 대한 설명으로 옳지
# 않은 것은?") and would flag any question that asks the same way.
MIN_STEM_SHINGLES = 30



@dataclass
class ContaminationIndex:
    """Benchmark questions by shingle, for overlap lookups."""

    threshold: float = 0.5
    ngram: int = DEFAULT_NGRAM
    compared_against: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Notes that describe an expected gap (the bundled sample has no test split): logged at
    # INFO, not WARNING, so a sample build's console stays quiet. They are in ``notes`` too.
    expected_notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._refs: list[tuple[str, str]] = []
        self._sizes: list[int] = []
        self._hash_parts: list[npt.NDArray[np.uint64]] = []
        self._doc_parts: list[npt.NDArray[np.int32]] = []
        self._hashes: npt.NDArray[np.uint64] = np.zeros(0, dtype=np.uint64)
        self._docs: npt.NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        self._distinct: npt.NDArray[np.uint64] = np.zeros(0, dtype=np.uint64)
        self._starts: npt.NDArray[np.int64] = np.zeros(1, dtype=np.int64)
        self._size_array: npt.NDArray[np.float64] = np.zeros(0, dtype=np.float64)
        self._dirty = False
        self._questions = 0

    def __len__(self) -> int:
        return self._questions

    def add(self, questions: Iterable[BenchmarkQuestion]) -> int:
        """Index ``questions`` (too-short ones are skipped); returns how many were indexed.

        Hashing ~2,600 KMMLU test questions costs ~0.7 s of CPU per build, and their hashes
        depend only on their texts and the hashing code, so they are kept in the cache folder
        (``hashes_cache``) and read back in milliseconds by the next build.
        """
        batch = list(questions)
        hashed = hashes_cache.load(batch, self.ngram)
        if hashed is None:
            hashed = _hash_batch(batch, self.ngram)
            hashes_cache.save(batch, self.ngram, hashed)
        hashes, lengths, owners = hashed
        first = len(self._refs)
        self._refs.extend((batch[i].benchmark, batch[i].ref) for i in owners.tolist())
        self._sizes.extend(lengths.tolist())
        if hashes.size:
            self._hash_parts.append(hashes)
            self._doc_parts.append(np.repeat(np.arange(first, first + lengths.size,
                                                       dtype=np.int32), lengths))
        added = len(set(owners.tolist()))
        self._questions += added
        self._dirty = self._dirty or added > 0
        return added

    def _freeze(self) -> None:
        if not self._dirty:
            return
        hashes = np.concatenate([self._hashes, *self._hash_parts])
        docs = np.concatenate([self._docs, *self._doc_parts])
        order = np.argsort(hashes, kind="stable")
        self._hashes, self._docs = hashes[order], docs[order]
        self._hash_parts, self._doc_parts = [], []
        # Postings by distinct hash: _docs[_starts[i]:_starts[i + 1]] share hash _distinct[i].
        first = np.ones(len(self._hashes), dtype=bool)
        np.not_equal(self._hashes[1:], self._hashes[:-1], out=first[1:])
        self._distinct = self._hashes[first]
        self._starts = np.append(np.flatnonzero(first), len(self._hashes))
        self._size_array = np.asarray(self._sizes, dtype=np.float64)
        self._dirty = False

    def check(self, text: str) -> ContaminationHit | None:
        """The most-overlapped benchmark question if its overlap reaches the threshold."""
        if not self._refs:
            return None
        self._freeze()
        query = shingle_hashes(text, self.ngram)
        distinct = self._distinct
        at = np.searchsorted(distinct, query)
        inside = at < len(distinct)
        at = at[inside]
        at = at[distinct[at] == query[inside]]  # the query's shingles some benchmark has
        if not at.size:
            return None
        left = self._starts[at]
        lengths = self._starts[at + 1] - left
        # Every posting of every shared shingle: start offsets repeated, plus a running index.
        starts = np.repeat(left, lengths)
        offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        shared = np.bincount(self._docs[starts + offsets], minlength=len(self._refs))
        overlap = shared / self._size_array
        best = int(np.argmax(overlap))  # ties: the first indexed, so the result is stable
        if overlap[best] < self.threshold:
            return None
        benchmark, ref = self._refs[best]
        return ContaminationHit(benchmark, ref, round(float(overlap[best]), 4))

    def describe(self) -> dict[str, Any]:
        """What the index holds, for the stats."""
        return {
            "threshold": self.threshold,
            "ngram": self.ngram,
            "compared_against": self.compared_against,
            "questions": len(self),
            "notes": self.notes,
        }


def _hash_batch(batch: Sequence[BenchmarkQuestion], ngram: int) -> hashes_cache.Hashed:
    """The indexed documents of ``batch``: every question with its options, and its stem alone
    when the stem is specific enough and differs; too-short questions are skipped.

    Returns the documents' sorted shingle hashes end to end, each document's count, and the
    index in ``batch`` of the question each document belongs to.
    """
    parts: list[npt.NDArray[np.uint64]] = []
    owners: list[int] = []
    for i, q in enumerate(batch):
        whole = shingle_hashes(q.text, ngram)
        if whole.size < MIN_SHINGLES:
            continue
        parts.append(whole)
        owners.append(i)
        stem = shingle_hashes(q.stem, ngram) if q.stem else whole
        if stem.size >= MIN_STEM_SHINGLES and stem.size < whole.size:
            parts.append(stem)
            owners.append(i)
    hashes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    lengths = np.asarray([p.size for p in parts], dtype=np.int64)
    return hashes, lengths, np.asarray(owners, dtype=np.int64)


def load_benchmarks(source: str | None, extra: Sequence[Path], *,
                    subjects: Sequence[str] = FINANCE_ADJACENT_SUBJECTS, threshold: float = 0.5,
                    ngram: int = DEFAULT_NGRAM) -> ContaminationIndex:
    """The contamination index for a run; never raises for a missing benchmark, it notes it.

    ``source`` None skips the KMMLU test splits (only ``extra`` files are used). A named file that
    cannot be read is an ``InputError``: the user asked for it explicitly. What could not be
    compared is in ``index.notes``; the caller logs them (a build does so on its event loop, so
    a loading thread that outlives a stopped run says nothing after the run has ended).
    """
    index = ContaminationIndex(threshold=threshold, ngram=ngram)
    if source is not None:
        questions, described, notes = _from_source(source, subjects)
        index.add(questions)
        index.compared_against.extend(described)
        index.notes.extend(notes)
        if is_single_file(source):
            index.expected_notes.extend(notes)
    for path in extra:
        try:
            questions = _from_file(Path(path))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read contamination file {path}: {exc}",
                             fix="Give a KMMLU-format CSV/JSONL, a JSON/JSONL/CSV file with a "
                             "'question' field, or a text file with one question per line"
                             ) from exc
        added = index.add(questions)
        index.compared_against.append({"benchmark": Path(path).name, "source": str(path),
                                       "questions": added})
    return index
