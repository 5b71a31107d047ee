"""The whole build: relevance and slot filling as one stream, then the end of run and stats."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Sequence

from finmcq.config import floor_quotas, topic_quotas
from finmcq.pipeline.base import bounded_map
from finmcq.pipeline.delivered import BuildOutcome, DeliveredItems
from finmcq.pipeline.endofrun import EndOfRun
from finmcq.pipeline.plan import Slot, generated_slots, source_keys
from finmcq.pipeline.stats import RunStats
from finmcq.records import SourceQuestion, Topic
from finmcq.stages.base import Dropped
from finmcq.stages.relevance import Judged

EXAMPLES_PER_TOPIC = 2


class Pipeline(EndOfRun, RunStats):
    """Runs one build against an engine. Stateless across runs: the store is the memory."""

    # -- the whole build -------------------------------------------------------------------

    async def run(self, sources: Sequence[SourceQuestion]) -> BuildOutcome:
        s = self.settings
        # Rounded-down quotas hold whatever relevance finds; the seats rounding leaves over go
        # to topics with relevant sources once relevance is done (config.topic_quotas).
        floors = floor_quotas(s.questions, s.topic_weights)
        quotas = dict(floors)
        source_letters, source_ranks = source_keys(len(sources), s.seed)
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
            for slot in generated_slots(s, quotas, admitted):
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
                            stats_for=functools.partial(self._stats, quotas, delivered,
                                                        len(sources)),
                            unfilled=sorted(unfilled))
