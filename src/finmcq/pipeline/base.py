"""What every part of the build shares: settings, engine, store, stages and counters."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from finmcq.config import BuildSettings
from finmcq.engine.client import LLMEngine
from finmcq.engine.progress import StageProgress
from finmcq.engine.store import RunStore
from finmcq.pipeline.plan import Slot, difficulty_for
from finmcq.quality.benchmarks import FINANCE_ADJACENT_SUBJECTS
from finmcq.records import Difficulty, SourceQuestion, Topic
from finmcq.review.decisions import ReviewDecisions
from finmcq.stages.base import Dropped, StageStats
from finmcq.stages.contamination import ContaminationStage
from finmcq.stages.generate import GenerateStage
from finmcq.stages.grade import GradeStage
from finmcq.stages.judge import JudgeStage
from finmcq.stages.relevance import RelevanceStage
from finmcq.stages.rewrite import RewriteStage
from finmcq.stages.shape import RankTarget, ShapeStage
from finmcq.stages.solve import SolveStage
from finmcq.stages.verify import VerifyStage

if TYPE_CHECKING:  # numpy modules: loaded off the start path (see finder, _load_benchmarks)
    from finmcq.quality.contamination import ContaminationIndex
    from finmcq.quality.neardup import NearDuplicateFinder

log = logging.getLogger("finmcq.pipeline")


async def bounded_map(items: Iterable[Any], worker: Callable[[Any], Awaitable[None]],
                      width: int) -> None:
    """Run ``worker`` over ``items`` with at most ``width`` at once, pulling items lazily."""
    iterator = iter(items)

    async def lane() -> None:
        for item in iterator:  # each lane pulls the next item when it is free
            await worker(item)

    await asyncio.gather(*(lane() for _ in range(max(1, width))))


class PipelineBase:
    """The state of one build; the parts (slot filling, end of run, stats) build on it."""

    def __init__(self, settings: BuildSettings, engine: LLMEngine, store: RunStore,
                 progress: StageProgress | None = None, *,
                 benchmarks: ContaminationIndex | None = None,
                 review: ReviewDecisions | None = None) -> None:
        """``benchmarks``: the contamination index; loaded from the settings when None.

        ``review``: a reviewer's decisions (``finmcq review``): rejected deliveries are
        replaced by the slot's next attempt, accepted and edited ones are kept as they are.
        """
        self.settings = settings
        self.engine = engine
        self.store = store
        self.progress = progress or StageProgress(lambda _s: 0.0, enabled=False)
        as_of = settings.as_of  # every prompt states it (build.resolve_as_of fills it in)
        self.relevance = RelevanceStage(engine, min_score=settings.min_relevance_score,
                                        as_of=as_of)
        self.rewrite = RewriteStage(engine, as_of=as_of)
        self.generate = GenerateStage(engine, as_of=as_of)
        self.shape = ShapeStage()
        self.verify = VerifyStage(engine, solves=settings.blind_solves,
                                  sample_temperature=settings.self_consistency_temperature,
                                  as_of=as_of)
        self.judge = JudgeStage(engine, as_of=as_of) if settings.second_answer_judge else None
        self.solve = SolveStage(engine, max_tries=settings.solve_tries, as_of=as_of)
        self.grade = (GradeStage(engine, min_score=settings.min_solution_score, as_of=as_of)
                      if settings.grade_solutions else None)
        self.contamination = (ContaminationStage(benchmarks, drop=settings.drop_contaminated)
                              if benchmarks is not None else None)
        self._contamination_ready = asyncio.Event()
        if self.contamination is not None:
            self._contamination_ready.set()
        self.place_stats = StageStats("placement")
        self.dedupe_stats = StageStats("dedupe")
        self.slot_stats: Counter[str] = Counter()
        self.review = review or ReviewDecisions()
        self.review_stats: Counter[str] = Counter()
        self.rank_stats: Counter[str] = Counter()  # set-level key length rank balancing
        self.stage_wall: dict[str, list[float]] = {}
        self._relevance_done = asyncio.Event()
        self._examples: dict[Topic, list[SourceQuestion]] = {}
        # Near-duplicate signature of each slot's current delivery (a few hundred bytes each).
        self._signatures: dict[str, bytes] = {}

    @cached_property
    def finder(self) -> NearDuplicateFinder:
        """The near-duplicate finder, made at the first delivery: its module imports numpy
        (~0.2 s), which the first requests need not wait for."""
        from finmcq.quality.neardup import NearDuplicateFinder

        return NearDuplicateFinder(self.settings.near_duplicate_threshold,
                                   self.settings.shingle_size)

    # -- helpers ---------------------------------------------------------------------------

    def _mark(self, stage: str) -> None:
        now = time.monotonic()
        span = self.stage_wall.setdefault(stage, [now, now])
        span[1] = now

    def _rank_target(self, slot: Slot, attempt: int, item_id: str, *,
                     last_chance: bool) -> RankTarget | None:
        """The slot's key length rank, with the tolerance a draft may miss it by; None (any
        rank) on a slot's last attempt or a rewrite's second try, since a slot left empty or a
        source question lost costs more than one item off its rank, which the set-level
        balancing evens out. A balancing redraft must hit its rank exactly."""
        if slot.rank is None:
            return None
        if slot.exact_rank:
            return RankTarget(slot.rank, 0, item_id)
        if last_chance or attempt >= self.settings.max_attempts_per_question - 1:
            return None
        return RankTarget(slot.rank, self.settings.length_rank_tolerance, item_id)

    def _load_benchmarks(self) -> ContaminationIndex:
        from finmcq.quality.contamination import load_benchmarks  # numpy: in the loading thread

        s = self.settings
        return load_benchmarks(
            s.source if s.contamination_check else None, s.contamination_against,
            subjects=s.contamination_subjects or FINANCE_ADJACENT_SUBJECTS,
            threshold=s.contamination_threshold, ngram=s.shingle_size,
        )

    async def _prepare_contamination(self) -> None:
        # The index loads in a thread while the first requests are in flight (issue 12: it cost
        # seconds before the first request when done up front).
        if self.contamination is None:
            index = await asyncio.to_thread(self._load_benchmarks)
            for note in index.notes:
                level = logging.INFO if note in index.expected_notes else logging.WARNING
                log.log(level, "contamination check: %s", note)
            self.contamination = ContaminationStage(index, drop=self.settings.drop_contaminated)
        self._contamination_ready.set()

    def _difficulty(self, slot_key: str) -> Difficulty:
        return difficulty_for(self.settings, slot_key)

    def _record_drop(self, item_id: str, stage: str, dropped: Dropped) -> None:
        """Log and store why ``item_id`` stopped at ``stage``."""
        log.info("drop %s at %s: %s %s", item_id, stage, dropped.reason, dropped.detail)
        self.store.put_outcome(item_id, stage, "dropped", reason=dropped.reason,
                               payload=json.dumps({"detail": dropped.detail}, ensure_ascii=False))
