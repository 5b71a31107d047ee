"""Delivered-item storage: one delivery as a store row, and the set streamed back from it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from finmcq import checks
from finmcq.engine.store import RunStore
from finmcq.pipeline.plan import Slot
from finmcq.quality.benchmarks import ContaminationHit
from finmcq.quality.length_rank import key_length_rank
from finmcq.records import (
    LETTERS,
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
from finmcq.stages.relevance import Judged


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


@dataclass
class BuildOutcome:
    """What the pipeline produced; the caller writes files from it."""

    delivered: DeliveredItems
    target: int
    # The stats block, given a tally of the delivered items (None: it makes its own pass).
    stats_for: Callable[[Any], dict[str, Any]]
    unfilled: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return len(self.delivered) == self.target
