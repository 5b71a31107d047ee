"""The build: sources → relevance → rewrite/generate → verify → solve → assemble, as a stream.

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
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import tomllib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from pydantic import ValidationError

from finmcq.config import BuildSettings, topic_quotas
from finmcq.engine.client import LLMEngine
from finmcq.engine.progress import StageProgress
from finmcq.engine.store import RunStore
from finmcq.records import (
    MARKET_TOPICS,
    Difficulty,
    McqItem,
    Solution,
    SourceQuestion,
    Topic,
    Verification,
    normalize_text,
)
from finmcq.stages.base import Dropped, StageStats
from finmcq.stages.generate import GenerateStage
from finmcq.stages.placement import balanced_sequence, letter_targets, place, seeded_rng
from finmcq.stages.relevance import Judged, RelevanceStage
from finmcq.stages.rewrite import RewriteStage
from finmcq.stages.solve import SolveStage
from finmcq.stages.verify import VerifyStage

log = logging.getLogger("finmcq.pipeline")

EXAMPLES_PER_TOPIC = 2


@cache
def subtopics() -> dict[str, list[str]]:
    text = resources.files("finmcq.data").joinpath("subtopics.toml").read_text("utf-8")
    return {k: list(v) for k, v in tomllib.loads(text).items()}


@dataclass(frozen=True)
class Slot:
    """One place in the final set: its topic, its key letter and, maybe, a source question."""

    slot_id: str
    topic: Topic
    letter: str
    index_in_topic: int
    difficulty: Difficulty
    source: Judged | None = None


@dataclass(frozen=True)
class Delivered:
    slot: Slot
    attempt: int
    item: McqItem
    verification: Verification
    solution: Solution


@dataclass
class BuildOutcome:
    """What the pipeline produced; the caller writes files from it."""

    delivered: list[Delivered]
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
                 progress: StageProgress | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self.progress = progress or StageProgress(lambda _s: 0.0, enabled=False)
        self.relevance = RelevanceStage(engine, min_score=settings.min_relevance_score)
        self.rewrite = RewriteStage(engine)
        self.generate = GenerateStage(engine)
        self.verify = VerifyStage(engine)
        self.solve = SolveStage(engine, max_tries=settings.solve_tries)
        self.place_stats = StageStats("placement")
        self.dedupe_stats = StageStats("dedupe")
        self.slot_stats: Counter[str] = Counter()
        self.stage_wall: dict[str, list[float]] = {}
        self._relevance_done = asyncio.Event()
        self._examples: dict[Topic, list[SourceQuestion]] = {}

    # -- helpers ---------------------------------------------------------------------------

    def _mark(self, stage: str) -> None:
        now = time.monotonic()
        span = self.stage_wall.setdefault(stage, [now, now])
        span[1] = now

    def _difficulty(self, slot_key: str) -> Difficulty:
        easy, medium, _hard = self.settings.difficulty_mix
        total = sum(self.settings.difficulty_mix)
        r = seeded_rng("difficulty", self.settings.seed, slot_key).random() * total
        if r < easy:
            return Difficulty.EASY
        return Difficulty.MEDIUM if r < easy + medium else Difficulty.HARD

    # -- the chain that fills one slot -----------------------------------------------------

    async def _draft(self, slot: Slot, attempt: int, item_id: str) -> Any:
        if attempt == 0 and slot.source is not None:
            result = await self.rewrite.run(slot.source.source, slot.topic, item_id)
            self._mark("rewrite")
            return result
        await self._relevance_done.wait()  # few-shot examples are final only then
        options = subtopics()[slot.topic.value]
        subtopic = options[(slot.index_in_topic + attempt) % len(options)]
        result = await self.generate.run(slot.topic, subtopic, slot.difficulty, slot.slot_id,
                                         attempt, self._examples.get(slot.topic, []))
        self._mark("generate")
        return result

    async def fill_slot(self, slot: Slot, first_attempt: int = 0) -> Delivered | None:
        for attempt in range(first_attempt, self.settings.max_attempts_per_question):
            self.slot_stats["attempts"] += 1
            item_id = f"{slot.slot_id}.{attempt}"
            draft = await self._draft(slot, attempt, item_id)
            if isinstance(draft, Dropped):
                self._record_drop(item_id, "draft", draft)
                continue
            options, letter = place(draft, slot.letter, (self.settings.seed, item_id))
            try:
                item = McqItem(
                    item_id=item_id, question=draft.question.strip(), options=options,  # type: ignore[arg-type]
                    answer=letter, topic=slot.topic,  # type: ignore[arg-type]
                    difficulty=draft.difficulty,
                    origin="rewrite" if attempt == 0 and slot.source else "generate",
                    source=slot.source.source if attempt == 0 and slot.source else None,
                )
            except ValidationError as exc:
                self.place_stats.drop("invalid_item")
                self._record_drop(item_id, "placement", Dropped("invalid_item", str(exc)))
                continue
            self.place_stats.keep()
            verification = await self.verify.run(item)
            self._mark("verify")
            self.progress.advance("verify")
            if isinstance(verification, Dropped):
                self._record_drop(item_id, "verify", verification)
                continue
            solution = await self.solve.run(item)
            self._mark("solve")
            if isinstance(solution, Dropped):
                self._record_drop(item_id, "solve", solution)
                continue
            delivered = Delivered(slot, attempt, item, verification, solution)
            self.store.put_outcome(item_id, "deliver", "ok", reason=None,
                                   payload=item.model_dump_json())
            self.progress.advance("deliver")
            return delivered
        self.slot_stats["exhausted"] += 1
        log.warning("slot %s: no acceptable question after %d attempts", slot.slot_id,
                    self.settings.max_attempts_per_question)
        return None

    def _record_drop(self, item_id: str, stage: str, dropped: Dropped) -> None:
        log.info("drop %s at %s: %s %s", item_id, stage, dropped.reason, dropped.detail)
        self.store.put_outcome(item_id, stage, "dropped", reason=dropped.reason,
                               payload=json.dumps({"detail": dropped.detail}, ensure_ascii=False))

    # -- the whole build -------------------------------------------------------------------

    async def run(self, sources: Sequence[SourceQuestion]) -> BuildOutcome:
        s = self.settings
        quotas = topic_quotas(s.questions, s.topic_weights)
        source_letters = balanced_sequence(len(sources), (s.seed, "sources"))
        self.progress.set_total("relevance", len(sources))
        self.progress.set_total("deliver", s.questions)

        judged: dict[int, Judged] = {}  # source index → judged relevant
        admitted: dict[int, Slot] = {}
        relevant_per_topic: Counter[Topic] = Counter()
        unjudged = len(sources)
        results: dict[str, Delivered] = {}
        unfilled: list[str] = []
        slot_queue: asyncio.Queue[Slot | None] = asyncio.Queue()

        def admit(index: int, judgment: Judged) -> None:
            topic = judgment.judgment.topic
            slot = Slot(
                slot_id=f"s{index:06d}", topic=topic, letter=source_letters[index],
                index_in_topic=index, difficulty=self._difficulty(f"s{index}"), source=judgment,
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
            if relevant_per_topic[topic] + unjudged < quotas.get(topic, 0):
                admit(index, verdict)
            relevant_per_topic[topic] += 1

        async def run_relevance() -> None:
            await bounded_map(range(len(sources)), judge, s.concurrency)
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
                    results[slot.slot_id] = done

        workers = [slot_worker() for _ in range(max(2, s.concurrency * 2))]
        await asyncio.gather(run_relevance(), *workers)
        await self._dedupe(results, unfilled)

        delivered = [results[k] for k in sorted(results)]
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
        slots: list[Slot] = []
        for topic in MARKET_TOPICS:
            for j in range(needed[topic]):
                slot_id = f"g{MARKET_TOPICS.index(topic)}{j:06d}"
                slots.append(Slot(slot_id=slot_id, topic=topic, letter=letters[len(slots)],
                                  index_in_topic=per_topic[topic] + j,
                                  difficulty=self._difficulty(slot_id)))
        return slots

    async def _dedupe(self, results: dict[str, Delivered], unfilled: list[str]) -> None:
        """Drop later exact duplicates (by normalised stem) and refill their slots; repeat."""
        for _round in range(3):
            seen: dict[str, str] = {}
            losers: list[Delivered] = []
            for slot_id in sorted(results):
                stem = normalize_text(results[slot_id].item.question).casefold()
                if stem in seen:
                    losers.append(results[slot_id])
                else:
                    seen[stem] = slot_id
            if not losers:
                return
            for loser in losers:
                self.dedupe_stats.drop("duplicate_question")
                self._record_drop(loser.item.item_id, "dedupe", Dropped("duplicate_question"))
                del results[loser.slot.slot_id]

            async def refill(loser: Delivered) -> None:
                done = await self.fill_slot(loser.slot, loser.attempt + 1)
                if done is None:
                    unfilled.append(loser.slot.slot_id)
                else:
                    results[loser.slot.slot_id] = done

            await bounded_map(losers, refill, self.settings.concurrency * 2)

    def _stats(self, quotas: dict[Topic, int], delivered: list[Delivered],
               n_sources: int) -> dict[str, Any]:
        stages = {st.name: st.as_dict() for st in (
            self.relevance.stats, self.rewrite.stats, self.generate.stats, self.place_stats,
            self.verify.stats, self.solve.stats)}
        self.dedupe_stats.kept = len(delivered)
        self.dedupe_stats.seen = len(delivered) + sum(self.dedupe_stats.dropped.values())
        stages["dedupe"] = self.dedupe_stats.as_dict()
        topics = Counter(d.item.topic.value for d in delivered)
        letters = Counter(d.item.answer for d in delivered)
        origins = Counter(d.item.origin for d in delivered)
        difficulty = Counter(d.item.difficulty.value if d.item.difficulty else "unknown"
                             for d in delivered)
        return {
            "sources": n_sources,
            "stages": stages,
            "slots": {"target": self.settings.questions, **dict(self.slot_stats)},
            "topics": {t.value: {"quota": quotas.get(t, 0), "delivered": topics.get(t.value, 0)}
                       for t in MARKET_TOPICS},
            "letters": dict(sorted(letters.items())),
            "origins": dict(origins),
            "difficulty": dict(difficulty),
            "stage_wall_s": {k: round(v[1] - v[0], 3) for k, v in self.stage_wall.items()},
        }
