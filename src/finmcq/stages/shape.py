"""Shape: the deterministic leak and shape checks on a placed item, before any LLM sees it.

Seven non-empty, distinct (after folding), not near-identical and position-independent options;
a stem without the key in it or the prompt's layout markers; and no answer-length cue (see
:func:`finmcq.checks.answer_length_cue`). Each failure is counted under its own reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from finmcq import checks
from finmcq.stages.base import Dropped, StageStats


class ShapeStage:
    """Deterministic stage: no prompt, no LLM; counts in, out and each drop reason."""

    name = "shape"

    def __init__(self) -> None:
        self.stats = StageStats(self.name)

    def run(self, question: str, options: Sequence[str], answer: str, *,
            allow_key_longest: bool) -> Dropped | None:
        """None when the item may go on, else the first check that failed."""
        problem = checks.shape_problems(question, options, answer,
                                        allow_key_longest=allow_key_longest)
        if problem is None:
            self.stats.keep()
            return None
        self.stats.drop(problem)
        return Dropped(problem)
