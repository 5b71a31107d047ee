"""Rewrite: a kept 4-option source question becomes a 7-option financial-market draft."""

from __future__ import annotations

from finmcq.records import Difficulty, McqDraft, SourceQuestion, Topic
from finmcq.stages.base import Dropped, LLMStage


class RewriteStage(LLMStage[McqDraft]):
    """Asks for the draft; its leak and shape checks run in the shape stage, after placement."""

    name = "rewrite"
    prompt_name = "rewrite"
    reply_model = McqDraft

    @staticmethod
    def payload(source: SourceQuestion, topic: Topic, difficulty: Difficulty | None = None,
                feedback: str | None = None) -> dict[str, object]:
        payload: dict[str, object] = {
            "task": "rewrite",
            "subject": source.provenance.subject,
            "topic": topic.value,
            "question": source.question,
            "options": dict(zip("ABCD", source.options, strict=True)),
            "answer": source.answer,
        }
        if difficulty is not None:  # the slot's target: the rewrite adjusts to it
            payload["difficulty"] = difficulty.value
        if feedback is not None:  # a repair: why the previous rewrite failed verification
            payload["feedback"] = feedback
        return payload

    async def run(self, source: SourceQuestion, topic: Topic, item_id: str,
                  difficulty: Difficulty | None = None,
                  feedback: str | None = None) -> McqDraft | Dropped:
        reply = await self.ask(self.payload(source, topic, difficulty, feedback), item_id)
        return self.stats.count(reply)
