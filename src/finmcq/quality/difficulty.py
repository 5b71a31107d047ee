"""Difficulty control: the label an item ends with, and how many of each label the run wants.

Every slot has a target difficulty. Source slots draw theirs from the seed; generated slots are
then given exactly the labels still missing for ``--difficulty-mix`` (largest remainder), so the
targets meet the mix to within one question. An attempt is kept only when its final label equals
its slot's target, which makes the delivered shares meet the mix as well.

The final label combines two views: the generator's (it wrote for a requested difficulty, or says
what it wrote) and the blind solver's (how hard the question was to solve without the key). They
rarely disagree by more than one level; when they do (easy vs hard) the question is called medium.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from finmcq.records import Difficulty

LEVELS: tuple[Difficulty, ...] = (Difficulty.EASY, Difficulty.MEDIUM, Difficulty.HARD)


def final_difficulty(generator: Difficulty | None, solver: Sequence[Difficulty]) -> Difficulty:
    """The generator's label unless the blind-solve evidence is two levels away from it."""
    evidence = sorted(solver, key=LEVELS.index)
    solved = evidence[len(evidence) // 2] if evidence else None  # the median view
    if generator is None:
        return solved or Difficulty.MEDIUM
    if solved is None or abs(LEVELS.index(generator) - LEVELS.index(solved)) <= 1:
        return generator
    return Difficulty.MEDIUM


def mix_shares(mix: Sequence[float]) -> dict[Difficulty, float]:
    """``(easy, medium, hard)`` weights (e.g. 30, 50, 20) as shares summing to 1."""
    total = float(sum(mix))
    return {level: float(w) / total for level, w in zip(LEVELS, mix, strict=True)}


def difficulty_targets(total: int, mix: Sequence[float]) -> dict[Difficulty, int]:
    """How many questions of each level ``total`` needs: largest-remainder split of the mix."""
    shares = mix_shares(mix)
    raw = {level: total * shares[level] for level in LEVELS}
    counts = {level: int(raw[level]) for level in LEVELS}
    by_remainder = sorted(LEVELS, key=lambda lv: (-(raw[lv] - counts[lv]), LEVELS.index(lv)))
    for level in by_remainder[: total - sum(counts.values())]:
        counts[level] += 1
    return counts


def missing_difficulties(total: int, mix: Sequence[float],
                         used: Mapping[Difficulty, int]) -> list[Difficulty]:
    """The labels still needed after ``used``, in level order (may exceed or fall short of the
    slots left when ``used`` overshoots a level; the caller trims or tops up)."""
    targets = difficulty_targets(total, mix)
    return [level for level in LEVELS for _ in range(max(0, targets[level] - used.get(level, 0)))]


def delivered_shares(labels: Sequence[Difficulty | None],
                     mix: Sequence[float]) -> dict[str, object]:
    """Target vs delivered shares, and whether every level is within 5 points of its target."""
    counts = Counter(label for label in labels if label is not None)
    n = max(1, len(labels))
    targets = mix_shares(mix)
    delivered = {level.value: round(counts.get(level, 0) / n, 4) for level in LEVELS}
    error = max(abs(counts.get(level, 0) / n - targets[level]) for level in LEVELS)
    return {
        "target": {level.value: round(targets[level], 4) for level in LEVELS},
        "delivered": delivered,
        "counts": {level.value: counts.get(level, 0) for level in LEVELS},
        "max_abs_error": round(error, 4),
        "within_5_points": error <= 0.05 + 1e-9,
    }
