"""Judge: a second LLM confirms the key and says, for every distractor, why it is wrong.

Studies of LLM-written distractors find about one in three or four items with a distractor that
is also correct; a blind solve that picks the key does not notice. This stage asks a separate call
(``--judge-model``) to audit the key and all six distractors. An item with a defensible distractor
is repaired once (the judge proposes a clearly wrong replacement; the repaired item must pass the
shape checks and a second audit), else dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from finmcq.records import LETTERS, DistractorAudit, McqItem
from finmcq.stages.base import Dropped, LLMStage


@dataclass(frozen=True)
class Audited:
    """An item that passed the audit (maybe after a repair) and the audit that passed it."""

    item: McqItem
    audit: DistractorAudit
    repaired: tuple[str, ...] = ()  # letters whose distractor was replaced


class JudgeStage(LLMStage[DistractorAudit]):
    name = "judge"
    prompt_name = "judge"
    reply_model = DistractorAudit

    @staticmethod
    def payload(item: McqItem, round_: int = 0) -> dict[str, object]:
        payload: dict[str, object] = {
            "task": "judge",
            "question": item.question,
            "options": dict(zip(LETTERS, item.options, strict=True)),
            "answer": item.answer,
        }
        if round_:
            payload["round"] = round_  # the audit of a repaired item
        return payload

    @staticmethod
    def keep(item: McqItem, audit: DistractorAudit) -> Dropped | None:
        """None when the key is confirmed and every distractor is shown to be wrong."""
        letters = [r.letter for r in audit.distractor_reviews]
        if sorted(letters) != [x for x in LETTERS if x != item.answer]:
            return Dropped("judge_incomplete_review", f"reviewed {','.join(letters)}")
        if not audit.key_correct:
            return Dropped("judge_key_incorrect", audit.key_reason)
        defensible = [r for r in audit.distractor_reviews if r.defensible]
        if defensible:
            return Dropped("distractor_defensible",
                           "; ".join(f"{r.letter}: {r.why_wrong}" for r in defensible))
        return None

    @staticmethod
    def repair(item: McqItem, audit: DistractorAudit) -> McqItem | None:
        """The item with each defensible distractor replaced at its letter, if the judge said
        how; None when it did not or the result is not a valid item."""
        options = list(item.options)
        for review in audit.distractor_reviews:
            if not review.defensible:
                continue
            if not (review.replacement or "").strip():
                return None
            options[LETTERS.index(review.letter)] = review.replacement.strip()  # type: ignore[union-attr]
        try:
            return McqItem.model_validate({**item.model_dump(), "options": tuple(options)})
        except ValidationError:
            return None

    async def run(self, item: McqItem,
                  recheck: Callable[[McqItem], str | None]) -> Audited | Dropped:
        """Audit ``item``; ``recheck`` (the shape checks) vets a repaired item before re-audit."""
        verdict = await self._audit(item, recheck)
        if not isinstance(verdict, Dropped) and verdict.repaired:
            self.stats.retried["repaired"] += 1
        return self.stats.count(verdict)

    async def _audit(self, item: McqItem,
                     recheck: Callable[[McqItem], str | None]) -> Audited | Dropped:
        audit = await self.ask(self.payload(item), item.item_id)
        if isinstance(audit, Dropped):
            return audit
        problem = self.keep(item, audit)
        if problem is None:
            return Audited(item, audit)
        if problem.reason != "distractor_defensible":
            return problem
        repaired = self.repair(item, audit)
        if repaired is None:
            return problem
        shape = recheck(repaired)
        if shape is not None:
            return Dropped(problem.reason, f"{problem.detail}; repair rejected: {shape}")
        second = await self.ask(self.payload(repaired, 1), item.item_id)
        if isinstance(second, Dropped):
            return second
        again = self.keep(repaired, second)
        if again is not None:
            return Dropped(again.reason, f"after repair: {again.detail}")
        letters = tuple(r.letter for r in audit.distractor_reviews if r.defensible)
        return Audited(repaired, second, letters)
