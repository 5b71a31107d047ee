"""Relevance: does this source question belong in a financial-market dataset?"""

from __future__ import annotations

from dataclasses import dataclass

from finmcq import checks
from finmcq.quality.artefacts import clean_text
from finmcq.records import RelevanceJudgment, SourceQuestion, Topic
from finmcq.stages.base import Dropped, LLMStage


@dataclass(frozen=True)
class Judged:
    source: SourceQuestion
    judgment: RelevanceJudgment


class RelevanceStage(LLMStage[RelevanceJudgment]):
    name = "relevance"
    prompt_name = "relevance"
    reply_model = RelevanceJudgment

    def __init__(self, *args: object, min_score: int = 3, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.min_score = min_score

    @staticmethod
    def payload(source: SourceQuestion) -> dict[str, object]:
        return {
            "task": "relevance",
            "subject": source.provenance.subject,
            # Extraction artefacts ("이 다 .", "－0 1%") are cleaned; the source keeps the original.
            "question": clean_text(source.question),
            "options": dict(zip("ABCD", map(clean_text, source.options), strict=True)),
        }

    async def run(self, source: SourceQuestion) -> Judged | Dropped:
        hostile = checks.instruction_problems([source.question, *source.options])
        if hostile:  # never send it on, never pay for it
            verdict: Judged | Dropped = Dropped(hostile, "instructions to the model in the source")
        else:
            reply = await self.ask(self.payload(source), source.uid)
            verdict = reply if isinstance(reply, Dropped) else self.keep(source, reply)
        return self.stats.count(verdict)

    def keep(self, source: SourceQuestion, judgment: RelevanceJudgment) -> Judged | Dropped:
        if not judgment.relevant:
            return Dropped("not_relevant", judgment.reason)
        if judgment.topic is Topic.OTHER:
            return Dropped("topic_other", judgment.reason)
        if judgment.score < self.min_score:
            return Dropped("score_below_threshold", f"{judgment.score} < {self.min_score}")
        return Judged(source, judgment)
