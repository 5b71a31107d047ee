"""The generate writer (McqDraft for a new question): stems composed from slot-indexed pools.

A generate reply depends on the topic, slot and attempt (and the request's sampling settings) only,
so any slot's question can be rebuilt statelessly (:func:`generate_for`); defect mode uses that to
write a near-duplicate of an earlier slot's question.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from finmcq.fake import cues, pools, styles
from finmcq.fake.replies.common import (
    Reply,
    ReplyContext,
    as_text,
    difficulty_of,
    option_code,
    particle,
    semantic_context,
    stem_figures,
    topic_of,
)
from finmcq.fake.replies.distractors import all_statements, finalize_distractors, fit_lengths
from finmcq.records import MARKET_TOPICS, Difficulty, Topic, normalize_text

# The five shared component pools, then each topic's details; the sizes are distinct primes.
_COMPONENTS: tuple[tuple[str, int], ...] = (
    ("opening", len(pools.OPENINGS)),
    ("actor", len(pools.ACTORS)),
    ("clause", len(pools.CODE_CLAUSES)),
    ("macro", len(pools.MACROS)),
    ("task", len(pools.TASKS)),
    ("detail", 7),
)
# A retry of a slot must look different in every component: 7919 is a prime none divides.
_ATTEMPT_STRIDE = 7919


@lru_cache(maxsize=64)
def _slot_affine(seed: int) -> dict[str, tuple[int, int]]:
    """Per-seed ``(a, b)`` with ``a`` coprime to the pool size, for ``index = (a*s + b) % p``."""
    out: dict[str, tuple[int, int]] = {}
    for name, size in _COMPONENTS:
        h = int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest(), 16)
        out[name] = (1 + h % (size - 1), (h >> 64) % size)
    return out


def slot_number(slot: Any) -> int:
    """An integer for a slot id: the int itself, the last digit run of a string, else a hash."""
    if isinstance(slot, int) and not isinstance(slot, bool):
        return slot
    text = as_text(slot)
    runs = re.findall(r"\d+", text)
    if runs:
        return int(runs[-1][-12:])
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:12], 16)


_FILLERS: dict[str, Callable[[random.Random], str]] = {
    "rate": lambda r: f"{r.choice(range(250, 400, 25)) / 100:.2f}",
    "fx": lambda r: str(r.randint(1280, 1420)),
    "idx": lambda r: str(r.randint(2350, 2950)),
    "bp": lambda r: str(r.randint(12, 95)),
    "gdp": lambda r: f"{r.uniform(1.2, 2.6):.1f}",
    "vix": lambda r: str(r.randint(18, 36)),
    "days": lambda r: str(r.randint(3, 12)),
    "cpi": lambda r: f"{r.uniform(2.0, 3.9):.1f}",
    "oil": lambda r: str(r.randint(66, 96)),
    "deposit": lambda r: str(r.randint(45, 61)),
    "weeks": lambda r: str(r.randint(3, 11)),
    "credit": lambda r: f"{r.uniform(17, 21):.1f}",
    "pct": lambda r: f"{r.uniform(1.5, 12):.1f}",
    "shares": lambda r: str(r.randint(12, 950)),
    "split": lambda r: str(r.choice((2, 5, 10, 20))),
    "notional": lambda r: str(r.randint(110, 980)),
    "fee": lambda r: f"{r.uniform(0.2, 1.6):.2f}",
    "beta": lambda r: f"{r.uniform(1.1, 1.6):.2f}",
    "ratio": lambda r: f"{r.uniform(0.3, 1.4):.2f}",
    "ratio2": lambda r: f"{r.uniform(0.3, 1.4):.2f}",
    "dur": lambda r: f"{r.uniform(2.5, 9.5):.1f}",
    "years": lambda r: str(r.choice((3, 5, 10, 20))),
    "pts": lambda r: str(r.randint(8, 45)),
    "usd": lambda r: str(r.randint(120, 980)),
    "stake": lambda r: str(r.randint(5, 9)),
}


class _Fillers(dict[str, str]):
    """Market figures for scenario sentences, drawn on first use (templates use one or two)."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self._rng = rng

    def __missing__(self, key: str) -> str:
        value = self[key] = _FILLERS[key](self._rng)
        return value


def generate_draft(topic: Topic | None, subtopic: str, difficulty: Difficulty | None,
                   slot: int, attempt: int, ctx: ReplyContext, rank: int | None = None) -> Reply:
    """A new McqDraft for ``topic`` whose stem is composed from slot-indexed component pools."""
    rng = ctx.rng
    if topic is None or topic is Topic.OTHER:
        topic = rng.choice(MARKET_TOPICS)
    pool = pools.TOPIC_POOLS[topic]
    subtopic = normalize_text(subtopic) or rng.choice(pool.subtopics)
    style = draft_style(ctx)
    if style != "statement":
        styled = _styled_draft(style, topic, difficulty, slot, attempt, ctx, rank)
        if styled is not None:
            return styled
    negative = rng.random() < styles.NEGATIVE_SHARE
    correct = rng.choice(pool.false if negative else pool.true)
    others = list(pool.true if negative else pool.false)
    rng.shuffle(others)
    candidates = [*others, *all_statements(exclude=topic, truth=negative)]
    correct = cues.lengthen_key(correct, candidates, rank)  # before the stem marks its code

    s = slot + attempt * _ATTEMPT_STRIDE
    affine = _slot_affine(ctx.seed)

    def pick(name: str, items: Sequence[str]) -> str:
        a, b = affine[name]
        return items[(a * s + b) % len(items)]

    fill = _Fillers(rng)
    actor = pick("actor", pools.ACTORS)
    clause = pick("clause", pools.CODE_CLAUSES).format(code=option_code(correct))
    frame = rng.choice(pools.NEGATIVE_FRAMES if negative else pools.POSITIVE_FRAMES).format(
        subtopic=subtopic,
        subtopic_e=subtopic + "에",
        subtopic_eul=subtopic + particle(subtopic, "을", "를"),
        subtopic_wa=subtopic + particle(subtopic, "과", "와"),
        topic=topic.value,
    )
    stem = " ".join((
        f"{pick('opening', pools.OPENINGS)} {actor}{particle(actor, '이', '가')} {clause}.",
        pick("macro", pools.MACROS).format_map(fill),
        pick("detail", pool.details).format_map(fill),
        pick("task", pools.TASKS),
        frame,
    ))
    figures = stem_figures(stem)
    distractors = finalize_distractors(correct, candidates, figures)
    distractors = fit_lengths(correct, distractors, candidates, figures, rank, rng)
    return {
        "question": stem,
        "correct_option": correct,
        "distractors": distractors,
        "difficulty": (difficulty or rng.choice(list(Difficulty))).value,
    }


def draft_style(ctx: ReplyContext) -> str:
    """The style a generate reply is drawn in: a function of the request's semantic digest (topic,
    slot, attempt, sampling settings) alone, so defect mode can tell which earlier slots were
    statement items without rebuilding them."""
    return styles.pick_style(random.Random(int(ctx.digest[16:32], 16)))


def _styled_draft(style: str, topic: Topic, difficulty: Difficulty | None, slot: int,
                  attempt: int, ctx: ReplyContext, rank: int | None) -> Reply | None:
    """A calculation (``numeric``) or template (``parallel``) item, see :mod:`fake.styles`.

    The stem keeps the slot-indexed opening, actor, clause, macro and task, so two items from
    one calculation template still read as different questions. Their options are close in
    length, so an asked-for key length rank is met by choosing and spelling out distractors, never
    by padding a short key (a "7.90% (이론상)" key would be the cue); when the rank cannot be met
    exactly, None, and the slot gets a statement item instead.
    """
    rng = ctx.rng
    drafted = (styles.numeric_item if style == "numeric" else styles.parallel_item)(topic, rng)
    candidates = list(drafted.wrong)
    correct = drafted.key
    s = slot + attempt * _ATTEMPT_STRIDE
    affine = _slot_affine(ctx.seed)

    def pick(name: str, items: Sequence[str]) -> str:
        a, b = affine[name]
        return items[(a * s + b) % len(items)]

    actor = pick("actor", pools.ACTORS)
    clause = pick("clause", pools.CODE_CLAUSES).format(code=option_code(correct))
    parts = [f"{pick('opening', pools.OPENINGS)} {actor}{particle(actor, '이', '가')} {clause}.",
             pick("macro", pools.MACROS).format_map(_Fillers(rng))]
    if drafted.setting:
        parts.append(drafted.setting)
    parts += [pick("task", pools.TASKS), drafted.ask]
    stem = " ".join(parts)
    figures = stem_figures(stem)
    distractors = finalize_distractors(correct, candidates, figures)
    distractors = fit_lengths(correct, distractors, candidates, figures, rank, rng)
    if rank is not None and (len(distractors) < 6
                             or cues.rank_miss(correct, distractors, rank) > 1):
        return None
    return {
        "question": stem,
        "correct_option": correct,
        "distractors": distractors,
        "difficulty": (difficulty or rng.choice(list(Difficulty))).value,
    }


def generate_request(item: Mapping[str, Any]) -> tuple[Topic | None, int, int]:
    """``(topic, slot number, attempt)``: what a generate reply is a function of."""
    attempt = item.get("attempt")
    return (topic_of(item.get("topic")), slot_number(item.get("slot")),
            attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else 0)


def generate_for(item: Mapping[str, Any], ctx: ReplyContext, slot: int, attempt: int) -> Reply:
    """The generate reply for ``slot`` and ``attempt`` with this request's topic and subtopic."""
    topic = topic_of(item.get("topic"))
    slot_ctx = semantic_context(ctx, "generate", topic.value if topic else "", slot, attempt)
    return generate_draft(topic, as_text(item.get("subtopic")),
                          difficulty_of(item.get("difficulty")), slot, attempt, slot_ctx,
                          cues.requested_rank(item))


def build_generate(item: Mapping[str, Any], ctx: ReplyContext) -> Reply:
    """McqDraft: a new question for the requested topic, subtopic and difficulty."""
    _topic, slot, attempt = generate_request(item)
    return generate_for(item, ctx, slot, attempt)
