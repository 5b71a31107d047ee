"""The key's length rank: measured with seeded tie-breaks, planned per slot, balanced per set."""

from __future__ import annotations

from collections import Counter

from finmcq.balance import RankRow, balance_bounds, rebalance_plan
from finmcq.quality.length_rank import (
    band_bounds,
    distribution,
    draft_length_rank,
    key_length_rank,
    rank_request,
)
from finmcq.stages.placement import balanced_ranks, balanced_sequence, rank_targets
from finmcq.stages.shape import RANK_OFF_TARGET, RankTarget, shape_problem

# Seven options of lengths 1..7 characters after whitespace is collapsed.
OPTIONS = ("가", "가나", "가나다", "가나다라", "가나다라마", "가나다라마바", "가나다라마바사")


def test_rank_is_the_keys_place_by_length_longest_first() -> None:
    assert key_length_rank(OPTIONS, 6, "seed") == 1  # the longest
    assert key_length_rank(OPTIONS, 0, "seed") == 7  # the shortest
    assert key_length_rank(OPTIONS, 3, "seed") == 4
    spaced = ("가  나", *OPTIONS[1:])  # whitespace runs count once
    assert key_length_rank(spaced, 0, "x") == key_length_rank(("가 나", *OPTIONS[1:]), 0, "x")


def test_equal_lengths_are_ordered_by_a_seeded_coin() -> None:
    tied = ("가나다", "라마바", "사아자", "가", "나", "다", "라")  # key among three of length 3
    ranks = [key_length_rank(tied, 0, ("item", i)) for i in range(3000)]
    assert set(ranks) == {1, 2, 3}
    counts = Counter(ranks)
    assert all(900 <= counts[r] <= 1100 for r in (1, 2, 3)), counts  # no cue in a tie
    assert key_length_rank(tied, 0, "same") == key_length_rank(tied, 0, "same")


def test_the_request_names_counts_a_writer_can_follow() -> None:
    assert rank_request(1) == {"longer_distractors": 0, "shorter_distractors": 6}
    assert rank_request(3) == {"longer_distractors": 2, "shorter_distractors": 4}
    assert rank_request(7) == {"longer_distractors": 6, "shorter_distractors": 0}
    assert draft_length_rank("가나다라", ["가나다라마바사", "가", "나", "다", "라", "마"], 1) == 2


def test_rank_plan_is_balanced_like_letters_and_independent_of_them() -> None:
    for total in (6, 21, 100, 1000, 1003):
        targets = rank_targets(total, 7)
        assert sum(targets.values()) == total
        assert max(targets.values()) - min(targets.values()) <= 1
    ranks = balanced_ranks(700, (7, "sources"))
    letters = balanced_sequence(700, (7, "sources"))
    assert Counter(ranks) == dict.fromkeys(range(1, 8), 100)
    # Not the letter plan in disguise: each letter meets every rank.
    pairs = Counter(zip(letters, ranks, strict=True))
    assert len(pairs) == 49


# Seven distinct statements, 9 to 21 characters long, the key (D) fourth by length.
STATEMENTS = ("금리가 오르면 채권 가격이 내린다 항상", "콜옵션 매수자의 손실은 제한된다",
              "환율 상승은 수입 물가를 올린다", "분산투자는 고유위험을 줄인다",
              "듀레이션은 만기와 다르다", "베타는 체계적 위험이다", "주가는 변동한다")


def test_shape_keeps_a_near_miss_and_drops_a_far_one() -> None:
    question = "다음 중 옳은 것은?"
    assert key_length_rank(STATEMENTS, 3, "x") == 4
    assert shape_problem(question, STATEMENTS, "D", RankTarget(4, 1, "x")) is None
    assert shape_problem(question, STATEMENTS, "D", RankTarget(5, 1, "x")) is None
    far = shape_problem(question, STATEMENTS, "D", RankTarget(6, 1, "x"))
    assert far is not None and far.reason == RANK_OFF_TARGET and "rank 4" in far.detail
    exact = shape_problem(question, STATEMENTS, "D", RankTarget(5, 0, "x"))
    assert exact is not None and exact.reason == RANK_OFF_TARGET


def test_distribution_reports_the_band() -> None:
    even = distribution([r for r in range(1, 8) for _ in range(10)])
    assert even["within_band"] and even["max_deviation"] == 0.0
    skewed = distribution([2] * 40 + [r for r in range(1, 8) for _ in range(10)])
    assert not skewed["within_band"] and skewed["counts"]["2"] == 50
    assert band_bounds(1000) == (93, 192)


def _rows(ranks: list[int], targets: list[int] | None = None) -> list[RankRow]:
    targets = targets or ranks
    return [RankRow(f"g{i:06d}", r, t, True, 3)
            for i, (r, t) in enumerate(zip(ranks, targets, strict=True))]


def test_a_balanced_set_is_left_alone() -> None:
    assert rebalance_plan(_rows([r for r in range(1, 8) for _ in range(100)])) == []


def test_rebalancing_moves_the_excess_to_the_short_ranks_deterministically() -> None:
    # A writer that never makes the key the longest: rank 1 empty, rank 2 doubled.
    ranks = [2] * 200 + [r for r in range(3, 8) for _ in range(140)]
    targets = [1] * 100 + [2] * 100 + [r for r in range(3, 8) for _ in range(140)]
    rows = _rows(ranks, targets)
    plan = rebalance_plan(rows)
    assert plan == rebalance_plan(list(rows))  # a function of the set, not of timing
    low, high = balance_bounds(len(rows))
    by_slot = {row.slot_id: row for row in rows}
    after = Counter(row.rank for row in rows)
    for slot_id, rank in plan:
        old = by_slot[slot_id]
        assert rank != old.rank
        if old.rank == 2:  # from the doubled rank, the items that missed their target go first
            assert old.target != old.rank
        after[old.rank] -= 1
        after[rank] += 1
    assert sum(by_slot[slot].rank == 2 for slot, _ in plan) >= 200 - high
    assert all(low <= after[r] <= high for r in range(1, 8)), after


def test_rebalancing_skips_slots_without_attempts_left() -> None:
    rows = [RankRow(f"g{i:06d}", 2, 2, True, 0) for i in range(50)]
    rows += [RankRow(f"h{i:06d}", r, r, True, 2) for r in range(3, 8) for i in range(10)]
    assert all(slot.startswith("h") for slot, _ in rebalance_plan(rows))
