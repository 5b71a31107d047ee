"""The build: sources → relevance → rewrite/generate → checks → solve → assemble, as a stream.

Design in brief:

* The final set has exactly ``questions`` *slots*. Each slot has a topic (from the quotas) and a
  key letter (from a seeded plan that makes every letter A–G the key N/7 (± 1) times). A slot is
  filled by a chain of attempts: attempt 0 of a source slot rewrites its KMMLU question; every
  other attempt generates a new question for the slot's topic with the slot's letter. So a drop
  never unbalances letters or topics, and generation only ever replaces what was rejected.
* Every decision is a function of the seed and of LLM replies, never of timing; replies come
  from the run's SQLite cache on a rerun. A crashed run therefore resumes to exactly the result
  the uninterrupted run would have given, paying only for requests that never completed.
* Relevance and slot chains share one engine: a source question that passed the filter is
  rewritten, verified and solved while others are still being judged.
* One attempt runs: draft → shape (leak and shape checks, answer-length cue) → placement →
  contamination → verify (k blind solves, difficulty) → judge (second answer; repair once) →
  solve → grade (optional; regenerate once). Deterministic checks come first so LLM calls are
  only paid for items that can still pass. After every slot is filled, exact and near duplicates
  are dropped in slot order and their slots refilled (:mod:`finmcq.quality.neardup`).
* Each slot also asks for a key length rank (a seeded plan like the letters'); a draft within
  ``length_rank_tolerance`` of it is kept, and after all slots are filled the few items that
  keep a rank out of its band are redrafted for the ranks that are short (:mod:`finmcq.balance`).
* A retry of a slot is told why the previous attempt was dropped (:mod:`finmcq.stages.feedback`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import tomllib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from pydantic import ValidationError

from finmcq import checks
from finmcq.balance import RankRow, rebalance_plan
from finmcq.config import BuildSettings, floor_quotas, topic_quotas
from finmcq.engine.client import LLMEngine
from finmcq.engine.progress import StageProgress
from finmcq.engine.store import RunStore
from finmcq.quality import summary
from finmcq.quality.contamination import (
    FINANCE_ADJACENT_SUBJECTS,
    ContaminationHit,
    ContaminationIndex,
    load_benchmarks,
)
from finmcq.quality.difficulty import delivered_shares, missing_difficulties
from finmcq.quality.length_rank import distribution, key_length_rank
from finmcq.quality.neardup import NearDuplicateFinder, question_text
from finmcq.records import (
    LETTERS,
    MARKET_TOPICS,
    Difficulty,
    DistractorAudit,
    McqItem,
    RelevanceJudgment,
    Solution,
    SolutionGrade,
    SourceQuestion,
    Topic,
    Verification,
)
from finmcq.review.decisions import ItemEdit, ReviewDecisions
from finmcq.stages.base import Dropped, StageStats
from finmcq.stages.contamination import ContaminationStage
from finmcq.stages.feedback import retry_feedback
from finmcq.stages.generate import GenerateStage
from finmcq.stages.grade import GradeStage
from finmcq.stages.judge import JudgeStage
from finmcq.stages.placement import (
    balanced_ranks,
    balanced_sequence,
    letter_targets,
    place,
    rank_targets,
    seeded_rng,
)
from finmcq.stages.relevance import Judged, RelevanceStage
from finmcq.stages.rewrite import RewriteStage
from finmcq.stages.shape import RANK_OFF_TARGET, RankTarget, ShapeStage, shape_problem
from finmcq.stages.solve import SolveStage
from finmcq.stages.verify import VerifyStage

log = logging.getLogger("finmcq.pipeline")

EXAMPLES_PER_TOPIC = 2
DEDUPE_ROUNDS = 5
REBALANCE_ROUNDS = 3
TIME_SENSITIVE_LISTED = 1000  # item ids listed in the stats (the items file has every one)


@cache
def subtopics() -> dict[str, list[str]]:
    text = resources.files("finmcq.data").joinpath("subtopics.toml").read_text("utf-8")
    return {k: list(v) for k, v in tomllib.loads(text).items()}


@dataclass(frozen=True)
class Slot:
    """One place in the final set: its topic, its key letter, its key length rank and, maybe,
    a source question. ``exact_rank``: a balancing redraft, which must hit the rank exactly."""

    slot_id: str
    topic: Topic
    letter: str
    index_in_topic: int
    difficulty: Difficulty
    source: Judged | None = None
    rank: int | None = None
    exact_rank: bool = False


@dataclass(frozen=True)
class Delivered:
    slot: Slot
    attempt: int
    item: McqItem
    verification: Verification
    solution: Solution
    audit: DistractorAudit | None = None
    grade: SolutionGrade | None = None
    contamination: ContaminationHit | None = None
    repaired: tuple[str, ...] = ()  # letters whose distractor the judge replaced
    review: str | None = None  # "accepted" / "edited" when a reviewer kept this delivery

    @property
    def quality(self) -> dict[str, Any]:
        """What the quality checks found about this item, for the items file."""
        return {
            "difficulty": {
                "final": self.verification.difficulty,
                "generator": self.verification.generator_difficulty,
                "solver": list(self.verification.solver_difficulty),
                "target": self.slot.difficulty.value,
            },
            "key_is_longest": checks.key_is_longest(self.item.options, self.item.answer),
            "key_length_rank": self.key_length_rank(),
            "target_key_length_rank": self.slot.rank,
            "negation_stem": checks.is_negative_stem(self.item.question),
            # The judge's word: the key rests on a rule that can change (None: no judge ran).
            "time_sensitive": None if self.audit is None else self.audit.time_sensitive,
            "judge": None if self.audit is None else {
                "repaired": list(self.repaired),
                "why_wrong": {r.letter: r.why_wrong for r in self.audit.distractor_reviews},
            },
            "solution_grade": None if self.grade is None else self.grade.model_dump(),
            "contamination": None if self.contamination is None else {
                "benchmark": self.contamination.benchmark, "ref": self.contamination.ref,
                "overlap": self.contamination.overlap},
        }

    def key_length_rank(self) -> int:
        """The key's length rank; equal lengths are ordered by a coin seeded by the item id."""
        item = self.item
        return key_length_rank(item.options, LETTERS.index(item.answer), item.item_id)

    def to_json(self) -> str:
        """Everything about this delivery, for the store's ``deliver`` outcome row."""
        slot = self.slot
        source = None if slot.source is None else {
            "source": slot.source.source.model_dump(mode="json"),
            "judgment": slot.source.judgment.model_dump(mode="json")}
        return json.dumps({
            "slot": {"slot_id": slot.slot_id, "topic": slot.topic.value, "letter": slot.letter,
                     "index_in_topic": slot.index_in_topic,
                     "difficulty": slot.difficulty.value, "source": source,
                     "rank": slot.rank, "exact_rank": slot.exact_rank},
            "attempt": self.attempt,
            "item": self.item.model_dump(mode="json"),
            "verification": self.verification.model_dump(mode="json"),
            "solution": self.solution.model_dump(mode="json"),
            "audit": None if self.audit is None else self.audit.model_dump(mode="json"),
            "grade": None if self.grade is None else self.grade.model_dump(mode="json"),
            "contamination": None if self.contamination is None else asdict(self.contamination),
            "repaired": list(self.repaired),
            "review": self.review,
        }, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Delivered:
        """The inverse of :meth:`to_json`."""
        data = json.loads(text)
        raw_slot = data["slot"]
        raw_source = raw_slot["source"]
        slot = Slot(
            slot_id=raw_slot["slot_id"], topic=Topic(raw_slot["topic"]),
            letter=raw_slot["letter"], index_in_topic=raw_slot["index_in_topic"],
            difficulty=Difficulty(raw_slot["difficulty"]),
            source=None if raw_source is None else Judged(
                SourceQuestion.model_validate(raw_source["source"]),
                RelevanceJudgment.model_validate(raw_source["judgment"])),
            rank=raw_slot.get("rank"), exact_rank=bool(raw_slot.get("exact_rank", False)))
        return cls(
            slot=slot, attempt=int(data["attempt"]),
            item=McqItem.model_validate(data["item"]),
            verification=Verification.model_validate(data["verification"]),
            solution=Solution.model_validate(data["solution"]),
            audit=None if data["audit"] is None else DistractorAudit.model_validate(
                data["audit"]),
            grade=None if data["grade"] is None else SolutionGrade.model_validate(data["grade"]),
            contamination=None if data["contamination"] is None else ContaminationHit(
                **data["contamination"]),
            repaired=tuple(data["repaired"]),
            review=data.get("review"),
        )


class DeliveredItems:
    """The delivered items in slot order, read back from the store on every iteration.

    Holding every :class:`Delivered` (item, verification, solution, audit, ...) of a 100,000
    question build costs gigabytes; the store already has each one in its ``deliver`` row, so
    only the current item id per slot stays in memory. A slot refilled after a dedupe drop names
    its new attempt here, so superseded rows in the store are never returned.
    """

    CHUNK = 256

    def __init__(self, store: RunStore, item_ids: Sequence[str]) -> None:
        self._store = store
        self._item_ids = list(item_ids)

    def __len__(self) -> int:
        return len(self._item_ids)

    def __iter__(self) -> Iterator[Delivered]:
        for start in range(0, len(self._item_ids), self.CHUNK):
            part = self._item_ids[start:start + self.CHUNK]
            payloads = self._store.get_outcome_payloads(part, "deliver")
            for item_id in part:
                payload = payloads.get(item_id)
                if payload is None:
                    raise LookupError(f"the store has no delivered item {item_id}")
                yield Delivered.from_json(payload)


class _Items(Sequence[McqItem]):
    """The items of :class:`DeliveredItems` as a sequence that streams (for the summaries)."""

    def __init__(self, delivered: DeliveredItems) -> None:
        self._delivered = delivered

    def __len__(self) -> int:
        return len(self._delivered)

    def __iter__(self) -> Iterator[McqItem]:
        return (d.item for d in self._delivered)

    def __getitem__(self, index: Any) -> Any:
        raise TypeError("delivered items stream from the store; iterate instead")


@dataclass
class BuildOutcome:
    """What the pipeline produced; the caller writes files from it."""

    delivered: DeliveredItems
    target: int
    stats: dict[str, Any]
    unfilled: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return len(self.delivered) == self.target


async def bounded_map(items: Iterable[Any], worker: Callable[[Any], Awaitable[None]],
                      width: int) -> None:
    """Run ``worker`` over ``items`` with at most ``width`` at once, pulling items lazily."""
    iterator = iter(items)

    async def lane() -> None:
        for item in iterator:  # each lane pulls the next item when it is free
            await worker(item)

    await asyncio.gather(*(lane() for _ in range(max(1, width))))


class Pipeline:
    """Runs one build against an engine. Stateless across runs: the store is the memory."""

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
        self.finder = NearDuplicateFinder(settings.near_duplicate_threshold, settings.shingle_size)
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
        s = self.settings
        return load_benchmarks(
            s.source if s.contamination_check else None, s.contamination_against,
            subjects=s.contamination_subjects or FINANCE_ADJACENT_SUBJECTS,
            threshold=s.contamination_threshold, ngram=s.shingle_size,
        )

    async def _prepare_contamination(self) -> None:
        # Both load in a thread while the first requests are in flight (issue 12: they cost
        # seconds before the first request when done up front).
        await asyncio.to_thread(self.finder.prepare)
        if self.contamination is None:
            index = await asyncio.to_thread(self._load_benchmarks)
            self.contamination = ContaminationStage(index, drop=self.settings.drop_contaminated)
        self._contamination_ready.set()

    def _difficulty(self, slot_key: str) -> Difficulty:
        easy, medium, _hard = self.settings.difficulty_mix
        total = sum(self.settings.difficulty_mix)
        r = seeded_rng("difficulty", self.settings.seed, slot_key).random() * total
        if r < easy:
            return Difficulty.EASY
        return Difficulty.MEDIUM if r < easy + medium else Difficulty.HARD

    # -- the chain that fills one slot -----------------------------------------------------

    async def _draft(self, slot: Slot, attempt: int, item_id: str,
                     feedback: str | None = None) -> Any:
        if attempt == 0 and slot.source is not None:
            result = await self.rewrite.run(slot.source.source, slot.topic, item_id,
                                            slot.difficulty, feedback, slot.rank)
            self._mark("rewrite")
            return result
        await self._relevance_done.wait()  # few-shot examples are final only then
        options = subtopics()[slot.topic.value]
        subtopic = options[(slot.index_in_topic + attempt) % len(options)]
        result = await self.generate.run(slot.topic, subtopic, slot.difficulty, slot.slot_id,
                                         attempt, self._examples.get(slot.topic, []),
                                         slot.rank, feedback)
        self._mark("generate")
        return result

    async def fill_slot(self, slot: Slot, first_attempt: int = 0,
                        previous: Dropped | None = None, *, quiet: bool = False
                        ) -> Delivered | None:
        """Attempts from ``first_attempt`` until one delivers; each retry of a generate is told
        why the attempt before it (``previous`` for the first) was dropped. ``quiet``: a
        balancing redraft, which may fail without counting the slot as exhausted."""
        if first_attempt == 0:
            kept = await self._reviewed_delivery(slot)
            if kept is not None:
                return self._deliver(slot, kept)
        # A reviewer's rejection does not use up the slot's attempts.
        last = self.settings.max_attempts_per_question + self.review.rejected_per_slot[
            slot.slot_id]
        replacing = False
        for attempt in range(first_attempt, last):
            self.slot_stats["attempts"] += 1
            item_id = f"{slot.slot_id}.{attempt}"
            # A rewrite's feedback comes from --verify-repair only; generate retries get this.
            feedback = None if attempt == 0 and slot.source else retry_feedback(previous)
            outcome = await self._attempt(slot, attempt, item_id, generate_feedback=feedback)
            if isinstance(outcome, Delivered) and self.review.is_rejected(outcome.item.item_id):
                rejected = Dropped("rejected_in_review", self.review.rejected[item_id])
                self._record_drop(item_id, "review", rejected)
                replacing = True
                previous = rejected
                continue
            if isinstance(outcome, Delivered):
                self.review_stats["replaced"] += replacing
                return self._deliver(slot, outcome, quiet=quiet)
            previous = outcome
        if quiet:
            return None
        self.slot_stats["exhausted"] += 1
        log.warning("slot %s: no acceptable question after %d attempts", slot.slot_id,
                    self.settings.max_attempts_per_question)
        return None

    def _deliver(self, slot: Slot, delivered: Delivered, *, quiet: bool = False) -> Delivered:
        # The whole delivery, not just the item: the outcome's items are streamed back from
        # here (DeliveredItems) instead of being held in memory.
        self.store.put_outcome(delivered.item.item_id, "deliver", "ok", reason=None,
                               payload=delivered.to_json())
        self._signatures[slot.slot_id] = self.finder.signature(
            question_text(delivered.item.question, delivered.item.options))
        if not quiet:  # a balancing redraft replaces a delivery: nothing more is delivered
            self.progress.advance("deliver")
        return delivered

    async def _reviewed_delivery(self, slot: Slot) -> Delivered | None:
        """The delivery a reviewer accepted (or edited) for this slot, never regenerated."""
        kept = self.review.kept.get(slot.slot_id)
        if kept is None:
            return None
        item_id, edit = kept
        # An edit always applies to the delivery as built; that one is kept aside once.
        payload = (self.store.get_outcome_payload(item_id, "deliver_original")
                   or self.store.get_outcome_payload(item_id, "deliver"))
        if payload is None:
            log.warning("review: accepted item %s is not in the store; slot %s is built anew",
                        item_id, slot.slot_id)
            return None
        original = Delivered.from_json(payload)
        if original.slot.topic != slot.topic:
            log.warning("review: accepted item %s was built for another topic (%s, now %s); "
                        "slot %s is built anew", item_id, original.slot.topic.value,
                        slot.topic.value, slot.slot_id)
            return None
        if edit is None:
            self.review_stats["accepted"] += 1
            return replace(original, slot=slot, review="accepted")
        if self.store.get_outcome_payload(item_id, "deliver_original") is None:
            self.store.put_outcome(item_id, "deliver_original", "ok", reason=None,
                                   payload=payload)
        edited = await self._apply_edit(original, edit)
        if edited is None:
            return None
        self.review_stats["edited"] += 1
        return replace(edited, slot=slot)

    async def _apply_edit(self, original: Delivered, edit: ItemEdit) -> Delivered | None:
        """The reviewer's version of a delivery; re-solved when the key or the options changed."""
        item_id = original.item.item_id
        try:
            item = McqItem.model_validate({
                **original.item.model_dump(), "question": edit.question,
                "options": edit.options, "answer": edit.answer})
        except ValidationError as exc:
            self._record_drop(item_id, "review", Dropped("edit_invalid", str(exc)))
            return None
        problem = checks.item_problems(item.question, item.options, item.answer)
        if problem is not None:
            self._record_drop(item_id, "review", Dropped("edit_" + problem))
            return None
        changed = item.options != original.item.options or item.answer != original.item.answer
        solution, audit, grade = original.solution, original.audit, original.grade
        if edit.solution is not None:
            solution = Solution(text=edit.solution, final_answer=item.answer)
        elif changed:
            solved = await self.solve.run(item)
            self._mark("solve")
            if isinstance(solved, Dropped):
                self._record_drop(item_id, "review", Dropped("edit_unsolved", solved.reason))
                return None
            solution, grade = solved, None
            self.review_stats["re_solved"] += 1
        if changed:
            audit = None  # the judge's reasons were about the old options
        return replace(original, item=item, solution=solution, audit=audit, grade=grade,
                       repaired=() if changed else original.repaired, review="edited")

    async def _attempt(self, slot: Slot, attempt: int, item_id: str,
                       feedback: str | None = None, *,
                       generate_feedback: str | None = None) -> Delivered | Dropped:
        """One try at a slot: every stage in order; the first drop (recorded) if one says no.

        With ``verify_repair``, a rewrite whose blind solve disagrees with its key is rewritten
        once more, told what the solver chose, before the slot falls back to generation.
        ``generate_feedback``: why the slot's previous attempt was dropped, for a generate.
        """
        is_rewrite = attempt == 0 and slot.source is not None
        draft = await self._draft(slot, attempt, item_id,
                                  feedback if is_rewrite else generate_feedback)
        if isinstance(draft, Dropped):
            self._record_drop(item_id, "draft", draft)
            return draft
        options, letter = place(draft, slot.letter, (self.settings.seed, item_id))
        question = draft.question.strip()
        target = self._rank_target(slot, attempt, item_id,
                                   last_chance=is_rewrite and feedback is not None)
        shape = self.shape.run(question, options, letter, target)
        if shape is not None:
            self._record_drop(item_id, "shape", shape)
            if shape.reason == RANK_OFF_TARGET and is_rewrite and feedback is None:
                # Keep the source question: rewrite it once more, told what the lengths were.
                self.slot_stats["length_repairs"] += 1
                return await self._attempt(slot, attempt, f"{item_id}l",
                                           feedback=retry_feedback(shape))
            return shape
        try:
            item = McqItem(
                item_id=item_id, question=question, options=options,
                answer=letter, topic=slot.topic,
                difficulty=draft.difficulty,
                origin="rewrite" if attempt == 0 and slot.source else "generate",
                source=slot.source.source if attempt == 0 and slot.source else None,
            )
        except ValidationError as exc:
            self.place_stats.drop("invalid_item")
            invalid = Dropped("invalid_item", str(exc))
            self._record_drop(item_id, "placement", invalid)
            return invalid
        self.place_stats.keep()
        await self._contamination_ready.wait()
        assert self.contamination is not None  # set before the event
        hit = self.contamination.run(item)
        if isinstance(hit, Dropped):
            self._record_drop(item_id, "contamination", hit)
            return hit
        verification = await self.verify.run(item, slot.difficulty)
        self._mark("verify")
        self.progress.advance("verify")
        if isinstance(verification, Dropped):
            self._record_drop(item_id, "verify", verification)
            if (verification.reason == "blind_solve_mismatch" and self.settings.verify_repair
                    and feedback is None and item.origin == "rewrite"):
                self.slot_stats["verify_repairs"] += 1
                note = ("정답을 모르는 풀이자가 정답이 아닌 선택지를 골랐습니다"
                        f"({verification.detail}). 그 선택지도 답이 될 수 있거나 정답의 근거가 "
                        "부족했다는 뜻입니다.")
                return await self._attempt(slot, attempt, f"{item_id}r", feedback=note)
            return verification
        item = item.model_copy(update={"difficulty": verification.difficulty})
        audit: DistractorAudit | None = None
        repaired: tuple[str, ...] = ()
        if self.judge is not None:
            audited = await self.judge.run(item, lambda it: self._recheck(it, target))
            self._mark("judge")
            if isinstance(audited, Dropped):
                self._record_drop(item_id, "judge", audited)
                return audited
            item, audit, repaired = audited.item, audited.audit, audited.repaired
            if repaired:
                self.store.put_outcome(item_id, "judge", "repaired",
                                       reason="distractor_defensible",
                                       payload=json.dumps({"letters": list(repaired)}))
        solution = await self.solve.run(item)
        self._mark("solve")
        if isinstance(solution, Dropped):
            self._record_drop(item_id, "solve", solution)
            return solution
        grade: SolutionGrade | None = None
        if self.grade is not None:
            graded = await self.grade.run(item, solution, self.solve)
            self._mark("grade")
            if isinstance(graded, Dropped):
                self._record_drop(item_id, "grade", graded)
                return graded
            solution, grade = graded.solution, graded.grade
        return Delivered(slot, attempt, item, verification, solution, audit=audit, grade=grade,
                         contamination=hit, repaired=repaired)

    @staticmethod
    def _recheck(item: McqItem, target: RankTarget | None) -> str | None:
        """The shape checks on a judge-repaired item (its new distractor may move the rank)."""
        problem = shape_problem(item.question, item.options, item.answer, target)
        return None if problem is None else problem.reason

    def _record_drop(self, item_id: str, stage: str, dropped: Dropped) -> None:
        """Log and store why ``item_id`` stopped at ``stage``."""
        log.info("drop %s at %s: %s %s", item_id, stage, dropped.reason, dropped.detail)
        self.store.put_outcome(item_id, stage, "dropped", reason=dropped.reason,
                               payload=json.dumps({"detail": dropped.detail}, ensure_ascii=False))

    # -- the whole build -------------------------------------------------------------------

    async def run(self, sources: Sequence[SourceQuestion]) -> BuildOutcome:
        s = self.settings
        # Rounded-down quotas hold whatever relevance finds; the seats rounding leaves over go
        # to topics with relevant sources once relevance is done (config.topic_quotas).
        floors = floor_quotas(s.questions, s.topic_weights)
        quotas = dict(floors)
        source_letters = balanced_sequence(len(sources), (s.seed, "sources"))
        source_ranks = balanced_ranks(len(sources), (s.seed, "sources"))
        self.progress.set_total("relevance", len(sources))
        self.progress.set_total("deliver", s.questions)

        judged: dict[int, Judged] = {}  # source index → judged relevant
        admitted: dict[int, Slot] = {}
        relevant_per_topic: Counter[Topic] = Counter()
        unjudged = len(sources)
        results: dict[str, str] = {}  # slot id → item id of its current delivery
        unfilled: list[str] = []
        slot_queue: asyncio.Queue[Slot | None] = asyncio.Queue()

        def admit(index: int, judgment: Judged) -> None:
            topic = judgment.judgment.topic
            slot = Slot(
                slot_id=f"s{index:06d}", topic=topic, letter=source_letters[index],
                index_in_topic=index, difficulty=self._difficulty(f"s{index}"), source=judgment,
                rank=source_ranks[index],
            )
            admitted[index] = slot
            slot_queue.put_nowait(slot)

        async def judge(index: int) -> None:
            nonlocal unjudged
            verdict = await self.relevance.run(sources[index])
            self._mark("relevance")
            unjudged -= 1
            self.progress.advance("relevance")
            if isinstance(verdict, Dropped):
                self._record_drop(sources[index].uid, "relevance", verdict)
                return
            topic = verdict.judgment.topic
            judged[index] = verdict
            # Admit at once only when this question is surely among the first quota-many
            # relevant ones of its topic in source order, whatever the unjudged turn out to be;
            # otherwise decide after all are judged. Either way the result ignores timing.
            if relevant_per_topic[topic] + unjudged < floors.get(topic, 0):
                admit(index, verdict)
            relevant_per_topic[topic] += 1

        async def run_relevance() -> None:
            await bounded_map(range(len(sources)), judge, s.concurrency)
            quotas.update(topic_quotas(s.questions, s.topic_weights, relevant_per_topic))
            per_topic_rank: Counter[Topic] = Counter()
            for index in sorted(judged):
                topic = judged[index].judgment.topic
                rank = per_topic_rank[topic]
                per_topic_rank[topic] += 1
                if rank >= quotas.get(topic, 0):
                    self.relevance.stats.dropped["topic_quota_full"] += 1
                    self.relevance.stats.kept -= 1
                    self._record_drop(sources[index].uid, "relevance",
                                      Dropped("topic_quota_full", topic.value))
                elif index not in admitted:
                    admit(index, judged[index])
                if len(self._examples.setdefault(topic, [])) < EXAMPLES_PER_TOPIC:
                    self._examples[topic].append(judged[index].source)
            self._relevance_done.set()
            for slot in self._generated_slots(quotas, admitted):
                slot_queue.put_nowait(slot)
            slot_queue.put_nowait(None)

        async def slot_worker() -> None:
            while True:
                slot = await slot_queue.get()
                if slot is None:
                    slot_queue.put_nowait(None)  # let the other workers see the end too
                    return
                done = await self.fill_slot(slot)
                if done is None:
                    unfilled.append(slot.slot_id)
                else:
                    results[slot.slot_id] = done.item.item_id

        workers = [slot_worker() for _ in range(max(2, s.concurrency * 2))]
        await asyncio.gather(self._prepare_contamination(), run_relevance(), *workers)
        await self._dedupe(results, unfilled)
        if await self._rebalance_ranks(results):
            await self._dedupe(results, unfilled)  # a redraft may repeat another question

        delivered = DeliveredItems(self.store, [results[k] for k in sorted(results)])
        return BuildOutcome(delivered=delivered, target=s.questions,
                            stats=self._stats(quotas, delivered, len(sources)),
                            unfilled=sorted(unfilled))

    def _generated_slots(self, quotas: dict[Topic, int], admitted: dict[int, Slot]) -> list[Slot]:
        """Slots left after the source questions, with the letters that keep the plan balanced."""
        s = self.settings
        used = Counter(slot.letter for slot in admitted.values())
        per_topic = Counter(slot.topic for slot in admitted.values())
        needed = {t: quotas.get(t, 0) - per_topic[t] for t in MARKET_TOPICS}
        total = sum(needed.values())
        targets = letter_targets(s.questions, s.seed)
        letters = [ch for ch, n in targets.items() for _ in range(max(0, n - used[ch]))]
        # Only when source questions alone overshoot a letter's target (tiny runs) can this
        # fall short; top up evenly so the count of slots stays exact.
        letters += balanced_sequence(total, (s.seed, "topup"))[: max(0, total - len(letters))]
        seeded_rng("generated-letters", s.seed).shuffle(letters)
        # Key length ranks: the same complement of what the source slots were given.
        ranks_used = Counter(slot.rank for slot in admitted.values())
        ranks = [r for r, n in rank_targets(s.questions, s.seed).items()
                 for _ in range(max(0, n - ranks_used[r]))]
        ranks += balanced_ranks(total, (s.seed, "rank-topup"))[: max(0, total - len(ranks))]
        seeded_rng("generated-ranks", s.seed).shuffle(ranks)
        # Difficulty targets: exactly the labels the mix still needs after the source slots.
        levels = missing_difficulties(s.questions, s.difficulty_mix,
                                      Counter(slot.difficulty for slot in admitted.values()))
        levels += [self._difficulty(f"topup{i}") for i in range(max(0, total - len(levels)))]
        seeded_rng("generated-difficulty", s.seed).shuffle(levels)
        slots: list[Slot] = []
        for topic in MARKET_TOPICS:
            for j in range(needed[topic]):
                slot_id = f"g{MARKET_TOPICS.index(topic)}{j:06d}"
                slots.append(Slot(slot_id=slot_id, topic=topic, letter=letters[len(slots)],
                                  index_in_topic=per_topic[topic] + j,
                                  difficulty=levels[len(slots)], rank=ranks[len(slots)]))
        return slots

    def _nth_text(self, item_ids: Sequence[str], index: int) -> str:
        return self._question_text(item_ids[index])

    def _question_text(self, item_id: str) -> str:
        """What near-duplicate detection compares for a delivered item, read from the store."""
        payload = self.store.get_outcome_payload(item_id, "deliver")
        if payload is None:
            raise LookupError(f"the store has no delivered item {item_id}")
        item = json.loads(payload)["item"]
        return question_text(item["question"], item["options"])

    async def _dedupe(self, results: dict[str, str], unfilled: list[str]) -> None:
        """Drop later exact and near duplicates (in slot order) and refill their slots; repeat.

        Slot order, not completion order, decides which of two similar questions stays, so the
        outcome is the same on every run and on resume. Only the signatures made at delivery
        are in memory; texts are read back from the store for the few candidate pairs.
        """
        for _round in range(DEDUPE_ROUNDS):
            started = time.monotonic()
            order = sorted(results)
            ids = [results[k] for k in order]
            duplicates = self.finder.find_signed([self._signatures[k] for k in order],
                                                 functools.partial(self._nth_text, ids))
            log.info("dedupe round %d: %d of %d items repeat an earlier one (%.1fs)", _round,
                     len(duplicates), len(order), time.monotonic() - started)
            if not duplicates:
                return
            loser_ids: list[str] = []
            gone: set[int] = set()
            for dup in duplicates:
                loser, winner = self._dedupe_loser(ids, dup.index, dup.of)
                if loser is None or loser in gone:
                    continue
                gone.add(loser)
                loser_id, winner_id = ids[loser], ids[winner]
                self.dedupe_stats.drop(dup.reason)
                self._record_drop(loser_id, "dedupe", Dropped(
                    dup.reason, f"{dup.similarity:.2f} similar to {winner_id}"))
                loser_ids.append(loser_id)
                del results[order[loser]]
            # Only the slot and attempt of each loser are needed to refill it.
            losers = [(d.slot, d.attempt) for d in DeliveredItems(self.store, loser_ids)]

            async def refill(loser: tuple[Slot, int]) -> None:
                slot, attempt = loser
                done = await self.fill_slot(slot, attempt + 1, Dropped("near_duplicate_question"))
                if done is None:
                    unfilled.append(slot.slot_id)
                else:
                    results[slot.slot_id] = done.item.item_id

            await bounded_map(losers, refill, self.settings.concurrency * 2)

    def _dedupe_loser(self, ids: Sequence[str], later: int,
                      earlier: int) -> tuple[int | None, int]:
        """Which of two duplicates goes: the later one, unless a reviewer kept it.

        A kept item is never regenerated: the other one goes instead; if a reviewer kept both,
        both stay (they looked at them).
        """
        if not self.review.protects(ids[later]):
            return later, earlier
        if not self.review.protects(ids[earlier]):
            return earlier, later
        return None, earlier

    async def _rebalance_ranks(self, results: dict[str, str]) -> bool:
        """Redraft the few items that keep a key length rank out of its band (see
        :mod:`finmcq.balance`); True when any item was replaced. Deterministic: the plan is a
        function of the delivered set, which is a function of the seed and the replies."""
        max_attempts = self.settings.max_attempts_per_question
        tried: set[str] = set()
        changed = False
        for _round in range(REBALANCE_ROUNDS):
            order = sorted(results)
            # A slot already tried, or an item a reviewer kept, is never redrafted.
            rows = [RankRow(d.slot.slot_id, d.key_length_rank(), d.slot.rank,
                            d.item.origin == "generate",
                            0 if d.slot.slot_id in tried or self.review.protects(d.item.item_id)
                            else max_attempts - d.attempt - 1)
                    for d in DeliveredItems(self.store, [results[k] for k in order])]
            plan = dict(rebalance_plan(rows))
            if not plan:
                break
            log.info("rebalance round %d: redrafting %d items for their key length rank",
                     _round, len(plan))
            tried |= set(plan)
            victims = [(d.slot, d.attempt, d.item.item_id, d.key_length_rank(),
                        plan[d.slot.slot_id])
                       for d in DeliveredItems(self.store, [results[k] for k in sorted(plan)])]

            async def redraft(victim: tuple[Slot, int, str, int, int]) -> None:
                nonlocal changed
                slot, attempt, old_id, old_rank, wanted = victim
                done = await self.fill_slot(replace(slot, rank=wanted, exact_rank=True),
                                            attempt + 1, quiet=True)
                if done is None:
                    self.rank_stats["rebalance_missed"] += 1
                    return
                self.rank_stats["rebalanced"] += 1
                changed = True
                self._record_drop(old_id, "rebalance", Dropped(
                    "key_length_rank_rebalanced",
                    f"rank {old_rank} was over-represented; {done.item.item_id} has rank {wanted}"))
                results[slot.slot_id] = done.item.item_id

            await bounded_map(victims, redraft, self.settings.concurrency * 2)
        return changed

    def _stats(self, quotas: dict[Topic, int], delivered: DeliveredItems,
               n_sources: int) -> dict[str, Any]:
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
        tally = _Tally.over(delivered)
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

    def _contamination_line(self, tally: _Tally) -> dict[str, Any] | None:
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
                       tally: _Tally) -> dict[str, Any]:
        """The quality block: per-check drops and measurements over the delivered items."""
        s = self.settings
        items = _Items(delivered)  # streamed from the store by each summary that needs it
        usage = self.engine.meter.as_dict()
        calls = sum(u["requests"] + u["cache_hits"] for u in usage.values())
        flagged = tally.flagged
        index = self.contamination.index.describe() if self.contamination else {}
        return {
            "checks": summary.drops_by_check(stages),
            "answer_length_cue": summary.answer_length_cue(items, 1 / 7 + s.length_rank_band),
            "key_length_rank": {
                **distribution(tally.ranks, s.length_rank_band),
                "tolerance": s.length_rank_tolerance,
                "on_target": tally.on_target,
                "rebalanced": self.rank_stats["rebalanced"],
                "rebalance_missed": self.rank_stats["rebalance_missed"],
            },
            "negation_stems": summary.negation(items, s.negation_share_range),
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
class _Tally:
    """What the stats count over the delivered items, gathered in one pass over the store."""

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
    audited: int = 0  # items the second-answer judge audited
    time_sensitive: list[str] = field(default_factory=list)  # their ids, when the key is dated

    @classmethod
    def over(cls, delivered: Iterable[Delivered]) -> _Tally:
        tally = cls()
        for d in delivered:
            item = d.item
            tally.topics[item.topic.value] += 1
            tally.letters[item.answer] += 1
            tally.origins[item.origin] += 1
            tally.difficulty[item.difficulty.value if item.difficulty else "unknown"] += 1
            tally.labels.append(item.difficulty)
            tally.grades.append(d.grade)
            tally.repaired += bool(d.repaired)
            rank = d.key_length_rank()
            tally.ranks.append(rank)
            tally.on_target += rank == d.slot.rank
            tally.negative += checks.is_negative_stem(item.question)
            if d.audit is not None:
                tally.audited += 1
                if d.audit.time_sensitive:
                    tally.time_sensitive.append(item.item_id)
            if d.contamination is not None:
                tally.flagged.append({
                    "item_id": item.item_id, "benchmark": d.contamination.benchmark,
                    "benchmark_item": d.contamination.ref, "overlap": d.contamination.overlap})
        return tally
