"""Per-task reply builders of the fake LLM.

Each builder takes the item parsed from the request's ``<입력>`` block and a :class:`ReplyContext`
(a random generator seeded from the request) and returns a plain ``dict`` that validates against
the matching reply model in :mod:`finmcq.records`. Builders never look at shared state, so the
same request always gets the same reply, even across server restarts.

How ``verify`` agrees with the key without being told it: every stem the fake writes (rewrite or
generate) carries a natural-looking 4-digit figure equal to :func:`option_code` of the correct
option, and no other option's code appears among the stem's 4-digit figures. A blind solve then
answers the letter whose option's code is in the stem. Questions the fake did not write get a
deterministic pseudo-random letter, i.e. sometimes a wrong one, like a real model.

The judge and grader are consistent with what the fake writes: every pooled statement is known
to be true or false (:func:`statement_truth`), so the second-answer judge finds a distractor that
is *also* correct (a true statement in a "which is correct?" stem) and nothing else; the grader
reads the rendered solution and scores what is actually there.

Generated items come in the styles of :mod:`finmcq.fake.styles` (calculations whose options
differ mainly in a number, templates with swapped terms, pooled statements with some negative
stems) at about the rates strong models write them.

The fake follows its prompts where finmcq checks them: a generated or rewritten key is not the
longest option when a longer distractor can be had, a requested difficulty is honoured.

A generate reply depends on the topic, slot and attempt (and the request's sampling settings), not
on the rest of the prompt, so the fake can reproduce any slot's question statelessly; defect mode
(:mod:`finmcq.fake.defects`) uses that to write a near-duplicate of an earlier slot's question.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from finmcq.fake import cues, pools, styles
from finmcq.quality.text import fold_text
from finmcq.records import LETTERS, MARKET_TOPICS, Difficulty, Topic, normalize_text

Reply = dict[str, Any]
Builder = Callable[[Mapping[str, Any], "ReplyContext"], Reply]

# Which stage a reply schema name belongs to, for requests without a recognisable task.
SCHEMA_NAMES: tuple[str, ...] = ("RelevanceJudgment", "McqDraft", "BlindSolve", "SolutionDraft",
                                  "DistractorAudit", "SolutionGrade")

_FIGURE = re.compile(r"(?<![0-9])[0-9]{4}(?![0-9])")
_INPUT_BLOCK = re.compile(r"<입력>\s*(.*?)\s*</입력>", re.DOTALL)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")

# Options that only make sense next to other options or in a fixed position. Source questions
# are full of them ("모두 옳다", "ㄱ, ㄴ"); after reshuffling into 7 options they are meaningless.
_POSITIONAL = re.compile(
    r"모두\s*(옳|맞|틀|정답|해당|포함|고르)"
    r"|(위|상기|앞|다음)의?\s*(보기|선택지|내용|항목)"
    r"|보기\s*중|이상\s*모두|둘\s*다"
    r"|(정답|해당|답)\s*(이|은)?\s*없"
    r"|[①-⑳㉠-㉭]"
    r"|(^|[\s(])[ㄱ-ㅎ]\s*[,·과와및.)]"
    r"|^\s*[ㄱ-ㅎ]\s*$"
    r"|(^|\s)[가나다라마]\s*[,·]\s*[가나다라마](\s|$|,)"
    r"|(^|\s)[A-G]\s*(와|과|및|,|·)\s*[A-G](\s|$|만|는|이|가)"
    r"|\b(all|none) of the above\b",
    re.IGNORECASE,
)
_NEGATIVE_QUESTION = re.compile(
    r"옳지\s*않은|틀린|적절하지\s*않은|아닌\s*것|거리가\s*먼|잘못된|해당하지\s*않는|바르지\s*않은"
    r"|부적절한|맞지\s*않는"
)
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
# A review that reviews nothing ("생략", "위와 같음"): what the grader marks as not covered.
_SKIP_REVIEW = re.compile(r"생략|위와\s*같|같은\s*이유|마찬가지|상동")
_REVIEW_LINE = re.compile(r"^([A-G])\. (.*)$", re.MULTILINE)


# --------------------------------------------------------------------------------------------
# The verification figure
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=16384)  # pool texts recur in every reply; hashing them once is enough
def option_code(text: str) -> int:
    """The 4-digit figure (1000–9999) that marks ``text`` as the correct option in a stem."""
    digest = hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()
    return int(digest, 16) % 9000 + 1000


def stem_figures(stem: str) -> set[int]:
    """Every stand-alone run of exactly four ASCII digits in ``stem``, as integers."""
    return {int(m) for m in _FIGURE.findall(stem)}


# --------------------------------------------------------------------------------------------
# Context and small helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyContext:
    """What a builder may depend on besides the item: nothing that changes between calls."""

    rng: random.Random  # seeded from sha256(canonical request + server seed)
    seed: int  # the server seed
    digest: str  # hex sha256 the rng was seeded from
    schema_name: str | None = None  # reply model the request asked for, when it said
    last_user: str = ""  # text of the last user message
    salt: str = ""  # the request's sampling settings (model, seed, temperature)


def context_for(digest: str, seed: int, schema_name: str | None = None,
                last_user: str = "", salt: str = "") -> ReplyContext:
    """A :class:`ReplyContext` whose generator is seeded from ``digest`` (a hex sha256)."""
    return ReplyContext(random.Random(int(digest[:16], 16)), seed, digest, schema_name, last_user,
                        salt)


def semantic_context(ctx: ReplyContext, *parts: object) -> ReplyContext:
    """``ctx`` with a generator seeded from ``parts`` and the sampling settings only.

    Used where a reply must be reproducible from what it is about (a slot), not from the exact
    prompt text around it.
    """
    key = "|".join(map(str, (ctx.seed, ctx.salt, *parts)))
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return replace(ctx, rng=random.Random(int(digest[:16], 16)), digest=digest)


def _final_consonant(word: str) -> int:
    """Index of the final consonant (0 = none) of the last pronounced character of ``word``."""
    for ch in reversed(word):
        if "가" <= ch <= "힣":
            return (ord(ch) - 0xAC00) % 28
        if ch == "%":  # 퍼센트
            return 0
        if ch.isdigit():  # 영 일 이 삼 사 오 육 칠 팔 구
            return {"0": 21, "1": 8, "3": 16, "6": 1, "7": 8, "8": 8}.get(ch, 0)
        if ch.isascii() and ch.isalpha():  # English letters read the Korean way (엘, 엠, 엔, 알)
            return {"L": 8, "M": 16, "N": 4, "R": 8}.get(ch.upper(), 0)
    return 0


def particle(word: str, after_consonant: str, after_vowel: str) -> str:
    """The form of a Korean particle (은/는, 이/가, 을/를, 과/와, 으로/로) that fits ``word``."""
    final = _final_consonant(word)
    if after_consonant == "으로":
        return "로" if final in (0, 8) else "으로"  # ㄹ takes 로 like a vowel
    return after_consonant if final else after_vowel


def _snip(text: str, limit: int = 26) -> str:
    text = normalize_text(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _distinct_snips(texts: Sequence[str], limit: int = 26) -> list[str]:
    """A short quote of each text; texts whose short quotes collide (options from one template,
    or one number apart, share their start) are quoted in full, as a reviewer names what
    differs."""
    snips = [_snip(t, limit) for t in texts]
    seen: dict[str, int] = {}
    for snip in snips:
        seen[snip] = seen.get(snip, 0) + 1
    return [normalize_text(t) if seen[snip] > 1 else snip
            for t, snip in zip(texts, snips, strict=True)]


def _fold(text: str) -> str:
    return normalize_text(text).casefold()


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _as_options(value: Any, letters: Sequence[str]) -> dict[str, str]:
    """The options of an item as ``{letter: text}``; accepts a mapping or a list."""
    if isinstance(value, Mapping):
        return {k: _as_text(value.get(k)) for k in letters if value.get(k) is not None}
    if isinstance(value, list):
        return {k: _as_text(v) for k, v in zip(letters, value, strict=False)}
    return {}


def _topic_of(value: Any) -> Topic | None:
    try:
        return Topic(_as_text(value).strip())
    except ValueError:
        return None


def _difficulty_of(value: Any) -> Difficulty | None:
    try:
        return Difficulty(_as_text(value).strip().lower())
    except ValueError:
        return None


@lru_cache(maxsize=16384)
def is_positional(option: str) -> bool:
    """True for an option that leans on other options or on its position ("모두 옳다", "ㄱ, ㄴ")."""
    return bool(_POSITIONAL.search(normalize_text(option)))


def extract_item(text: str) -> dict[str, Any] | None:
    """The JSON object inside the last ``<입력>…</입력>`` block of ``text``, if it parses."""
    blocks = _INPUT_BLOCK.findall(text)
    if not blocks:
        return None
    try:
        item = json.loads(blocks[-1])
    except ValueError:
        return None
    return item if isinstance(item, dict) else None


# --------------------------------------------------------------------------------------------
# relevance
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeywordScore:
    """Finance-keyword evidence in a text."""

    weight: int  # strong hits count 2, weak ones 1, each keyword at most 3 times
    by_topic: dict[Topic, int]
    hits: tuple[str, ...]  # keywords found, strongest first

    @property
    def topic(self) -> Topic:
        """The keyword family with most weight (ties: the order of ``pools.KEYWORDS``)."""
        if not self.weight:
            return Topic.OTHER
        return max(self.by_topic, key=lambda t: self.by_topic[t])

    @property
    def score(self) -> int:
        """1 (no evidence) to 5 (dense market vocabulary)."""
        return 1 + sum(self.weight >= bound for bound in (1, 3, 5, 8))


def keyword_score(text: str) -> KeywordScore:
    """Count finance keywords in ``text`` by topic family."""
    folded = text.casefold()
    by_topic: dict[Topic, int] = {}
    found: list[tuple[int, str]] = []
    for topic, (strong, weak) in pools.KEYWORDS.items():
        weight = 0
        for keywords, unit in ((strong, 2), (weak, 1)):
            for keyword in keywords:
                count = min(folded.count(keyword.casefold()), 3)
                if count:
                    weight += unit * count
                    found.append((unit * count, keyword))
        by_topic[topic] = weight
    found.sort(key=lambda pair: -pair[0])
    hits = tuple(dict.fromkeys(keyword for _, keyword in found))
    return KeywordScore(sum(by_topic.values()), by_topic, hits)


def build_relevance(item: Mapping[str, Any], ctx: ReplyContext) -> Reply:
    """RelevanceJudgment from Korean finance keywords in the subject, question and options."""
    options = _as_options(item.get("options"), LETTERS)
    text = " ".join([_as_text(item.get("subject")), _as_text(item.get("question")),
                     *options.values()])
    return _judge(text, ctx)


def _judge(text: str, ctx: ReplyContext) -> Reply:
    evidence = keyword_score(text)
    relevant = evidence.weight >= 3
    quoted = ", ".join(f"'{h}'" for h in evidence.hits[:3])
    if relevant:
        topic = evidence.topic
        focus = pools.TOPIC_FOCUS[topic]
        reason = ctx.rng.choice((
            f"{quoted} 등 {topic.value} 관련 개념을 직접 다루는 문제이다.",
            f"{quoted} 같은 시장 용어를 중심으로 {focus}{particle(focus, '을', '를')} 묻고 있다.",
            f"문제의 핵심이 {topic.value}에 있으며 {quoted} 등의 개념이 쓰였다.",
        ))
    else:
        topic = Topic.OTHER
        reason = (
            f"{quoted} 같은 용어가 나오지만 금융 시장이나 투자 거래를 묻는 문제로 보기 어렵다."
            if evidence.hits
            else "금융 시장, 투자 또는 거래와 관련된 개념을 다루지 않는다."
        )
    return {"relevant": relevant, "topic": topic.value, "score": evidence.score, "reason": reason}


# --------------------------------------------------------------------------------------------
# Distractors shared by rewrite and generate
# --------------------------------------------------------------------------------------------


def _finalize_distractors(correct: str, candidates: Iterable[str], figures: set[int],
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
        swapped = _finalize_distractors(correct, [*kept, candidate], figures,
                                        need=len(distractors))
        if len(swapped) == len(distractors) and not key_is_longest(correct, swapped):
            return swapped
    return distractors


def _fit_lengths(correct: str, distractors: list[str], candidates: Sequence[str],
                 figures: set[int], rank: int | None, rng: random.Random) -> list[str]:
    """The asked-for key length rank (:mod:`finmcq.fake.cues`), or, when none was asked for,
    a key that is not the longest option."""
    if rank is None:
        return _avoid_longest_key(correct, distractors, candidates, figures)
    return cues.fit_length_rank(correct, distractors, candidates, figures, rank, rng,
                                _finalize_distractors)


@lru_cache(maxsize=16)
def _all_statements(exclude: Topic | None = None, truth: bool | None = None) -> tuple[str, ...]:
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


# --------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------

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
    text = _as_text(slot)
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
    candidates = [*others, *_all_statements(exclude=topic, truth=negative)]
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
    distractors = _finalize_distractors(correct, candidates, figures)
    distractors = _fit_lengths(correct, distractors, candidates, figures, rank, rng)
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
    distractors = _finalize_distractors(correct, candidates, figures)
    distractors = _fit_lengths(correct, distractors, candidates, figures, rank, rng)
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
    return (_topic_of(item.get("topic")), slot_number(item.get("slot")),
            attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else 0)


def generate_for(item: Mapping[str, Any], ctx: ReplyContext, slot: int, attempt: int) -> Reply:
    """The generate reply for ``slot`` and ``attempt`` with this request's topic and subtopic."""
    topic = _topic_of(item.get("topic"))
    slot_ctx = semantic_context(ctx, "generate", topic.value if topic else "", slot, attempt)
    return generate_draft(topic, _as_text(item.get("subtopic")),
                          _difficulty_of(item.get("difficulty")), slot, attempt, slot_ctx,
                          cues.requested_rank(item))


def build_generate(item: Mapping[str, Any], ctx: ReplyContext) -> Reply:
    """McqDraft: a new question for the requested topic, subtopic and difficulty."""
    _topic, slot, attempt = generate_request(item)
    return generate_for(item, ctx, slot, attempt)


# --------------------------------------------------------------------------------------------
# rewrite
# --------------------------------------------------------------------------------------------


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
    topic = _topic_of(item.get("topic"))
    question = _as_text(item.get("question")).strip()
    options = _as_options(item.get("options"), LETTERS[:4])
    answer = _as_text(item.get("answer")).strip().upper()
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
    negative = bool(_NEGATIVE_QUESTION.search(question))
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
    candidates = [*wrong, *fresh, *_all_statements(exclude=topic, truth=negative)]
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
    distractors = _finalize_distractors(correct, candidates, figures)
    distractors = _fit_lengths(correct, distractors, candidates, figures,
                               cues.requested_rank(item), rng)
    own = _rewrite_difficulty(question, options.values(), rng)
    return {
        "question": stem,
        "correct_option": correct,
        "distractors": distractors,
        # A requested difficulty (the slot's target) is followed, as the prompt asks.
        "difficulty": (_difficulty_of(item.get("difficulty")) or own).value,
    }


# --------------------------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------------------------


def _marked(question: str, options: Mapping[str, str]) -> list[str]:
    figures = stem_figures(question)
    return [letter for letter in LETTERS
            if letter in options and option_code(options[letter]) in figures]


def blind_answer(question: str, options: Mapping[str, str], rng: random.Random) -> str:
    """The letter whose option's code appears in the stem; else a seeded guess."""
    marked = _marked(question, options)
    if len(marked) == 1:
        return marked[0]
    letters = [letter for letter in LETTERS if letter in options]
    return rng.choice(marked or letters or list(LETTERS))


def build_verify(item: Mapping[str, Any], ctx: ReplyContext) -> Reply:
    """BlindSolve: answers the option the fake itself marked as correct when it wrote the stem.

    Its difficulty is its confidence: medium when exactly one option is marked, hard when it had
    to guess (so a question it wrote never contradicts the label it was written for).
    """
    options = _as_options(item.get("options"), LETTERS)
    question = _as_text(item.get("question"))
    letter = blind_answer(question, options, ctx.rng)
    reasoning = ctx.rng.choice(pools.VERIFY_REASONS).format(
        letter=letter, snip=_snip(options.get(letter, "") or "해당 선택지")
    )
    sure = len(_marked(question, options)) == 1
    difficulty = Difficulty.MEDIUM if sure else Difficulty.HARD
    return {"reasoning": reasoning, "answer": letter, "difficulty": difficulty.value}


# --------------------------------------------------------------------------------------------
# judge (second answer)
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _truth_table() -> dict[str, bool]:
    table: dict[str, bool] = {}
    for pool in pools.TOPIC_POOLS.values():
        table.update({_fold(t): True for t in pool.true})
        table.update({_fold(f): False for f in pool.false})
    for f in pools.GENERIC_FALSE:
        table.setdefault(_fold(f), False)
    return table


def statement_truth(option: str) -> bool | None:
    """True/False for a statement from the fake's pools (adaptation suffix ignored), else None."""
    text = normalize_text(option)
    for suffix in pools.ADAPT_SUFFIXES:
        if text.endswith(suffix.strip()) and len(text) > len(suffix):
            text = normalize_text(text[: -len(suffix.strip())])
            break
    return _truth_table().get(_fold(text))


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


def _replacement(question: str, options: Mapping[str, str], answer: str,
                 taken: list[str]) -> str | None:
    """A clearly wrong distractor for a repair: the opposite truth value of a correct option."""
    key = options.get(answer, "")
    wrong_truth = is_negative_question(question)  # positive stems need false statements
    topic = keyword_score(question + " " + key).topic
    topic = topic if topic in pools.TOPIC_POOLS else Topic.STRATEGY
    figures = stem_figures(question) | {option_code(key)}
    bare = {fold_text(t) for t in taken}
    candidates = correct_statements(wrong_truth, topic)
    longer_first = sorted(candidates, key=lambda c: len(c) <= len(normalize_text(key)))
    for candidate in longer_first:
        if option_code(candidate) in figures or fold_text(candidate) in bare:
            continue
        return candidate
    return None


def build_judge(item: Mapping[str, Any], ctx: ReplyContext) -> Reply:
    """DistractorAudit: a distractor is defensible when it is a statement of the truth value the
    stem asks for; a replacement of the opposite truth value is proposed for it."""
    question = _as_text(item.get("question"))
    options = _as_options(item.get("options"), LETTERS)
    answer = _as_text(item.get("answer")).strip().upper()
    wanted = not is_negative_question(question)
    key_truth = statement_truth(options.get(answer, ""))
    key_correct = key_truth is None or key_truth == wanted
    taken = list(options.values())
    snips = dict(zip(options, _distinct_snips(list(options.values())), strict=True))
    reviews = []
    for letter in LETTERS:
        if letter == answer or letter not in options:
            continue
        truth = statement_truth(options[letter])
        defensible = truth is not None and truth == wanted
        replacement = _replacement(question, options, answer, taken) if defensible else None
        if replacement:
            taken.append(replacement)
        snip = snips[letter]
        template = ctx.rng.choice(pools.JUDGE_DEFENSIBLE if defensible else pools.JUDGE_WRONG)
        reviews.append({"letter": letter, "defensible": defensible, "replacement": replacement,
                        "why_wrong": template.format(snip=snip, eun=particle(snip, "은", "는"))})
    key_snip = _snip(options.get(answer, "") or "정답 선택지")
    eun = particle(key_snip, "은", "는")
    key_reason = (f"'{key_snip}'{eun} 문제의 조건과 관련 이론에 부합한다." if key_correct else
                  f"'{key_snip}'{eun} 문제가 묻는 내용과 반대되는 진술이어서 정답이 될 수 없다.")
    return {"key_correct": key_correct, "key_reason": key_reason, "distractor_reviews": reviews,
            "time_sensitive": cues.dated_rule(question)}


# --------------------------------------------------------------------------------------------
# grade (solution quality)
# --------------------------------------------------------------------------------------------


def _section(text: str, title: str) -> str:
    start = text.find(f"[{title}]")
    if start < 0:
        return ""
    body = text[start + len(title) + 2:]
    end = body.find("\n[")
    return body if end < 0 else body[:end]


def build_grade(item: Mapping[str, Any], ctx: ReplyContext) -> Reply:
    """SolutionGrade of the rendered solution: reviews present and real, conclusion, theory."""
    solution = _as_text(item.get("solution"))
    answer = _as_text(item.get("answer")).strip().upper()
    reviews = dict(_REVIEW_LINE.findall(_section(solution, "선택지 검토")))
    skipped = [letter for letter in LETTERS
               if len(_fold(reviews.get(letter, "")).replace(" ", "")) < 6
               or (_SKIP_REVIEW.search(reviews.get(letter, "")) and len(reviews[letter]) <= 30)]
    coverage = max(1, 5 - len(skipped))
    concluded = re.search(r"정답은 ([A-G])입니다", solution)
    correctness = 5 if concluded and concluded.group(1) == answer else 1
    theory = _section(solution, "이론 및 실무 연계")
    grounded = keyword_score(theory).weight >= 2
    grounding = 5 if len(theory) >= 80 and grounded else (3 if len(theory) >= 30 else 2)
    if skipped:
        feedback = f"{', '.join(skipped)} 선택지의 검토가 비어 있거나 다른 검토를 가리키기만 한다."
    elif correctness < 5:
        feedback = "결론의 알파벳이 정답과 다르다. 검토 결과와 결론을 일치시켜야 한다."
    else:
        feedback = ctx.rng.choice(pools.GRADE_PRAISE)
    return {"correctness": correctness, "coverage": coverage, "grounding": grounding,
            "feedback": feedback}


# --------------------------------------------------------------------------------------------
# solve
# --------------------------------------------------------------------------------------------


def build_solve(item: Mapping[str, Any], ctx: ReplyContext) -> Reply:
    """SolutionDraft that reviews A..G and concludes with the item's key (never mentioning it)."""
    rng = ctx.rng
    question = normalize_text(_as_text(item.get("question")))
    options = _as_options(item.get("options"), LETTERS)
    answer = _as_text(item.get("answer")).strip().upper()
    if answer not in LETTERS:
        answer = rng.choice(LETTERS)
    topic = keyword_score(question + " " + " ".join(options.values())).topic
    focus = pools.TOPIC_FOCUS[topic]
    pool = pools.TOPIC_POOLS.get(topic, pools.GENERIC_POOL)

    sentences = [s for s in _SENTENCE_END.split(question) if s]
    asked = _snip(sentences[-1], 60) if sentences else "제시된 물음"
    analysis = (
        f"이 문제는 {focus}에 대한 이해를 묻는다. 묻는 내용은 “{asked}”이며, 지문에 제시된 시장 "
        f"상황과 수치를 먼저 정리한 뒤 일곱 개 선택지를 관련 이론과 하나씩 대조해야 한다."
    )
    reviews = []
    snips = _distinct_snips([options.get(letter) or "이 선택지" for letter in LETTERS])
    for letter, snip in zip(LETTERS, snips, strict=True):
        template = rng.choice(pools.REVIEW_RIGHT if letter == answer else pools.REVIEW_WRONG)
        reviews.append({
            "letter": letter,
            "review": template.format(snip=snip, eun=particle(snip, "은", "는")),
        })
    wrong = ", ".join(letter for letter in LETTERS if letter != answer)
    right = _snip(options.get(answer) or "해당 진술")
    derivation = (
        f"첫째, 지문의 조건에서 판단에 필요한 사실과 수치를 추린다. 둘째, {wrong} 선택지는 개념의 "
        f"방향을 뒤집거나 조건을 빠뜨리는 등 각각 분명한 오류가 있어 제외된다. 셋째, 남는 "
        f"{answer}의 '{right}' 진술은 조건과 이론을 모두 충족한다. 따라서 정답은 {answer}이다."
    )
    return {
        "analysis": analysis,
        "option_reviews": reviews,
        "derivation": derivation,
        "theory": " ".join(pool.theory),
        "final_answer": answer,
    }


# --------------------------------------------------------------------------------------------
# Dispatch, unknown tasks, prose
# --------------------------------------------------------------------------------------------

TASK_BUILDERS: dict[str, Builder] = {
    "relevance": build_relevance,
    "rewrite": build_rewrite,
    "generate": build_generate,
    "verify": build_verify,
    "judge": build_judge,
    "solve": build_solve,
    "grade": build_grade,
}


def build_generic(schema_name: str | None, text: str, ctx: ReplyContext) -> Reply:
    """A valid reply for ``schema_name`` built from free ``text``; ``{"echo": text}`` otherwise."""
    if schema_name == "RelevanceJudgment":
        return _judge(text, ctx)
    if schema_name == "McqDraft":
        topic = keyword_score(text).topic
        return generate_draft(topic, "", None, int(ctx.digest[:8], 16), 0, ctx)
    if schema_name == "BlindSolve":
        return build_verify({"question": text, "options": {}}, ctx)
    if schema_name == "SolutionDraft":
        return build_solve({"question": text, "options": {}}, ctx)
    if schema_name == "DistractorAudit":
        return build_judge({"question": text, "options": {}}, ctx)
    if schema_name == "SolutionGrade":
        return build_grade({"solution": text}, ctx)
    return {"echo": text}


def build_reply(item: Mapping[str, Any] | None, ctx: ReplyContext) -> tuple[str, Reply]:
    """``(task, reply)`` for a parsed ``<입력>`` item (or ``None`` when there was none)."""
    task = _as_text(item.get("task")) if item is not None else ""
    builder = TASK_BUILDERS.get(task)
    if item is not None and builder is not None:
        return task, builder(item, ctx)
    return (task or "none"), build_generic(ctx.schema_name, ctx.last_user, ctx)


def to_prose(reply: Mapping[str, Any]) -> str:
    """The reply as a chatty Korean paragraph: what a model that ignores response_format says."""
    if "relevant" in reply:
        verdict = "금융 시장과 직접 관련된" if reply["relevant"] else "금융 시장과는 거리가 있는"
        return (f"검토해 보니 이 문제는 {verdict} 문제입니다. 분야는 {reply['topic']}, 관련도는 "
                f"{reply['score']}점으로 보았습니다. {reply['reason']}")
    if "correct_option" in reply:
        wrong = " / ".join(reply["distractors"])
        return (f"새 문제를 만들어 보았습니다. 문제: {reply['question']} 정답: "
                f"{reply['correct_option']} 오답: {wrong}")
    if "final_answer" in reply:
        return f"{reply['analysis']} {reply['derivation']} 최종 답은 {reply['final_answer']}입니다."
    if "answer" in reply:
        return f"{reply['reasoning']} 그래서 저는 {reply['answer']}를 고르겠습니다."
    return "말씀하신 내용을 잘 확인했습니다. 더 필요한 것이 있으면 알려 주세요."
