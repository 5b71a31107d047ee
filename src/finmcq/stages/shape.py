"""Shape: the deterministic leak and shape checks on a placed item, before any LLM sees it.

Seven non-empty, distinct (after folding) and position-independent options (options one number
or one term apart are kept: whether they mean the same is the second-answer judge's question);
a stem without the key in it or the prompt's layout markers; no key far longer than every
distractor; and the key's length rank (:mod:`finmcq.quality.length_rank`) within ``tolerance`` of
the slot's target, so a writer that misses the asked-for lengths by a little still delivers, and
only far misses cost a new draft (the set is balanced afterwards, see
:meth:`finmcq.pipeline.Pipeline`). Each failure is counted under its own reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from finmcq import checks
from finmcq.quality.length_rank import key_length_rank
from finmcq.records import LETTERS
from finmcq.stages.base import Dropped, StageStats

RANK_OFF_TARGET = "key_length_rank_off_target"


@dataclass(frozen=True)
class RankTarget:
    """The key length rank a slot asks for, how far off it may land, and the tie-break seed."""

    rank: int
    tolerance: int
    seed: object


def shape_problem(question: str, options: Sequence[str], answer: str,
                  target: RankTarget | None = None) -> Dropped | None:
    """The first failed check on a placed item, with its detail; None when it may go on."""
    # The key-is-longest cap is replaced by the rank target: only a key far longer than every
    # distractor is dropped by the length cue check itself.
    problem = checks.shape_problems(question, options, answer, allow_key_longest=True)
    if problem is not None:
        return Dropped(problem)
    if target is not None and answer in LETTERS:
        rank = key_length_rank(options, LETTERS.index(answer), target.seed)
        if abs(rank - target.rank) > target.tolerance:
            return Dropped(RANK_OFF_TARGET, f"key length rank {rank}, slot asks for "
                           f"{target.rank} (± {target.tolerance})")
    return None


class ShapeStage:
    """Deterministic stage: no prompt, no LLM; counts in, out and each drop reason."""

    name = "shape"

    def __init__(self) -> None:
        self.stats = StageStats(self.name)

    def run(self, question: str, options: Sequence[str], answer: str,
            target: RankTarget | None = None) -> Dropped | None:
        """None when the item may go on, else the first check that failed."""
        return self.stats.count(shape_problem(question, options, answer, target))
