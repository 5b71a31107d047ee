"""Scoring an eval: the strict answer parser, Wilson intervals, and breakdowns.

**Strict parsing.** The step-2 pairs teach a reply that is the letter alone, so an answer counts
only when the reply, stripped of surrounding whitespace, is exactly one letter A–G, optionally
followed by one period (``"B"``, ``" B\\n"``, ``"B."``). Anything else (``"정답: B"``,
``"B입니다"``, ``"(B)"``, ``"**B**"``, a sentence, an empty reply) is *unparseable*: counted
on its own and scored wrong, since the format is part of what fine-tuning should teach. A letter
beyond the question's options (``E`` on a 4-option KMMLU question) parses, and is wrong.

**Intervals.** Accuracy comes with a 95 % Wilson score interval, which (unlike the normal
approximation) stays inside [0, 1] and is reliable for small groups and for accuracies near 0
or 1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Z_95 = 1.959963984540054  # two-sided 95 % normal quantile
_STRICT = re.compile(r"[A-G]\.?")


def parse_letter(reply: str | None) -> str | None:
    """The letter of a strictly formatted answer, else ``None`` (see the module docstring)."""
    if reply is None:
        return None
    text = reply.strip()
    return text[0] if _STRICT.fullmatch(text) else None


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for ``successes`` out of ``n`` (``(0, 1)`` when ``n == 0``)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact ends, no rounding fuzz
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class Outcome:
    """One question's result in one variant."""

    correct: bool
    unparseable: bool  # a reply came, but not a strict letter
    failed: bool  # no reply at all (the request failed after every retry)
    truncated: bool = False  # some reply of this question stopped at max_tokens


@dataclass(frozen=True)
class Score:
    """Accuracy over a group of questions, with its 95 % Wilson interval."""

    n: int
    correct: int
    unparseable: int
    failed: int
    truncated: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n)

    def as_dict(self) -> dict[str, Any]:
        low, high = self.interval
        accuracy = self.accuracy
        return {
            "n": self.n,
            "correct": self.correct,
            "accuracy": round(accuracy, 6) if accuracy is not None else None,
            "ci95": [round(low, 6), round(high, 6)],
            "unparseable": self.unparseable,
            "failed": self.failed,
            "truncated": self.truncated,
        }


def score(outcomes: Iterable[Outcome]) -> Score:
    n = correct = unparseable = failed = truncated = 0
    for o in outcomes:
        n += 1
        correct += o.correct
        unparseable += o.unparseable
        failed += o.failed
        truncated += o.truncated
    return Score(n=n, correct=correct, unparseable=unparseable, failed=failed, truncated=truncated)


def breakdown(pairs: Iterable[tuple[Any, Outcome]], label: Callable[[Any], str | None],
              order: Sequence[str] = ()) -> dict[str, Score]:
    """Scores per group; ``label`` names an item's group (``None``: the item is left out).

    Groups named in ``order`` come first in that order (easy, medium, hard), the rest sorted.
    """
    groups: dict[str, list[Outcome]] = {}
    for item, outcome in pairs:
        name = label(item)
        if name is not None:
            groups.setdefault(name, []).append(outcome)
    names = [n for n in order if n in groups] + sorted(set(groups) - set(order))
    return {name: score(groups[name]) for name in names}
