"""Contamination: does a placed item overlap a benchmark test question?

Deterministic (see :mod:`finmcq.quality.contamination`). A flagged item goes on and is listed in
the stats with the benchmark it overlaps, or is dropped (``--drop-contaminated``) so its slot
tries again; either way before any verify call is paid for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finmcq.quality.benchmarks import ContaminationHit, item_text
from finmcq.records import McqItem
from finmcq.stages.base import Dropped, StageStats

if TYPE_CHECKING:  # imports numpy; the index is built in a thread when the build starts
    from finmcq.quality.contamination import ContaminationIndex


class ContaminationStage:
    """Deterministic stage over a :class:`ContaminationIndex`."""

    name = "contamination"

    def __init__(self, index: ContaminationIndex, *, drop: bool = False) -> None:
        self.index = index
        self.drop = drop
        self.stats = StageStats(self.name)
        self.flagged = 0  # items seen that overlap a benchmark, dropped or not

    def run(self, item: McqItem) -> ContaminationHit | Dropped | None:
        """The overlap found (the item goes on), ``Dropped`` when dropping, or None if clean."""
        hit = self.index.check(item_text(item.question, item.options))
        if hit is not None:
            self.flagged += 1
            if self.drop:
                self.stats.drop("contaminated")
                return Dropped("contaminated", f"{hit.overlap:.2f} of {hit.benchmark} {hit.ref}")
        self.stats.keep()
        return hit
