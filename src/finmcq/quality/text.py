"""Folding Korean text for comparison, and character n-gram shingles.

Word tokenisers built for English drop or split Hangul badly, and Korean spacing is loose
("가격 우선 원칙" and "가격우선원칙" are the same words), so finmcq compares *characters*:

1. :func:`fold_text` applies Unicode NFKC (canonical composition as NFC does, so NFD jamo
   sequences become syllables, plus compatibility forms: full-width digits and letters), casefolds,
   and removes whitespace and "soft" punctuation (quotes, brackets, sentence marks). Marks that
   change meaning in finance stay: ``%``, ``+``, ``-``, ``/``, currency signs, and the marks between
   two digits that make them two numbers or a fraction: the decimal point ("1.5%" must not fold to
   "15%"), ranges and ratios ("3~5%" is not "35%", "1:2" not "12"), and a comma that is no
   thousands separator ("1,2" is not "12"); thousands separators go ("1,000" = "1000").
2. :func:`shingles` is the set of overlapping character n-grams of the folded text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported on first use: a build's first requests do not wait for it
    import numpy as np
    import numpy.typing as npt

DEFAULT_NGRAM = 4
# A stem this short ("다음 중 옳은 것은?") says little on its own: its options join the text.
SHORT_STEM_CHARS = 40

# Removed when folding: whitespace is handled separately; these carry no content.
_SOFT_PUNCTUATION = frozenset(".,·・:;!?'\"“”‘’`()[]{}<>「」『』【】〈〉《》…~〜_*#|")
# Marks that stay when they stand between two digits (a decimal point, a range, a ratio, a
# comma that is no thousands separator); anywhere else they are soft punctuation.
_DIGIT_MARKS = ".~:,"
_BETWEEN_DIGITS = re.compile(r"(?<=\d)\s*([.~:,])\s*(?=\d)")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_DASHES = {"−": "-", "–": "-", "—": "-", "‐": "-", "‑": "-", "〜": "~"}
_DASH = re.compile("[" + "".join(_DASHES) + "]")
# After whitespace is gone: soft punctuation, and a digit mark without a digit on both sides.
# One leading character class lets the regex engine skip everything else fast; the lookbehind
# after it tells which kind was matched (a run of soft punctuation, or one mark).
_SOFT = "".join(re.escape(ch) for ch in sorted(_SOFT_PUNCTUATION - set(_DIGIT_MARKS)))
_MARKS = re.escape(_DIGIT_MARKS)
_DROPPED = re.compile(f"[{_SOFT}{_MARKS}]"
                      f"(?:(?<=[{_SOFT}])[{_SOFT}]*"  # soft punctuation: the whole run
                      f"|(?<=[{_MARKS}])(?:(?<!\\d[{_MARKS}])|(?!\\d)))")  # a lone mark


@lru_cache(maxsize=8192)  # options recur across items; stems do not, so a small cache suffices
def fold_text(text: str) -> str:
    """``text`` in the form finmcq compares: NFKC, casefolded, no spaces or soft punctuation.

    Written with regular expressions and C string methods only: ``str.translate`` with a table
    costs ~50 µs per 500 Hangul characters, and a build folds every item several times.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    if _DASH.search(text):
        text = _DASH.sub(lambda m: _DASHES[m.group()], text)
    text = _THOUSANDS.sub("", text)
    text = _BETWEEN_DIGITS.sub(r"\1", text)  # "1 . 5" -> "1.5": the mark's spacing closed up
    # Whitespace (str.isspace, as regex's \s), then the rest. A mark's nearest non-space
    # neighbours become its neighbours, so removing whitespace first changes no decision.
    text = _DROPPED.sub("", "".join(text.split()))
    # Left to drop: control and format characters (category C). With whitespace gone, a text
    # without them is printable, which str.isprintable checks in C: the loop is the rare path.
    if not text.isprintable():
        text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    return text


def shingles(text: str, n: int = DEFAULT_NGRAM) -> frozenset[str]:
    """The character ``n``-grams of the folded ``text`` (the whole folded text if shorter)."""
    folded = fold_text(text)
    if len(folded) <= n:
        return frozenset((folded,)) if folded else frozenset()
    return frozenset(folded[i:i + n] for i in range(len(folded) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / |a ∪ b|; 0 for two empty sets."""
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


def jaccard_of_hashes(a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]) -> float:
    """:func:`jaccard` over two :func:`shingle_hashes` arrays (sorted, unique); 0 if both empty.

    The same value as over the shingle strings (barring a 64-bit hash collision), from ~1.3 KB
    of array per text instead of ~17 KB of frozenset and strings.
    """
    import numpy as np

    if not a.size and not b.size:
        return 0.0
    shared = int(np.intersect1d(a, b, assume_unique=True).size)
    return shared / (a.size + b.size - shared)


_MULT = 0x100000001B3  # FNV-1a 64-bit prime, as a polynomial base
_MIX1, _MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def question_text(question: str, options: Sequence[str]) -> str:
    """What near-duplicate detection compares for one item: the stem, or stem + options if short.

    Generated items of one topic share many options by design, so options would make unrelated
    questions look alike; but two items with a generic one-line stem differ only in options.
    """
    if len(fold_text(question)) >= SHORT_STEM_CHARS:
        return question
    return " ".join([question, *sorted(options)])


def shingle_hashes(text: str, n: int = DEFAULT_NGRAM) -> npt.NDArray[np.uint64]:
    """Sorted unique stable 64-bit hashes of the shingles of ``text`` (same in every process).

    Computed over the code points with numpy (a polynomial over each window of ``n``, then the
    splitmix64 finaliser), not per shingle in Python: this runs for every delivered item and
    every benchmark question, and hashing each shingle string cost ~1 ms per item.
    """
    import numpy as np

    folded = fold_text(text)
    if not folded:
        return np.zeros(0, dtype=np.uint64)
    points = np.frombuffer(folded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    width = min(n, len(points))  # a text shorter than n is one shingle
    count = len(points) - width + 1
    one, mult = np.uint64(1), np.uint64(_MULT)
    with np.errstate(over="ignore"):  # wrapping uint64 arithmetic is the point
        # The polynomial over every window at once: one slice of the code points per position.
        h = np.uint64(width) * mult + points[:count] + one
        for column in range(1, width):
            h *= mult
            h += points[column:column + count]
            h += one
        h ^= h >> np.uint64(30)
        h *= np.uint64(_MIX1)
        h ^= h >> np.uint64(27)
        h *= np.uint64(_MIX2)
        h ^= h >> np.uint64(31)
    # Sorted and unique (np.unique does the same with ~4x the overhead at this size).
    h.sort()
    distinct = np.empty(len(h), dtype=bool)
    distinct[0] = True
    np.not_equal(h[1:], h[:-1], out=distinct[1:])
    return h[distinct]
