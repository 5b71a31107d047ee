"""Grade: an LLM judge scores each solution on reasoning, coverage and financial grounding.

Scores are 1–5 per criterion (:class:`finmcq.records.SolutionGrade`). A solution whose lowest score
is under ``--min-solution-score`` is regenerated once with the grader's feedback and graded again;
if it still falls short, the item is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from finmcq.engine.client import LLMEngine
from finmcq.records import LETTERS, McqItem, Solution, SolutionGrade
from finmcq.stages.base import Dropped, LLMStage
from finmcq.stages.solve import SolveStage


@dataclass(frozen=True)
class Graded:
    solution: Solution
    grade: SolutionGrade
    regenerated: bool = False


class GradeStage(LLMStage[SolutionGrade]):
    name = "grade"
    prompt_name = "grade"
    reply_model = SolutionGrade

    def __init__(self, engine: LLMEngine, *, min_score: int = 3,
                 as_of: str | None = None) -> None:
        super().__init__(engine, as_of=as_of)
        self.min_score = min_score

    @staticmethod
    def payload(item: McqItem, solution: Solution) -> dict[str, object]:
        return {
            "task": "grade",
            "question": item.question,
            "options": dict(zip(LETTERS, item.options, strict=True)),
            "answer": item.answer,
            "solution": solution.text,
        }

    async def _grade(self, item: McqItem, solution: Solution) -> SolutionGrade | Dropped:
        return await self.ask(self.payload(item, solution), item.item_id)

    async def run(self, item: McqItem, solution: Solution,
                  solver: SolveStage) -> Graded | Dropped:
        verdict = await self._judge(item, solution, solver)
        return self.stats.count(verdict)

    async def _judge(self, item: McqItem, solution: Solution,
                     solver: SolveStage) -> Graded | Dropped:
        grade = await self._grade(item, solution)
        if isinstance(grade, Dropped):
            return grade
        if grade.lowest >= self.min_score:
            return Graded(solution, grade)
        self.stats.retried["solution_score_below_threshold"] += 1
        better = await solver.regenerate(item, grade.feedback)
        if isinstance(better, Dropped):
            return Dropped("solution_score_below_threshold",
                           f"{grade.feedback}; regeneration failed: {better.reason}")
        regraded = await self._grade(item, better)
        if isinstance(regraded, Dropped):
            return regraded
        if regraded.lowest < self.min_score:
            return Dropped("solution_score_below_threshold",
                           f"{regraded.lowest} < {self.min_score} after regeneration: "
                           f"{regraded.feedback}")
        return Graded(better, regraded, regenerated=True)
