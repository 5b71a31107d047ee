"""The key's length rank: a cue a fine-tuned model learns when it is not balanced.

The rank is the key's place when the 7 options are sorted by length, longest first (1 = the key
is the longest, 7 = the shortest). Options of equal length are ordered by a seeded coin, so equal
lengths carry no cue. With no cue each rank holds 1/7 (14.3 %) of the items; the pipeline plans a
target rank per slot like it plans letters (:func:`finmcq.stages.placement.rank_targets`), asks
the writer for it, and balances what is delivered (:mod:`finmcq.pipeline`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from finmcq.records import LETTERS, normalize_text
from finmcq.stages.placement import seeded_rng

RANKS: tuple[int, ...] = tuple(range(1, len(LETTERS) + 1))
EVEN_SHARE = 1 / len(RANKS)
DEFAULT_BAND = 0.05  # every rank's share within 14.3 ± 5 points


def option_length(text: str) -> int:
    """An option's length as the rank counts it: characters after whitespace is collapsed."""
    return len(normalize_text(text))


def key_length_rank(options: Sequence[str], answer_index: int, seed: object) -> int:
    """1 (no option is longer than the key) … len(options) (every other option is longer).

    Options as long as the key share its place: a coin seeded by ``seed`` (the item) puts the
    key among them, so a tie says nothing about which one is the key.
    """
    lengths = [option_length(o) for o in options]
    key = lengths[answer_index]
    others = lengths[:answer_index] + lengths[answer_index + 1:]
    longer = sum(n > key for n in others)
    ties = sum(n == key for n in others)
    return 1 + longer + (seeded_rng("length-rank-tie", seed).randint(0, ties) if ties else 0)


def draft_length_rank(correct: str, distractors: Sequence[str], seed: object) -> int:
    """The rank of ``correct`` among itself and ``distractors`` (placement does not change it)."""
    return key_length_rank([correct, *distractors], 0, seed)


def longer_distractors(rank: int) -> int:
    """How many of the six distractors must be longer than the key for ``rank``."""
    return rank - 1


def rank_request(rank: int) -> dict[str, int]:
    """What the rewrite/generate input asks for: concrete counts, not an abstract rank."""
    return {"longer_distractors": longer_distractors(rank),
            "shorter_distractors": len(RANKS) - rank}


def band_bounds(total: int, band: float = DEFAULT_BAND) -> tuple[int, int]:
    """The least and most items one rank may hold among ``total`` to stay within the band."""
    even = total * EVEN_SHARE
    slack = band * total
    low = max(0, int(-(-(even - slack) // 1)))  # ceil
    high = int((even + slack) // 1)
    return low, max(low, high)


def distribution(ranks: Iterable[int], band: float = DEFAULT_BAND,
                 n_ranks: int = len(RANKS)) -> dict[str, Any]:
    """Counts and shares per rank, and whether every share is within 1/7 (14.3 %) ± ``band``
    (1/``n_ranks`` for items with another number of options)."""
    counts = Counter(ranks)
    total = sum(counts.values())
    every = range(1, n_ranks + 1)
    even = 1 / n_ranks
    shares = {str(r): round(counts.get(r, 0) / total, 4) if total else 0.0 for r in every}
    deviation = max((abs(s - even) for s in shares.values()), default=0.0)
    return {
        "counts": {str(r): counts.get(r, 0) for r in every},
        "shares": shares,
        "even_share": round(even, 4),
        "band": band,
        "max_deviation": round(deviation, 4) if total else 0.0,
        "within_band": bool(total) and deviation <= band + 1e-9,
    }
