"""The answering writers: verify (BlindSolve) and solve (SolutionDraft).

Verify answers the option whose code the fake marked in the stem when it wrote it; solve reviews
A–G and concludes with the key it was given.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

from finmcq.fake import pools
from finmcq.fake.replies.common import (
    Reply,
    ReplyContext,
    as_options,
    as_text,
    distinct_quotes,
    option_code,
    particle,
    quote,
    stem_figures,
)
from finmcq.fake.replies.relevance import keyword_score
from finmcq.records import LETTERS, Difficulty, normalize_text

_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


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
    options = as_options(item.get("options"), LETTERS)
    question = as_text(item.get("question"))
    letter = blind_answer(question, options, ctx.rng)
    reasoning = ctx.rng.choice(pools.VERIFY_REASONS).format(
        letter=letter, snip=quote(options.get(letter, "") or "해당 선택지")
    )
    sure = len(_marked(question, options)) == 1
    difficulty = Difficulty.MEDIUM if sure else Difficulty.HARD
    return {"reasoning": reasoning, "answer": letter, "difficulty": difficulty.value}


# --------------------------------------------------------------------------------------------
# solve
# --------------------------------------------------------------------------------------------


def build_solve(item: Mapping[str, Any], ctx: ReplyContext) -> Reply:
    """SolutionDraft that reviews A..G and concludes with the item's key (never mentioning it)."""
    rng = ctx.rng
    question = normalize_text(as_text(item.get("question")))
    options = as_options(item.get("options"), LETTERS)
    answer = as_text(item.get("answer")).strip().upper()
    if answer not in LETTERS:
        answer = rng.choice(LETTERS)
    topic = keyword_score(question + " " + " ".join(options.values())).topic
    focus = pools.TOPIC_FOCUS[topic]
    pool = pools.TOPIC_POOLS.get(topic, pools.GENERIC_POOL)

    sentences = [s for s in _SENTENCE_END.split(question) if s]
    asked = quote(sentences[-1], 60) if sentences else "제시된 물음"
    analysis = (
        f"이 문제는 {focus}에 대한 이해를 묻는다. 묻는 내용은 “{asked}”이며, 지문에 제시된 시장 "
        f"상황과 수치를 먼저 정리한 뒤 일곱 개 선택지를 관련 이론과 하나씩 대조해야 한다."
    )
    reviews = []
    snips = distinct_quotes([options.get(letter) or "이 선택지" for letter in LETTERS])
    for letter, snip in zip(LETTERS, snips, strict=True):
        template = rng.choice(pools.REVIEW_RIGHT if letter == answer else pools.REVIEW_WRONG)
        reviews.append({
            "letter": letter,
            "review": template.format(snip=snip, eun=particle(snip, "은", "는")),
        })
    wrong = ", ".join(letter for letter in LETTERS if letter != answer)
    right = quote(options.get(answer) or "해당 진술")
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
