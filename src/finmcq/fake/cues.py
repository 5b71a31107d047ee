"""How the fake answers finmcq's requests about answer cues and dates.

* **Key length rank.** A rewrite/generate request asks for ``key_length``: how many distractors
  must be longer than the key and how many shorter. The fake picks its distractors to match, the
  way a model that reads the request would, and misses by one now and then (a model's sense of
  "longer" is approximate); when its candidates cannot give enough longer options it spells one
  out with a qualifier, and when they cannot give enough shorter ones it misses.
* **Dated rules.** The judge's ``time_sensitive``: true when the stem rests on a rule with a
  reference date or a legal limit (the fake reads the stem's words; a real judge reasons).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from finmcq.fake import pools
from finmcq.records import normalize_text

# Share of drafts whose lengths miss the request by one (either way): a model's eye for length.
MISS_RATE = 0.15

Finalize = Callable[[str, Sequence[str], set[int], int], list[str]]

_DATED = re.compile(
    r"\d{4}년\s*\d{0,2}월?\s*기준|기준\s*시점|현행|개정|시행령|감독규정|자본시장법|금융소비자보호법"
    r"|예금자\s*보호|보호\s*한도|상장\s*폐지|공매도\s*(금지|규제)|세율|과세|한도|의무\s*공시"
)


def requested_rank(item: Mapping[str, Any]) -> int | None:
    """The key length rank a request asks for (1 + longer distractors), if it asks."""
    spec = item.get("key_length")
    if not isinstance(spec, Mapping):
        return None
    longer = spec.get("longer_distractors")
    if not isinstance(longer, int) or isinstance(longer, bool) or not 0 <= longer <= 6:
        return None
    return longer + 1


def _length(text: str) -> int:
    return len(normalize_text(text))


def rank_of(correct: str, distractors: Sequence[str]) -> int:
    """1 + the number of distractors strictly longer than ``correct``."""
    key = _length(correct)
    return 1 + sum(_length(d) > key for d in distractors)


def rank_miss(correct: str, distractors: Sequence[str], rank: int) -> int:
    """How far from ``rank`` the key may land: finmcq orders equal lengths by a coin, so a key
    tied with others may take any of their places."""
    low = rank_of(correct, distractors)
    high = low + sum(_length(d) == _length(correct) for d in distractors)
    return max(abs(low - rank), abs(high - rank))


def lengthen_key(correct: str, candidates: Sequence[str], rank: int | None) -> str:
    """``correct``, spelled out with a qualifier when too few candidates are shorter than it for
    the asked-for rank: what a writer told to make the key longer than most options does."""
    if rank is None:
        return correct
    need = len(pools.ADAPT_SUFFIXES) and (7 - rank) + 2  # a margin for the fake's own filters
    pool = {normalize_text(c) for c in candidates if c}

    def shorter(key: str) -> int:
        return sum(_length(c) < _length(key) for c in pool)

    if shorter(correct) >= need:
        return correct
    for suffix in sorted(pools.ADAPT_SUFFIXES, key=len):
        if shorter(correct + suffix) >= need:
            return correct + suffix
    return correct + max(pools.ADAPT_SUFFIXES, key=len)


def fit_length_rank(correct: str, distractors: Sequence[str], candidates: Sequence[str],
                    figures: set[int], rank: int, rng: random.Random,
                    finalize: Finalize) -> list[str]:
    """Six distractors with ``rank - 1`` longer than ``correct`` (give or take a miss).

    ``finalize(correct, candidates, figures, need)`` is the fake's own filter for safe, distinct
    distractors; ``distractors`` (already safe) are preferred, then ``candidates`` in order.
    """
    need = len(distractors) or 6
    want = rank - 1
    if rng.random() < MISS_RATE:
        want = min(need, max(0, want + rng.choice((-1, 1))))
    key = _length(correct)
    pool = list(dict.fromkeys(normalize_text(c) for c in [*distractors, *candidates] if c))
    longer = [c for c in pool if _length(c) > key]
    shorter = [c for c in pool if _length(c) < key]
    if len(longer) < want:  # spell some out, as a writer asked for longer options would
        spelled = set()
        for c in pool:
            if _length(c) <= key and len(longer) < want + 2:
                grown = [c + s for s in pools.ADAPT_SUFFIXES if _length(c + s) > key][:1]
                longer += grown
                spelled.update(c for _ in grown)
        shorter = [c for c in shorter if c not in spelled]  # never "X" beside "X (이론상)"
    if want == 0:  # the key is to be the longest: the closest lengths, not a far longer key
        shorter.sort(key=_length, reverse=True)
    first = finalize(correct, longer, figures, want) if want else []
    chosen = finalize(correct, [*first, *shorter], figures, need)
    if len(chosen) < need:  # not enough of the asked-for lengths: fill up, and miss
        chosen = finalize(correct, [*chosen, *pool], figures, need)
    return chosen


def dated_rule(question: str) -> bool:
    """Whether the stem rests on a rule that can change (a reference date, a law, a limit)."""
    return bool(_DATED.search(normalize_text(question)))
