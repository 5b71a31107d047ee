"""Slot filling: the chain of attempts that fills one slot, and a reviewer's kept items."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from finmcq import checks
from finmcq.pipeline.base import PipelineBase
from finmcq.pipeline.delivered import Delivered
from finmcq.pipeline.plan import Slot, subtopics
from finmcq.quality.text import question_text
from finmcq.records import DistractorAudit, McqItem, Solution, SolutionGrade
from finmcq.review.decisions import ItemEdit
from finmcq.stages.base import Dropped
from finmcq.stages.feedback import retry_feedback
from finmcq.stages.placement import place
from finmcq.stages.shape import RANK_OFF_TARGET, RankTarget, shape_problem

log = logging.getLogger("finmcq.pipeline")


class SlotFilling(PipelineBase):
    """Fills one slot: attempts in order until one delivers (``fill_slot``)."""

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
