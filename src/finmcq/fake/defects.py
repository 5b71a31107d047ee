"""Defect mode: the fake LLM corrupts a known share of its answers, and records each one.

finmcq's quality checks are proved against this hostile fake. Each kind of defect is one way
LLM-written multiple-choice data goes wrong:

========================  ===================================================================
``also_correct``          a distractor is replaced by a statement that is *also* correct
``wrong_key``             the marked key is a wrong option; the real answer is a "distractor"
``key_leak``              the key's text is written into the stem
``duplicate_options``     two options are the same up to punctuation or spacing
``positional_option``     a distractor like "위의 보기 모두 옳다"
``near_duplicate``        the question nearly repeats an earlier generated slot's question
``solution_wrong_letter`` the solution concludes with another letter
``solution_skips_options``  some option reviews are "생략" / "위와 같다"
``invalid_json``          the reply is cut off: not valid JSON
========================  ===================================================================

Determinism: whether a reply is corrupted, and how, is a function of the server seed and the
request (for generate: its topic, slot and attempt), never of arrival order, except
``invalid_json``, which is drawn per arrival like the transport faults so that a retry can
succeed. A reply gets at most one content defect. The server keeps every corruption it served
(kind, task and a fingerprint of the corrupted text; see :func:`item_fingerprint` and
:func:`solution_fingerprint`) at ``GET /_fake/defects``.

``near_duplicate`` copies the question of the same topic's nearest earlier generated slot
(finmcq numbers generated slots ``g{topic}{j:06d}``, up to 8 back), attempt 0, which the fake
can rebuild statelessly; only an uncorrupted statement-style question is copied (a calculation or
template draft depends on the key length rank its own request asked for), so the earlier question
is the one finmcq delivers and the copy is the later one its duplicate pass drops.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from finmcq.fake import cues, pools
from finmcq.fake.replies import (
    ReplyContext,
    correct_statements,
    draft_style,
    generate_for,
    generate_request,
    is_negative_question,
    key_is_longest,
    keyword_score,
    option_code,
    semantic_context,
    stem_figures,
)
from finmcq.quality.text import fold_text
from finmcq.records import LETTERS, Topic, normalize_text

DRAFT_DEFECTS: tuple[str, ...] = ("also_correct", "wrong_key", "key_leak", "duplicate_options",
                                  "positional_option", "near_duplicate")
SOLUTION_DEFECTS: tuple[str, ...] = ("solution_wrong_letter", "solution_skips_options")
REPLY_DEFECTS: tuple[str, ...] = ("invalid_json",)
DEFECT_KINDS: tuple[str, ...] = DRAFT_DEFECTS + SOLUTION_DEFECTS + REPLY_DEFECTS

_GENERATED_SLOT = re.compile(r"^(g\d)(\d{6})$")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")

Reply = dict[str, Any]


@dataclass(frozen=True)
class Corruption:
    """One corrupted reply the fake served."""

    kind: str
    task: str
    fingerprint: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "task": self.task, "fingerprint": self.fingerprint,
                **self.detail}


def resolve_rates(total: float, per_kind: Mapping[str, float]) -> dict[str, float]:
    """Every kind's rate: ``total`` split evenly, then the per-kind rates given; validated."""
    unknown = set(per_kind) - set(DEFECT_KINDS)
    if unknown:
        raise ValueError(f"unknown defect kind(s) {sorted(unknown)}; known: {DEFECT_KINDS}")
    rates = {kind: total / len(DEFECT_KINDS) for kind in DEFECT_KINDS}
    rates.update({k: float(v) for k, v in per_kind.items()})
    for kind, rate in rates.items():
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"defect rate {kind} must be within [0, 1], got {rate}")
    for group in (DRAFT_DEFECTS, SOLUTION_DEFECTS):
        if sum(rates[k] for k in group) > 1.0 + 1e-9:
            raise ValueError(f"defect rates of {group} sum to more than 1")
    return rates


def _uniform(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def draw(rates: Mapping[str, float], kinds: Sequence[str], *key: object) -> str | None:
    """The defect (of ``kinds``) for the reply identified by ``key``, or None."""
    u = _uniform("defect", *key)
    bound = 0.0
    for kind in kinds:
        bound += rates.get(kind, 0.0)
        if u < bound:
            return kind
    return None


def item_fingerprint(question: str, correct: str, distractors: Sequence[str]) -> str:
    """Identifies an item's text: stem, key and the set of distractors (order-free)."""
    body = "\x1e".join([normalize_text(question), normalize_text(correct),
                        "\x1f".join(sorted(normalize_text(d) for d in distractors))])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:20]


def solution_fingerprint(reviews: Sequence[str], final_answer: str) -> str:
    """Identifies a solution by its option reviews (A..G) and its concluded letter."""
    body = "\x1f".join(normalize_text(r) for r in reviews) + "|" + final_answer
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:20]


# --------------------------------------------------------------------------------------------
# Draft defects
# --------------------------------------------------------------------------------------------


def _rank_kept(correct: str, distractors: Sequence[str], rank: int | None) -> bool:
    """Whether a corrupted draft still has about the key length rank the request asked for
    (or, when none was asked, a key that is not the longest): a defect must reach the check
    built for it, not be dropped earlier for its lengths."""
    if rank is None:
        return not key_is_longest(correct, distractors)
    return cues.rank_miss(correct, distractors, rank) <= 1


def _also_correct(reply: Reply, ctx: ReplyContext, rank: int | None = None) -> Reply | None:
    question, correct = reply["question"], reply["correct_option"]
    distractors = list(reply["distractors"])
    truth = not is_negative_question(question)  # what a correct option is in this stem
    topic = keyword_score(question + " " + correct).topic
    topic = topic if topic in pools.TOPIC_POOLS else Topic.STRATEGY
    figures = stem_figures(question) | {option_code(correct)}
    taken = {fold_text(o) for o in [correct, *distractors]}
    slots = list(range(len(distractors)))
    ctx.rng.shuffle(slots)
    for candidate in correct_statements(truth, topic):
        if option_code(candidate) in figures or fold_text(candidate) in taken:
            continue
        for i in slots:
            changed = [*distractors[:i], candidate, *distractors[i + 1:]]
            if _rank_kept(correct, changed, rank):  # only the judge should catch it
                return {**reply, "distractors": changed}
    return None


def _wrong_key(reply: Reply, ctx: ReplyContext, rank: int | None = None) -> Reply | None:
    """A distractor becomes the key: the shortest, or the one whose length rank is closest to
    the asked-for one, so only the blind solve can tell."""
    old = list(reply["distractors"])

    def swapped(j: int) -> list[str]:
        return [*old[:j], reply["correct_option"], *old[j + 1:]]

    def order(j: int) -> tuple[int, int, int]:
        miss = 0 if rank is None else cues.rank_miss(old[j], swapped(j), rank)
        return (miss, len(old[j]), j)

    i = min(range(len(old)), key=order)
    new_key, distractors = old[i], swapped(i)
    if not _rank_kept(new_key, distractors, rank):
        return None
    return {**reply, "correct_option": new_key, "distractors": distractors}


def _key_leak(reply: Reply, ctx: ReplyContext, rank: int | None = None) -> Reply | None:
    key = normalize_text(reply["correct_option"])
    if len(key) < 6:  # too short to count as a leak of the answer
        return None
    sentences = [s for s in _SENTENCE_END.split(reply["question"]) if s]
    leak = ctx.rng.choice(pools.LEAK_SENTENCES).format(key=key)
    stem = " ".join([*sentences[:-1], leak, *sentences[-1:]])
    return {**reply, "question": stem}


def _duplicate_options(reply: Reply, ctx: ReplyContext, rank: int | None = None
                       ) -> Reply | None:
    distractors = list(reply["distractors"])
    i, j = ctx.rng.sample(range(len(distractors)), 2)
    base = distractors[i]
    # Identical to a reader, distinct as strings: trailing period, or one space fewer.
    variant = base[:-1] if base.endswith(".") else base + "."
    if " " in base and ctx.rng.random() < 0.5:
        variant = base.replace(" ", "", 1)
    distractors[j] = variant
    return {**reply, "distractors": distractors}


def _positional_option(reply: Reply, ctx: ReplyContext, rank: int | None = None
                       ) -> Reply | None:
    distractors = list(reply["distractors"])
    distractors[ctx.rng.randrange(len(distractors))] = ctx.rng.choice(
        pools.POSITIONAL_DISTRACTORS)
    return {**reply, "distractors": distractors}


def _partners(item: Mapping[str, Any], back: int = 8) -> list[tuple[str, int]]:
    """The same topic's earlier generated slots (id, number), nearest first."""
    match = _GENERATED_SLOT.match(str(item.get("slot", "")))
    if not match:
        return []
    out = []
    for k in range(1, back + 1):
        if int(match.group(2)) - k < 0:
            break
        slot_id = f"{match.group(1)}{int(match.group(2)) - k:06d}"
        out.append((slot_id, int(slot_id[1:])))
    return out


def _near_duplicate(item: Mapping[str, Any], reply: Reply, ctx: ReplyContext,
                    rates: Mapping[str, float]) -> tuple[Reply, dict[str, Any]] | None:
    topic, _slot, attempt = generate_request(item)
    if attempt != 0:
        return None
    name = topic.value if topic else ""
    for slot_id, number in _partners(item):
        if draw(rates, DRAFT_DEFECTS, ctx.seed, ctx.salt, "generate", name, number, 0) is not None:
            continue  # the earlier question is corrupted itself: it may not be delivered
        if draft_style(semantic_context(ctx, "generate", name, number, 0)) != "statement":
            # A calculation or template draft depends on the key length rank its own request
            # asked for (unknown here), so it cannot be rebuilt for copying; statements can.
            continue
        original = generate_for(item, ctx, number, 0)
        sentences = [s for s in _SENTENCE_END.split(original["question"]) if s]
        # The same question, lightly reworded: a connective added, the rest as before.
        stem = " ".join([sentences[0], "한편", *sentences[1:]])
        copy = {**original, "question": stem, "difficulty": reply["difficulty"]}
        return copy, {"copies_slot": slot_id, "copies_attempt": 0}
    return None


_DRAFT_CORRUPTORS = {
    "also_correct": _also_correct,
    "wrong_key": _wrong_key,
    "key_leak": _key_leak,
    "duplicate_options": _duplicate_options,
    "positional_option": _positional_option,
}


def corrupt_draft(task: str, item: Mapping[str, Any], reply: Reply, ctx: ReplyContext,
                  rates: Mapping[str, float]) -> tuple[Reply, Corruption | None]:
    """Maybe corrupt a rewrite/generate reply; returns the reply served and what was done."""
    if task == "generate":
        topic, slot, attempt = generate_request(item)
        kind = draw(rates, DRAFT_DEFECTS, ctx.seed, ctx.salt, "generate",
                    topic.value if topic else "", slot, attempt)
    else:
        kind = draw(rates, DRAFT_DEFECTS, ctx.seed, ctx.digest)
    if kind is None:
        return reply, None
    detail: dict[str, Any] = {}
    corrupted: Reply | None
    if kind == "near_duplicate":
        result = _near_duplicate(item, reply, ctx, rates) if task == "generate" else None
        corrupted, detail = result if result else (None, {})
    else:
        corrupted = _DRAFT_CORRUPTORS[kind](reply, ctx, cues.requested_rank(item))
    if corrupted is None:
        return reply, None  # this reply cannot carry this defect; it stays clean
    fingerprint = item_fingerprint(corrupted["question"], corrupted["correct_option"],
                                   corrupted["distractors"])
    if item.get("slot") is not None:
        detail = {**detail, "slot": item.get("slot"), "attempt": item.get("attempt")}
    return corrupted, Corruption(kind, task, fingerprint, detail)


# --------------------------------------------------------------------------------------------
# Solution defects
# --------------------------------------------------------------------------------------------


def corrupt_solution(reply: Reply, ctx: ReplyContext,
                     rates: Mapping[str, float]) -> tuple[Reply, Corruption | None]:
    """Maybe corrupt a solve reply (keyed on the request, so a retry draws afresh)."""
    kind = draw(rates, SOLUTION_DEFECTS, ctx.seed, ctx.digest)
    if kind is None:
        return reply, None
    final = reply["final_answer"]
    reviews = [dict(r) for r in reply["option_reviews"]]
    if kind == "solution_wrong_letter":
        other = LETTERS[(LETTERS.index(final) + 1) % len(LETTERS)]
        derivation = reply["derivation"].replace(f"정답은 {final}", f"정답은 {other}")
        corrupted = {**reply, "final_answer": other, "derivation": derivation}
    else:
        letters = [x for x in LETTERS if x != final]
        for letter in ctx.rng.sample(letters, 3):
            reviews[LETTERS.index(letter)]["review"] = ctx.rng.choice(pools.SKIPPED_REVIEWS)
        corrupted = {**reply, "option_reviews": reviews}
    fingerprint = solution_fingerprint([r["review"] for r in corrupted["option_reviews"]],
                                       corrupted["final_answer"])
    return corrupted, Corruption(kind, "solve", fingerprint)
