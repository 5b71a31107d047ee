"""Deterministic checks on items and solutions. Each returns a drop reason or None.

The reason strings are the keys of the stats' drop counters, so they are stable names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rapidfuzz import fuzz

from finmcq.records import LETTERS, normalize_text

# Options whose meaning depends on the other options or on their position.
_POSITIONAL = re.compile(
    r"모두\s*(옳|맞|틀|정답|해당|포함|고르)"
    r"|(위|상기|앞|다음)의?\s*(보기|선택지|내용|항목)"
    r"|보기\s*중"
    r"|이상\s*모두"
    r"|(정답|해당|답)\s*(이|은)?\s*없"
    r"|[①-⑳㉠-㉭]"
    r"|(^|[\s(])[ㄱ-ㅎ]\s*[,·과와및]"
    r"|(^|\s)[A-G]\s*(와|과|및|,|·)\s*[A-G](\s|$|만|는|이|가)"
    r"|\b(all|none) of the above\b",
    re.IGNORECASE,
)

# Markers of finmcq's own prompt layout; an item containing them would break the pairing.
_FORMAT_MARKERS = re.compile(r"###\s*(질문|선택지|정답)|^\s*[A-G]\.\s", re.MULTILINE)

# Phrases by which a solution admits it was handed the key instead of deriving it.
_GIVEN_KEY = re.compile(
    r"(주어진|제시된|알려준|알려진|제공된)\s*정답|정답(이|은|을)\s*(주어|제시|제공|알려)"
    r"|정답\s*키|answer key|given answer",
    re.IGNORECASE,
)

NEAR_IDENTICAL_OPTION_RATIO = 92.0


def positional_option(options: Sequence[str]) -> str | None:
    for option in options:
        if _POSITIONAL.search(normalize_text(option)):
            return "position_dependent_option"
    return None


def option_problems(options: Sequence[str]) -> str | None:
    """7 non-empty, single-line, distinct and not near-identical options."""
    if len(options) != len(LETTERS):
        return "wrong_option_count"
    normalized = [normalize_text(o) for o in options]
    if any(not o for o in normalized):
        return "empty_option"
    if any("\n" in o or _FORMAT_MARKERS.search(o) for o in options):
        return "format_marker_in_option"
    folded = [o.casefold() for o in normalized]
    if len(set(folded)) != len(folded):
        return "duplicate_option"
    for i in range(len(folded)):
        for j in range(i + 1, len(folded)):
            if fuzz.ratio(folded[i], folded[j]) >= NEAR_IDENTICAL_OPTION_RATIO:
                return "near_identical_options"
    return positional_option(options)


def stem_problems(question: str, answer_text: str) -> str | None:
    """A stem that leaks its key verbatim or carries the prompt's own layout markers."""
    stem = normalize_text(question)
    if not stem:
        return "empty_question"
    if _FORMAT_MARKERS.search(question):
        return "format_marker_in_question"
    key = normalize_text(answer_text)
    if len(key) >= 4 and key.casefold() in stem.casefold():
        return "answer_leaked_in_stem"
    return None


def item_problems(question: str, options: Sequence[str], answer: str) -> str | None:
    """Every deterministic check on a placed 7-option item; the first failure's reason."""
    if answer not in LETTERS:
        return "key_not_in_A_to_G"
    return option_problems(options) or stem_problems(question, options[LETTERS.index(answer)])


def solution_problems(final_answer: str, key: str, texts: Sequence[str]) -> str | None:
    """A solution must conclude with the key and never say it was handed the key."""
    if final_answer != key:
        return "solution_wrong_letter"
    if any(_GIVEN_KEY.search(t) for t in texts):
        return "solution_admits_given_key"
    if any(_FORMAT_MARKERS.search(t) for t in texts):
        return "format_marker_in_solution"
    return None
