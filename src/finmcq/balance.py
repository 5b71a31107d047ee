"""Set-level balancing of the key's length rank, after every slot is filled.

Each slot asks for a target rank (a seeded plan: every rank N/7 ± 1) and accepts a draft whose
rank lands within a tolerance of it, so a writer that misses by one costs nothing. Misses that
lean one way (a model that never makes the key the longest) would still pile up in some ranks;
:func:`rebalance_plan` then picks, deterministically, the fewest delivered items to replace so
that every rank comes back inside its band, and the rank each replacement must hit exactly.
The pipeline redrafts those slots (same topic, letter and difficulty) and keeps the old item
when no redraft hits the rank, so balancing never leaves a slot empty.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from finmcq.quality.length_rank import RANKS, band_bounds

# The pipeline balances to a narrower band than the promise (± 5 points) so that dedupe
# refills afterwards cannot push a rank out of it.
REBALANCE_BAND = 0.03


@dataclass(frozen=True)
class RankRow:
    """One delivered item as the balancing sees it."""

    slot_id: str
    rank: int  # the delivered key's length rank
    target: int | None  # what the slot asked for
    generated: bool  # a generated item is replaced before a rewrite of a source question
    attempts_left: int  # attempts the slot still has


def balance_bounds(total: int, band: float = REBALANCE_BAND) -> tuple[int, int]:
    """Least and most items per rank the balancing aims for; at least ± 1 item on tiny sets."""
    low, high = band_bounds(total, band)
    even = total / len(RANKS)
    return min(low, max(0, int(even) - 1)), max(high, int(-(-even // 1)) + 1)


def rebalance_plan(rows: Sequence[RankRow], band: float = REBALANCE_BAND
                   ) -> list[tuple[str, int]]:
    """``(slot_id, rank to hit)`` for the items to redraft, in slot order; empty when balanced.

    Items are taken from ranks above the band's top (then, while ranks below its bottom still
    lack items, from the fullest ranks): first those that missed their own target, then
    generated ones, then in slot order. Each gets a rank below the band's bottom first, then
    the rank with most room under the top.
    """
    low, high = balance_bounds(len(rows), band)
    counts = Counter(row.rank for row in rows)
    wanted = [r for r in RANKS for _ in range(max(0, low - counts[r]))]
    excess = {r: counts[r] - high for r in RANKS if counts[r] > high}
    if not excess and not wanted:
        return []
    pools = {r: sorted((row for row in rows if row.rank == r and row.attempts_left > 0),
                       key=lambda row: (row.target == row.rank, not row.generated, row.slot_id))
             for r in RANKS}
    victims: list[RankRow] = []
    left = {r: counts[r] for r in RANKS}
    for r, n in excess.items():
        taken = pools[r][:n]
        victims += taken
        pools[r] = pools[r][len(taken):]
        left[r] -= len(taken)
    while len(victims) < len(wanted):  # still short: take from the fullest rank above the floor
        spare = [r for r in RANKS if pools[r] and left[r] > low and r not in wanted]
        if not spare:
            break
        r = max(spare, key=lambda k: (left[k], -k))
        victims.append(pools[r].pop(0))
        left[r] -= 1
    room = {r: high - left[r] - wanted.count(r) for r in RANKS if r not in excess}
    plan: list[tuple[str, int]] = []
    for row in sorted(victims, key=lambda v: v.slot_id):
        if wanted:
            rank = wanted.pop(0)
        else:
            spare = [r for r in room if room[r] > 0 and r != row.rank]
            if not spare:
                break
            rank = max(spare, key=lambda r: (room[r], -r))
            room[rank] -= 1
        plan.append((row.slot_id, rank))
    return plan
