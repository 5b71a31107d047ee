"""End of run: drop exact and near duplicates and refill their slots; rebalance key ranks."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace

from finmcq.balance import RankRow, rebalance_plan
from finmcq.pipeline.base import bounded_map
from finmcq.pipeline.delivered import DeliveredItems
from finmcq.pipeline.fill import SlotFilling
from finmcq.pipeline.plan import Slot
from finmcq.quality.text import question_text
from finmcq.stages.base import Dropped

log = logging.getLogger("finmcq.pipeline")

DEDUPE_ROUNDS = 5
REBALANCE_ROUNDS = 3


class EndOfRun(SlotFilling):
    """What runs after every slot is filled: dedupe with refill, key length rank balancing."""

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
