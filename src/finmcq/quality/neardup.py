"""Near-duplicate detection among the questions of a run, deterministic in the given order.

Each text gets a MinHash signature of its character n-gram shingles (:mod:`finmcq.quality.text`):
per permutation ``i``, the least ``(a_i * h + b_i) mod 2**64`` over the shingles' 64-bit hashes
``h``, top 32 bits kept (multiply-add-shift, a universal family needing no modulo by a prime), all
shingles and permutations at once in numpy. The signature is cut into bands; texts that agree
on a whole band are *candidates* (locality-sensitive hashing), and every candidate pair is
confirmed by the exact Jaccard similarity of the shingle sets, so LSH only decides which pairs
are looked at, never the verdict. Only a signature is kept per text (band keys, ``bands × 8``
bytes, plus a digest of the folded text for exact duplicates); texts are read back only for
candidate pairs, through a callback, with their shingle sets in a small LRU keyed by index.
Candidates come from sorting each band column, per text only the nearest few per band and, of
those, the few sharing the most bands, so time and memory stay linear even for 100,000
templated questions.

:meth:`NearDuplicateFinder.find` walks the texts in order: a text that duplicates an earlier
text that was itself kept is a duplicate; the first of a group always survives. The result is a
function of the texts and their order only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from finmcq.quality.text import (
    DEFAULT_NGRAM,
    fold_text,
    jaccard_of_hashes,
    shingle_hashes,
)
from finmcq.quality.text import SHORT_STEM_CHARS as SHORT_STEM_CHARS  # re-exported
from finmcq.quality.text import question_text as question_text  # re-exported

NUM_PERM = 128
MIN_RECALL_AT_THRESHOLD = 0.98
# Work per text is bounded: per band the few nearest earlier texts with the same key, and of
# those the few sharing most bands are confirmed exactly.
NEIGHBOURS_PER_BAND = 3
CANDIDATES_PER_TEXT = 4
# A signature is the band keys followed by this many bytes of a digest of the folded text.
DIGEST_BYTES = 16
# Shingle sets kept while confirming candidates: enough for the texts near the current one.
SHINGLE_CACHE = 1024
# The permutations' parameters come from this seed: signatures are the same in every run.
PERMUTATION_SEED = 1
_EMPTY = np.uint64((1 << 32) - 1)  # the signature value of a text with no shingles


@dataclass(frozen=True)
class Duplicate:
    """Text ``index`` repeats the earlier text ``of`` (exactly, or with this similarity)."""

    index: int
    of: int
    similarity: float
    exact: bool

    @property
    def reason(self) -> str:
        """The drop reason the stats count this under."""
        return "duplicate_question" if self.exact else "near_duplicate_question"


def lsh_rows(threshold: float, num_perm: int = NUM_PERM) -> int:
    """Rows per band: the most that still make a pair at ``threshold`` a candidate 98 % of the time.

    More rows per band means fewer false candidates; the exact confirmation removes those anyway,
    so recall at the threshold is what matters.
    """
    best = 1
    for rows in range(1, 17):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= MIN_RECALL_AT_THRESHOLD:
            best = rows
    return best


class NearDuplicateFinder:
    """Finds duplicates among texts from compact per-text signatures.

    Nothing is cached by text: a caller that streams its texts (e.g. from a run store) keeps
    only :meth:`signature` bytes per text and hands :meth:`find_signed` a way to read a text
    back for the few candidate pairs that need an exact Jaccard check.
    """

    def __init__(self, threshold: float = 0.6, ngram: int = DEFAULT_NGRAM,
                 num_perm: int = NUM_PERM) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.ngram = ngram
        self.num_perm = num_perm
        self.rows = lsh_rows(threshold, num_perm)
        self.bands = num_perm // self.rows
        # Multipliers (odd) and offsets of the permutations; see the module docstring.
        rng = np.random.default_rng(PERMUTATION_SEED)
        self._multipliers = rng.integers(0, 1 << 63, num_perm, dtype=np.uint64) * np.uint64(2) \
            + np.uint64(1)
        self._offsets = rng.integers(0, 1 << 63, num_perm, dtype=np.uint64) * np.uint64(2)
        # Band keys mix the rows of a band with these odd multipliers (wrapping uint64).
        with np.errstate(over="ignore"):
            self._mix = (np.arange(1, self.rows + 1, dtype=np.uint64)
                         * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)

    @property
    def signature_size(self) -> int:
        """Bytes per :meth:`signature`."""
        return self.bands * 8 + DIGEST_BYTES

    def band_keys(self, text: str) -> bytes:
        """The LSH band keys of ``text`` (``bands`` uint64 values)."""
        hv = shingle_hashes(text, self.ngram)
        if len(hv):
            with np.errstate(over="ignore"):  # wrapping uint64 arithmetic is the point
                products = np.multiply.outer(hv, self._multipliers)
                products += self._offsets
            # The shift is monotonic: the least shifted value is the least value, shifted.
            values = products.min(axis=0) >> np.uint64(32)
        else:
            values = np.full(self.num_perm, _EMPTY, dtype=np.uint64)
        values = values[: self.bands * self.rows]
        with np.errstate(over="ignore"):  # wrapping multiplication is the point
            keys = (values.reshape(self.bands, self.rows) * self._mix).sum(axis=1,
                                                                          dtype=np.uint64)
        packed: bytes = keys.astype(np.uint64).tobytes()
        return packed

    def signature(self, text: str) -> bytes:
        """What :meth:`find_signed` needs of ``text``: band keys + a digest of its folded form.

        The digest stands in for the folded text in the exact-duplicate check (a 128-bit
        collision is not a practical concern), so callers need not keep texts in memory.
        """
        digest = hashlib.blake2b(fold_text(text).encode("utf-8"), digest_size=DIGEST_BYTES)
        return self.band_keys(text) + digest.digest()

    def _previous(self, keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.int32]:
        """For every band and text, the nearest earlier texts sharing that band's key.

        Row ``band * NEIGHBOURS_PER_BAND + (d - 1)`` holds, per text, the ``d``-th nearest earlier
        text with the same key in that band, or -1. Bounded by design: a corpus of templated
        questions collides in many bands with many texts, and a true near duplicate collides in
        so many bands that its partner is found among the nearest ones anyway.
        """
        n = keys.shape[0]
        previous = np.full((self.bands * NEIGHBOURS_PER_BAND, n), -1, dtype=np.int32)
        positions = np.arange(n, dtype=np.int32)
        for band in range(self.bands):
            order = np.lexsort((positions, keys[:, band]))  # by key, then by position
            ordered = keys[order, band]
            for d in range(1, NEIGHBOURS_PER_BAND + 1):
                same = ordered[d:] == ordered[:-d]  # sorted: equal ends mean an equal run
                previous[band * NEIGHBOURS_PER_BAND + d - 1, order[d:][same]] = order[:-d][same]
        return previous

    def _candidates(self, previous: npt.NDArray[np.int32], index: int) -> list[int]:
        """The earlier texts most often sharing a band with text ``index`` (most first)."""
        column = previous[:, index]
        column = column[column >= 0]
        if not column.size:
            return []
        values, counts = np.unique(column, return_counts=True)
        ranked = sorted(zip(counts.tolist(), values.tolist(), strict=True),
                        key=lambda pair: (-pair[0], pair[1]))
        return [int(value) for _count, value in ranked[:CANDIDATES_PER_TEXT]]

    def find(self, texts: Sequence[str]) -> list[Duplicate]:
        """Every text that repeats an earlier *kept* text, in order."""
        return self.find_signed([self.signature(t) for t in texts], texts.__getitem__)

    def find_signed(self, signatures: Sequence[bytes],
                    text_of: Callable[[int], str]) -> list[Duplicate]:
        """:meth:`find` over precomputed :meth:`signature` values; ``text_of(i)`` reads text i.

        ``text_of`` is called only for candidate pairs, and its shingle sets are cached by index
        in a small LRU, so memory stays flat whatever the number of texts.
        """
        n = len(signatures)
        width = self.bands * 8
        packed = b"".join(signatures)
        if len(packed) != n * self.signature_size:
            raise ValueError("signatures do not come from this finder's settings")
        rows = np.frombuffer(packed, dtype=np.uint8).reshape(n, self.signature_size)
        # A view of the band keys, not a copy (n x bands x 8 bytes: 26 MB at 100,000 texts).
        keys: npt.NDArray[np.uint64] = rows[:, :width].view(np.uint64)
        previous = self._previous(keys) if n > 1 else None
        shingle_set = lru_cache(maxsize=SHINGLE_CACHE)(  # sorted shingle hashes, by index
            lambda i: shingle_hashes(text_of(i), self.ngram))
        first_of: dict[bytes, int] = {}
        dropped: set[int] = set()
        found: list[Duplicate] = []
        for index, signature in enumerate(signatures):
            digest = signature[width:]
            earlier = first_of.get(digest)
            if earlier is not None:
                found.append(Duplicate(index, earlier, 1.0, exact=True))
                dropped.add(index)
                continue
            candidates = self._candidates(previous, index) if previous is not None else []
            duplicate = self._near(index, candidates, dropped, shingle_set)
            if duplicate is None:
                first_of[digest] = index
            else:
                found.append(duplicate)
                dropped.add(index)
        return found

    def _near(self, index: int, candidates: Sequence[int], dropped: set[int],
              shingle_set: Callable[[int], npt.NDArray[np.uint64]]) -> Duplicate | None:
        """The first kept candidate (most band collisions first) similar enough to it."""
        for other in candidates:
            if other in dropped:
                continue
            similarity = jaccard_of_hashes(shingle_set(index), shingle_set(other))
            if similarity >= self.threshold:
                return Duplicate(index, other, round(similarity, 4), exact=False)
        return None
