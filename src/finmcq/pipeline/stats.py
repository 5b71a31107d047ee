"""Stats: the build's counts per stage, slot, topic, letter and quality check."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from finmcq import checks
from finmcq.pipeline.base import PipelineBase
from finmcq.pipeline.delivered import Delivered, DeliveredItems
from finmcq.quality import summary
from finmcq.quality.difficulty import delivered_shares
from finmcq.quality.length_rank import distribution
from finmcq.records import MARKET_TOPICS, Difficulty, SolutionGrade, Topic
from finmcq.stages.base import StageStats

TIME_SENSITIVE_LISTED = 1000  # item ids listed in the stats (the items file has every one)


class RunStats(PipelineBase):
    """The stats block of a finished build (``_stats``)."""

    def _stats(self, quotas: dict[Topic, int], delivered: DeliveredItems,
               n_sources: int, tally: Tally | None = None) -> dict[str, Any]:
        """The stats block; ``tally``: counted over ``delivered`` by the caller's own pass (the
        build's output pass), else here."""
        contamination = self.contamination.stats if self.contamination else StageStats(
            "contamination")
        in_order = [self.relevance.stats, self.rewrite.stats, self.generate.stats,
                    self.shape.stats, self.place_stats, contamination, self.verify.stats]
        if self.judge is not None:
            in_order.append(self.judge.stats)
        in_order.append(self.solve.stats)
        if self.grade is not None:
            in_order.append(self.grade.stats)
        stages = {st.name: st.as_dict() for st in in_order}
        self.dedupe_stats.kept = len(delivered)
        self.dedupe_stats.seen = len(delivered) + sum(self.dedupe_stats.dropped.values())
        stages["dedupe"] = self.dedupe_stats.as_dict()
        if tally is None:
            tally = Tally.over(delivered)
        s = self.settings
        stats: dict[str, Any] = {
            "sources": n_sources,
            "stages": stages,
            "slots": {"target": self.settings.questions, **dict(self.slot_stats)},
            "topics": {t.value: {"quota": quotas.get(t, 0),
                                 "delivered": tally.topics.get(t.value, 0)}
                       for t in MARKET_TOPICS},
            "letters": dict(sorted(tally.letters.items())),
            # The other answer cues, next to the letters: the key's length rank, negative stems.
            "key_length_ranks": distribution(tally.ranks, self.settings.length_rank_band),
            "negative_stems": {"count": tally.negative,
                               "share": round(tally.negative / max(1, len(delivered)), 4)},
            "as_of": s.as_of,
            "time_sensitive": {
                "count": len(tally.time_sensitive), "judged": tally.audited,
                "share": round(len(tally.time_sensitive) / max(1, tally.audited), 4),
                "items": tally.time_sensitive[:TIME_SENSITIVE_LISTED]},
            "origins": dict(tally.origins),
            "difficulty": dict(tally.difficulty),
            "quality": self._quality_stats(stages, delivered, tally),
            "stage_wall_s": {k: round(v[1] - v[0], 3) for k, v in self.stage_wall.items()},
            "review": self._review_stats(),
        }
        contamination_line = self._contamination_line(tally)
        if contamination_line is not None:  # absent: no benchmark was compared
            stats["contamination"] = contamination_line
        return stats

    def _review_stats(self) -> dict[str, int]:
        """What the build did with the review: decisions read, and what they changed."""
        decided = self.review.summary()
        return {"reviewed": decided["reviewed"], "rejected": decided["rejected"],
                "accepted": self.review_stats["accepted"], "edited": self.review_stats["edited"],
                "replaced": self.review_stats["replaced"],
                "re_solved": self.review_stats["re_solved"]}

    def _contamination_line(self, tally: Tally) -> dict[str, Any] | None:
        """A short contamination result for the dataset card (details are under quality)."""
        if self.contamination is None or not len(self.contamination.index):
            return None
        flagged = len(tally.flagged)
        dropped = sum(self.contamination.stats.dropped.values())
        status = "flagged" if flagged else ("dropped" if dropped else "clean")
        return {"status": status, "overlaps": flagged, "dropped": dropped,
                "threshold": self.settings.contamination_threshold,
                "benchmarks": ", ".join(c["benchmark"]
                                        for c in self.contamination.index.compared_against)}

    def _quality_stats(self, stages: dict[str, Any], delivered: DeliveredItems,
                       tally: Tally) -> dict[str, Any]:
        """The quality block: per-check drops and measurements over the delivered items."""
        s = self.settings
        usage = self.engine.meter.as_dict()
        calls = sum(u["requests"] + u["cache_hits"] for u in usage.values())
        flagged = tally.flagged
        index = self.contamination.index.describe() if self.contamination else {}
        return {
            "checks": summary.drops_by_check(stages),
            "answer_length_cue": summary.answer_length_cue_of(
                tally.key_longest, len(delivered), 1 / 7 + s.length_rank_band),
            "key_length_rank": {
                **distribution(tally.ranks, s.length_rank_band),
                "tolerance": s.length_rank_tolerance,
                "on_target": tally.on_target,
                "rebalanced": self.rank_stats["rebalanced"],
                "rebalance_missed": self.rank_stats["rebalance_missed"],
            },
            "negation_stems": summary.negation_of(tally.negative, len(delivered),
                                                  s.negation_share_range),
            "difficulty": delivered_shares(tally.labels, s.difficulty_mix),
            "solution_scores": summary.solution_scores(tally.grades),
            "second_answer_judge": {
                "enabled": self.judge is not None,
                "model": self.engine.config.model_for("judge") if self.judge else None,
                "repaired_delivered": tally.repaired,
            },
            "blind_solves": s.blind_solves,
            "grading": {"enabled": self.grade is not None,
                        "model": self.engine.config.model_for("grade") if self.grade else None,
                        "min_score": s.min_solution_score},
            "near_duplicates": {"threshold": s.near_duplicate_threshold,
                                "shingle_size": s.shingle_size,
                                "dropped": dict(self.dedupe_stats.dropped)},
            "contamination": {**index, "drop": s.drop_contaminated,
                              "flagged_delivered": len(flagged),
                              "flagged_seen": self.contamination.flagged
                              if self.contamination else 0,
                              "items": flagged},
            "calls_per_question": round(calls / max(1, len(delivered)), 3),
        }


@dataclass
class Tally:
    """What the stats count over the delivered items, gathered in one pass over the store
    (every pass decodes each item from its store row: ~60 µs per item)."""

    topics: Counter[str] = field(default_factory=Counter)
    letters: Counter[str] = field(default_factory=Counter)
    origins: Counter[str] = field(default_factory=Counter)
    difficulty: Counter[str] = field(default_factory=Counter)
    labels: list[Difficulty | None] = field(default_factory=list)
    grades: list[SolutionGrade | None] = field(default_factory=list)
    repaired: int = 0
    flagged: list[dict[str, Any]] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    on_target: int = 0  # items whose key length rank is exactly the slot's target
    negative: int = 0  # negative stems ("옳지 않은 것은?")
    key_longest: int = 0  # keys that are the strictly longest option
    audited: int = 0  # items the second-answer judge audited
    time_sensitive: list[str] = field(default_factory=list)  # their ids, when the key is dated

    @classmethod
    def over(cls, delivered: Iterable[Delivered]) -> Tally:
        tally = cls()
        for d in delivered:
            tally.add(d)
        return tally

    def add(self, d: Delivered) -> None:
        """Count one delivered item."""
        item = d.item
        self.topics[item.topic.value] += 1
        self.letters[item.answer] += 1
        self.origins[item.origin] += 1
        self.difficulty[item.difficulty.value if item.difficulty else "unknown"] += 1
        self.labels.append(item.difficulty)
        self.grades.append(d.grade)
        self.repaired += bool(d.repaired)
        rank = d.key_length_rank()
        self.ranks.append(rank)
        self.on_target += rank == d.slot.rank
        self.negative += checks.is_negative_stem(item.question)
        self.key_longest += checks.key_is_longest(item.options, item.answer)
        if d.audit is not None:
            self.audited += 1
            if d.audit.time_sensitive:
                self.time_sensitive.append(item.item_id)
        if d.contamination is not None:
            self.flagged.append({
                "item_id": item.item_id, "benchmark": d.contamination.benchmark,
                "benchmark_item": d.contamination.ref, "overlap": d.contamination.overlap})
