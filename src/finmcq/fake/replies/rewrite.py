"""The rewrite writer (McqDraft from a source question): a market setting, the key kept."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from finmcq.fake import cues, pools
from finmcq.fake.replies.common import (
    Reply,
    ReplyContext,
    as_options,
    as_text,
    difficulty_of,
    is_positional,
    option_code,
    particle,
    stem_figures,
    topic_of,
)
from finmcq.fake.replies.distractors import (
    all_statements,
    finalize_distractors,
    fit_lengths,
    is_negative_question,
)
from finmcq.fake.replies.generate import generate_draft
from finmcq.fake.replies.relevance import keyword_score
from finmcq.records import LETTERS, Difficulty, Topic, normalize_text

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _scaled(raw: str, factor: float) -> str:
    """``raw`` (a number as written: "30", "1,500", "4.25") times ``factor``, written alike."""
    grouped = "," in raw and "." not in raw
    digits = raw.replace(",", "") if grouped else raw.replace(",", ".")
    try:
        value = float(digits) * factor
    except ValueError:
        return raw
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    if decimals:
        return f"{value:.{decimals}f}"
    return f"{round(value):,}" if grouped else str(round(value))


def _numeric_variants(texts: Sequence[str], rng: random.Random) -> list[str]:
    """Copies of ``texts`` with every number scaled by one factor: distractors for numeric keys."""
    factors = [0.5, 0.75, 0.8, 0.9, 1.1, 1.2, 1.25, 1.5, 2.0, 3.0]
    out: list[str] = []
    for text in texts:
        if not _NUMBER.search(text):
            continue
        rng.shuffle(factors)
        for factor in factors:
            variant = _NUMBER.sub(lambda m, f=factor: _scaled(m.group(), f), text)
            if variant != text:
                out.append(variant)
    return out


def _rewrite_difficulty(question: str, options: Iterable[str], rng: random.Random) -> Difficulty:
    size = len(question) + sum(len(o) for o in options)
    level = 0 if size < 80 else (1 if size < 220 else 2)
    level = min(2, max(0, level + rng.choice((-1, 0, 0, 0, 1))))
    return list(Difficulty)[level]


def build_rewrite(item: Mapping[str, Any], ctx: ReplyContext) -> Reply:
    """McqDraft: the source question in a market setting, its key kept, six distractors."""
    rng = ctx.rng
    topic = topic_of(item.get("topic"))
    question = as_text(item.get("question")).strip()
    options = as_options(item.get("options"), LETTERS[:4])
    answer = as_text(item.get("answer")).strip().upper()
    if topic is None or topic is Topic.OTHER:
        topic = keyword_score(question + " " + " ".join(options.values())).topic
    correct = normalize_text(options.get(answer, ""))
    if not question or not correct or is_positional(correct):
        # A key like "ㄱ, ㄷ" or "모두 옳다" cannot survive reshuffling; a real model would have to
        # restructure the question. The fake writes a fresh one in the same topic instead.
        slot = int(ctx.digest[:8], 16)
        return generate_draft(topic, "", None, slot, 0, ctx)

    pool = pools.TOPIC_POOLS.get(topic, pools.GENERIC_POOL)
    wrong = [normalize_text(t) for letter, t in sorted(options.items()) if letter != answer]
    negative = is_negative_question(question)
    # New distractors in the style of the key: scaled numbers, concept names or statements
    # (true ones when the stem asks for the false statement), the topic's own first.
    statements = list(pool.true if negative else pool.false)
    rng.shuffle(statements)
    if not negative:
        statements += pools.GENERIC_FALSE
    if any(ch.isdigit() for ch in correct) and len(correct) <= 30:
        fresh = _numeric_variants([correct, *wrong], rng) + statements
    elif sum(map(len, [correct, *wrong])) / (1 + len(wrong)) <= 12:
        fresh = list(pool.terms)
        rng.shuffle(fresh)
        fresh += [t for p in pools.TOPIC_POOLS.values() if p is not pool for t in p.terms]
    else:
        fresh = statements
    candidates = [*wrong, *fresh, *all_statements(exclude=topic, truth=negative)]
    correct = cues.lengthen_key(correct, candidates, cues.requested_rank(item))

    code = option_code(correct)
    key = correct.casefold()
    for _ in range(8):  # re-draw the setting if it happens to contain the key verbatim
        actor = rng.choice(pools.ACTORS)
        context = (
            f"{rng.choice(pools.OPENINGS)} {actor}{particle(actor, '이', '가')} "
            f"{rng.choice(pools.CODE_CLAUSES).format(code=code)}. "
            f"{rng.choice(pools.REWRITE_BRIDGES)}"
        )
        if len(key) < 4 or key not in context.casefold():
            break
    stem = f"{context} {question}"
    figures = stem_figures(stem)
    distractors = finalize_distractors(correct, candidates, figures)
    distractors = fit_lengths(correct, distractors, candidates, figures,
                              cues.requested_rank(item), rng)
    own = _rewrite_difficulty(question, options.values(), rng)
    return {
        "question": stem,
        "correct_option": correct,
        "distractors": distractors,
        # A requested difficulty (the slot's target) is followed, as the prompt asks.
        "difficulty": (difficulty_of(item.get("difficulty")) or own).value,
    }
