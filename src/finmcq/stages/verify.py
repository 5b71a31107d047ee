"""Verify: k blind solves that must all land on the key, and the item's final difficulty.

The leak and shape checks run earlier (the shape stage); this stage pays for LLM calls only on
items that passed them. With ``k > 1`` (self-consistency) the extra solves are sampled at a higher
temperature and every one must agree with the key. The solvers also say how hard the question
was; with the generator's label that gives the final difficulty
(:func:`finmcq.quality.difficulty.final_difficulty`), which must equal the slot's target.
"""

from __future__ import annotations

import asyncio

from finmcq.engine.client import LLMEngine
from finmcq.quality.difficulty import final_difficulty
from finmcq.records import LETTERS, BlindSolve, Difficulty, McqItem, Verification
from finmcq.stages.base import Dropped, LLMStage


class VerifyStage(LLMStage[BlindSolve]):
    name = "verify"
    prompt_name = "verify"
    reply_model = BlindSolve

    def __init__(self, engine: LLMEngine, *, solves: int = 1,
                 sample_temperature: float = 0.7, as_of: str | None = None) -> None:
        super().__init__(engine, as_of=as_of)
        self.solves = solves
        self.sample_temperature = sample_temperature

    @staticmethod
    def payload(item: McqItem, sample: int = 0) -> dict[str, object]:
        # The key is deliberately absent: the solver must find it on its own.
        payload: dict[str, object] = {
            "task": "verify",
            "question": item.question,
            "options": dict(zip(LETTERS, item.options, strict=True)),
        }
        if sample:
            payload["sample"] = sample  # another independent solve, not a cache hit
        return payload

    async def run(self, item: McqItem, target: Difficulty | None = None) -> Verification | Dropped:
        verdict = await self._judge(item, target)
        return self.stats.count(verdict)

    async def _solve(self, item: McqItem, sample: int) -> BlindSolve | Dropped:
        temperature = self.sample_temperature if sample else None
        return await self.ask(self.payload(item, sample), item.item_id, temperature=temperature)

    async def _judge(self, item: McqItem, target: Difficulty | None) -> Verification | Dropped:
        replies = await asyncio.gather(*(self._solve(item, i) for i in range(self.solves)))
        solved: list[BlindSolve] = []
        for reply in replies:
            if isinstance(reply, Dropped):
                return reply
            solved.append(reply)
        for i, reply in enumerate(solved):
            if reply.answer != item.answer:
                reason = "blind_solve_mismatch" if i == 0 else "self_consistency_mismatch"
                return Dropped(reason, f"solve {i} chose {reply.answer}, key {item.answer}")
        evidence = tuple(r.difficulty for r in solved)
        final = final_difficulty(item.difficulty, evidence)
        if target is not None and final is not target:
            return Dropped("difficulty_off_target",
                           f"{final.value} (generator {item.difficulty}, solver "
                           f"{'/'.join(d.value for d in evidence)}), slot wants {target.value}")
        return Verification(blind_answer=solved[0].answer, passed=True,
                            blind_answers=tuple(r.answer for r in solved),
                            generator_difficulty=item.difficulty, solver_difficulty=evidence,
                            difficulty=final)
