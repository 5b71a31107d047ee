"""Distractors shared by rewrite and generate, and which pooled statements are true.

A distractor is safe when it is not positional, not a duplicate of the key or of another option,
and its :func:`~finmcq.fake.replies.common.option_code` cannot be mistaken for the key's mark in
the stem. Every pooled statement is known to be true or false (:func:`statement_truth`), which is
what the judge and defect mode read.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from finmcq.fake import cues, pools
from finmcq.fake.replies.common import casefolded, is_positional, option_code
from finmcq.quality.text import fold_text
from finmcq.records import MARKET_TOPICS, Topic, normalize_text

_NEGATIVE_QUESTION = re.compile(
    r"옳지\s*않은|틀린|적절하지\s*않은|아닌\s*것|거리가\s*먼|잘못된|해당하지\s*않는|바르지\s*않은"
    r"|부적절한|맞지\s*않는"
)


def finalize_distractors(correct: str, candidates: Iterable[str], figures: set[int],
                         need: int = 6) -> list[str]:
    """Up to ``need`` distinct, safe distractors taken in order from ``candidates``.

    Safe means: not positional, not the same as the correct option or one already taken after
    folding (options one number or one word apart are fine: that is how exams build distractors),
    and with an :func:`option_code` that neither equals the correct option's nor appears among
    the stem's 4-digit ``figures`` (else verify could land on it). A candidate whose code collides
    is adapted with a neutral qualifier instead of being dropped.
    """
    forbidden = set(figures) | {option_code(correct)}
    taken: list[str] = []
    bare = {fold_text(correct)}  # finmcq's duplicate test: no spaces or punctuation
    for raw in candidates:
        if len(taken) == need:
            break
        text = normalize_text(raw)
        if not text or is_positional(text) or fold_text(text) in bare:
            continue
        for suffix in ("", *pools.ADAPT_SUFFIXES):
            if option_code(text + suffix) not in forbidden:
                taken.append(text + suffix)
                bare.add(fold_text(text + suffix))
                break
    return taken


def key_is_longest(correct: str, distractors: Sequence[str]) -> bool:
    """Whether the key is strictly longer than every distractor (finmcq's answer-length cue)."""
    return bool(distractors) and len(normalize_text(correct)) > max(
        len(normalize_text(d)) for d in distractors)


def _avoid_longest_key(correct: str, distractors: list[str], candidates: Sequence[str],
                       figures: set[int]) -> list[str]:
    """The prompt says the key must not be the longest option: swap the shortest distractor for a
    longer safe candidate, or else spell out the longest distractor with a qualifier, as a model
    asked for a longer distractor would."""
    if not key_is_longest(correct, distractors):
        return distractors
    size = len(normalize_text(correct))
    by_length = sorted(distractors, key=len, reverse=True)
    tries = [(by_length[:-1], c) for c in candidates if len(normalize_text(c)) > size]
    qualifiers = pools.ADAPT_SUFFIXES
    tries += [(by_length[1:], by_length[0] + a + b)
              for a in ("", *qualifiers) for b in qualifiers if a != b]
    for kept, candidate in tries:
        swapped = finalize_distractors(correct, [*kept, candidate], figures,
                                       need=len(distractors))
        if len(swapped) == len(distractors) and not key_is_longest(correct, swapped):
            return swapped
    return distractors


def fit_lengths(correct: str, distractors: list[str], candidates: Sequence[str],
                figures: set[int], rank: int | None, rng: random.Random) -> list[str]:
    """The asked-for key length rank (:mod:`finmcq.fake.cues`), or, when none was asked for,
    a key that is not the longest option."""
    if rank is None:
        return _avoid_longest_key(correct, distractors, candidates, figures)
    return cues.fit_length_rank(correct, distractors, candidates, figures, rank, rng,
                                finalize_distractors)


@lru_cache(maxsize=16)
def all_statements(exclude: Topic | None = None, truth: bool | None = None) -> tuple[str, ...]:
    """Every pooled statement (only those of ``truth`` when given), the given topic's last: a
    last-resort distractor source. A distractor must have the truth value the stem does *not*
    ask for, or it would be a second correct answer."""
    order = [t for t in MARKET_TOPICS if t is not exclude] + ([exclude] if exclude else [])
    out: list[str] = []
    for topic in order:
        pool = pools.TOPIC_POOLS.get(topic)
        if pool:
            if truth is not True:
                out.extend(pool.false)
            if truth is not False:
                out.extend(pool.true)
    return tuple(out)


@lru_cache(maxsize=1)
def _truth_table() -> dict[str, bool]:
    table: dict[str, bool] = {}
    for pool in pools.TOPIC_POOLS.values():
        table.update({casefolded(t): True for t in pool.true})
        table.update({casefolded(f): False for f in pool.false})
    for f in pools.GENERIC_FALSE:
        table.setdefault(casefolded(f), False)
    return table


def statement_truth(option: str) -> bool | None:
    """True/False for a statement from the fake's pools (adaptation suffix ignored), else None."""
    text = normalize_text(option)
    for suffix in pools.ADAPT_SUFFIXES:
        if text.endswith(suffix.strip()) and len(text) > len(suffix):
            text = normalize_text(text[: -len(suffix.strip())])
            break
    return _truth_table().get(casefolded(text))


def is_negative_question(question: str) -> bool:
    """Whether the stem asks for the wrong statement (the same test the writers use)."""
    return bool(_NEGATIVE_QUESTION.search(question))


def correct_statements(truth: bool, topic: Topic) -> list[str]:
    """Pooled statements with this truth value, ``topic``'s first."""
    order = [topic, *(t for t in MARKET_TOPICS if t is not topic)]
    out: list[str] = []
    for t in order:
        pool = pools.TOPIC_POOLS.get(t)
        if pool:
            out.extend(pool.true if truth else pool.false)
    if not truth:
        out.extend(pools.GENERIC_FALSE)
    return out
