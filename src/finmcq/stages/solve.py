"""Solve: the step-by-step solution (step-1 response) that concludes with the key."""

from __future__ import annotations

from finmcq import checks
from finmcq.records import LETTERS, McqItem, Solution, SolutionDraft
from finmcq.stages.base import Dropped, LLMStage

SOLUTION_LAYOUT = (
    "[문제 분석]\n{analysis}\n\n"
    "[선택지 검토]\n{reviews}\n\n"
    "[정답 도출]\n{derivation}\n\n"
    "[이론 및 실무 연계]\n{theory}\n\n"
    "따라서 정답은 {answer}입니다."
)


def render_solution(draft: SolutionDraft) -> str:
    """The solution text in finmcq's fixed layout; every option appears by letter."""
    reviews = "\n".join(f"{r.letter}. {' '.join(r.review.split())}" for r in draft.option_reviews)
    return SOLUTION_LAYOUT.format(
        analysis=draft.analysis.strip(),
        reviews=reviews,
        derivation=draft.derivation.strip(),
        theory=draft.theory.strip(),
        answer=draft.final_answer,
    )


class SolveStage(LLMStage[SolutionDraft]):
    name = "solve"
    prompt_name = "solve"
    reply_model = SolutionDraft

    def __init__(self, *args: object, max_tries: int = 3, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.max_tries = max_tries

    @staticmethod
    def payload(item: McqItem, attempt: int, feedback: str | None = None) -> dict[str, object]:
        payload: dict[str, object] = {
            "task": "solve",
            "question": item.question,
            "options": dict(zip(LETTERS, item.options, strict=True)),
            "answer": item.answer,
        }
        if attempt:
            payload["retry"] = attempt  # a different request, so a retry is not a cache hit
        if feedback:
            payload["feedback"] = feedback  # a grader's note on the previous solution
        return payload

    @staticmethod
    def problems(item: McqItem, reply: SolutionDraft) -> str | None:
        """Deterministic checks: the right letter, no admitted key, every option reviewed."""
        texts = [reply.analysis, reply.derivation, reply.theory,
                 *(r.review for r in reply.option_reviews)]
        return (checks.solution_problems(reply.final_answer, item.answer, texts)
                or checks.review_problems([r.review for r in reply.option_reviews]))

    async def run(self, item: McqItem) -> Solution | Dropped:
        """A solution for ``item``, counted as this stage's in/out."""
        result = await self._solve(item)
        return self.stats.count(result)

    async def regenerate(self, item: McqItem, feedback: str) -> Solution | Dropped:
        """A new solution after a grader rejected one; counted as a retry, not a new input."""
        self.stats.retried["regenerated_after_grade"] += 1
        return await self._solve(item, feedback)

    async def _solve(self, item: McqItem, feedback: str | None = None) -> Solution | Dropped:
        last: Dropped = Dropped("solution_failed")
        for attempt in range(self.max_tries):
            reply = await self.ask(self.payload(item, attempt, feedback), item.item_id)
            if isinstance(reply, Dropped):
                return reply  # the engine already retried this request
            problem = self.problems(item, reply)
            if problem is None:
                return Solution(text=render_solution(reply), final_answer=reply.final_answer)
            last = Dropped(problem)
            self.stats.retried[problem] += 1  # every rejected reply is counted once here
        return last
