"""The quality block of the run's stats: measurements over the delivered items.

Each function takes plain records and returns a JSON-ready dict, so the stats can be recomputed
from an items file and tested without a run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from finmcq import checks
from finmcq.records import McqItem, SolutionGrade

# Which stage counter holds each named check's drops: (stage, reason) pairs.
CHECK_COUNTERS: dict[str, tuple[tuple[str, str], ...]] = {
    "second_answer_judge": (("judge", "distractor_defensible"), ("judge", "judge_key_incorrect"),
                            ("judge", "judge_incomplete_review")),
    "blind_solve": (("verify", "blind_solve_mismatch"),),
    "self_consistency": (("verify", "self_consistency_mismatch"),),
    "difficulty_control": (("verify", "difficulty_off_target"),),
    "near_duplicate": (("dedupe", "near_duplicate_question"),),
    "exact_duplicate": (("dedupe", "duplicate_question"),),
    "contamination": (("contamination", "contaminated"),),
    "answer_leak": (("shape", "answer_leaked_in_stem"),),
    # key_longest_option: the key-is-longest cap, replaced by the length-rank target in issue 10.
    "answer_length_cue": (("shape", "key_much_longer"), ("shape", "key_length_rank_off_target"),
                          ("shape", "key_longest_option")),
    # near_identical_options: a fuzzy-ratio drop removed in issue 10; kept to read older runs.
    "duplicate_options": (("shape", "duplicate_option"), ("shape", "near_identical_options")),
    "position_dependent_option": (("shape", "position_dependent_option"),),
    "solution_wrong_letter": (("solve", "solution_wrong_letter"),),
    "solution_skips_options": (("solve", "solution_skips_options"),),
    "solution_score": (("grade", "solution_score_below_threshold"),),
}


def drops_by_check(stages: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per named check: items it dropped, and replies it rejected that a retry then replaced."""
    out: dict[str, dict[str, int]] = {}
    for check, counters in CHECK_COUNTERS.items():
        dropped = retried = 0
        for stage, reason in counters:
            row = stages.get(stage, {})
            dropped += int(row.get("drop_reasons", {}).get(reason, 0))
            retried += int(row.get("retried", {}).get(reason, 0))
        out[check] = {"dropped": dropped, "rejected_replies": retried}
    out["second_answer_judge"]["repaired"] = int(
        stages.get("judge", {}).get("retried", {}).get("repaired", 0))
    return out


def answer_length_cue(items: Sequence[McqItem], max_share: float) -> dict[str, Any]:
    """How often the key is the (strictly) longest option; the cap is ``max_share``."""
    longest = sum(checks.key_is_longest(item.options, item.answer) for item in items)
    return answer_length_cue_of(longest, len(items), max_share)


def answer_length_cue_of(longest: int, n: int, max_share: float) -> dict[str, Any]:
    """:func:`answer_length_cue` from counts (``longest`` of ``n`` keys are the longest)."""
    share = longest / max(1, n)
    return {"key_is_longest": longest, "share": round(share, 4), "max_share": max_share,
            "within_cap": share <= max_share + 1e-9}


def negation(items: Sequence[McqItem], share_range: tuple[float, float]) -> dict[str, Any]:
    """Negation stems ("옳지 않은 것은?"): neither absent nor dominant."""
    count = sum(checks.is_negative_stem(item.question) for item in items)
    return negation_of(count, len(items), share_range)


def negation_of(count: int, n: int, share_range: tuple[float, float]) -> dict[str, Any]:
    """:func:`negation` from counts (``count`` of ``n`` stems are negative)."""
    share = count / max(1, n)
    low, high = share_range
    return {"count": count, "share": round(share, 4), "range": [low, high],
            "in_range": low - 1e-9 <= share <= high + 1e-9}


def solution_scores(grades: Sequence[SolutionGrade | None]) -> dict[str, Any]:
    """Distribution of the grader's scores over delivered solutions (empty when not graded)."""
    graded = [g for g in grades if g is not None]
    if not graded:
        return {"graded": 0}
    out: dict[str, Any] = {"graded": len(graded)}
    for criterion in ("correctness", "coverage", "grounding", "lowest"):
        values = [int(getattr(g, criterion)) for g in graded]
        counts = Counter(values)
        out[criterion] = {
            "distribution": {str(k): counts.get(k, 0) for k in range(1, 6)},
            "mean": round(sum(values) / len(values), 3),
        }
    return out
