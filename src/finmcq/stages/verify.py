"""Verify: deterministic checks, then a blind solve that must land on the key."""

from __future__ import annotations

from finmcq import checks
from finmcq.records import LETTERS, BlindSolve, McqItem, Verification
from finmcq.stages.base import Dropped, LLMStage


class VerifyStage(LLMStage[BlindSolve]):
    name = "verify"
    prompt_name = "verify"
    reply_model = BlindSolve

    @staticmethod
    def payload(item: McqItem) -> dict[str, object]:
        # The key is deliberately absent: the solver must find it on its own.
        return {
            "task": "verify",
            "question": item.question,
            "options": dict(zip(LETTERS, item.options, strict=True)),
        }

    async def run(self, item: McqItem) -> Verification | Dropped:
        verdict = await self._judge(item)
        if isinstance(verdict, Dropped):
            self.stats.drop(verdict.reason)
        else:
            self.stats.keep()
        return verdict

    async def _judge(self, item: McqItem) -> Verification | Dropped:
        problem = checks.item_problems(item.question, item.options, item.answer)
        if problem:
            return Dropped(problem)
        reply = await self.ask(self.payload(item), item.item_id)
        if isinstance(reply, Dropped):
            return reply
        if reply.answer != item.answer:
            return Dropped("blind_solve_mismatch", f"solver chose {reply.answer}, key {item.answer}")
        return Verification(blind_answer=reply.answer, passed=True)
