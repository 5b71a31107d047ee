"""finmcq places the options: the key lands on the planned letter, letters stay balanced."""

from __future__ import annotations

from collections import Counter

from finmcq.config import topic_quotas
from finmcq.records import LETTERS, MARKET_TOPICS, Difficulty, McqDraft
from finmcq.stages.placement import balanced_sequence, letter_targets, place

DRAFT = McqDraft(question="채권 가격과 금리의 관계로 옳은 것은?", correct_option="정답 내용",
                 distractors=[f"오답 {i}" for i in range(6)], difficulty=Difficulty.EASY)


def test_correct_option_lands_on_the_planned_letter() -> None:
    for letter in LETTERS:
        options, key = place(DRAFT, letter, seed=("s", letter))
        assert key == letter and options[LETTERS.index(letter)] == "정답 내용"
        assert sorted(options) == sorted([DRAFT.correct_option, *DRAFT.distractors])


def test_placement_is_seeded() -> None:
    assert place(DRAFT, "C", 1) == place(DRAFT, "C", 1)
    assert {place(DRAFT, "C", s)[0] for s in range(20)} != {place(DRAFT, "C", 0)[0]}


def test_letter_plan_is_balanced_within_one() -> None:
    for n in (1, 7, 100, 1000, 1001, 99_999):
        targets = letter_targets(n, 42)
        assert sum(targets.values()) == n
        assert max(targets.values()) - min(targets.values()) <= 1
        assert Counter(balanced_sequence(n, 42)) == Counter(
            {k: v for k, v in targets.items() if v})


def test_topic_quotas_sum_exactly() -> None:
    equal = topic_quotas(1000, dict.fromkeys(MARKET_TOPICS, 1.0))
    assert set(equal.values()) == {125}
    skewed = topic_quotas(1001, {t: float(i + 1) for i, t in enumerate(MARKET_TOPICS)})
    assert sum(skewed.values()) == 1001
