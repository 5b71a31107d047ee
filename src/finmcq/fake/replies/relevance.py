"""The relevance writer (RelevanceJudgment) and the finance-keyword score other writers use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from finmcq.fake import pools
from finmcq.fake.replies.common import Reply, ReplyContext, as_options, as_text, particle
from finmcq.records import LETTERS, Topic


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
    options = as_options(item.get("options"), LETTERS)
    text = " ".join([as_text(item.get("subject")), as_text(item.get("question")),
                     *options.values()])
    return judge_text(text, ctx)


def judge_text(text: str, ctx: ReplyContext) -> Reply:
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
