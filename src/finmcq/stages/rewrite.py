"""Rewrite: a kept 4-option source question becomes a 7-option financial-market draft."""

from __future__ import annotations

from finmcq.quality.artefacts import clean_text
from finmcq.quality.length_rank import rank_request
from finmcq.records import Difficulty, McqDraft, SourceQuestion, Topic
from finmcq.stages.base import Dropped, LLMStage


class RewriteStage(LLMStage[McqDraft]):
    """Asks for the draft; its leak and shape checks run in the shape stage, after placement."""

    name = "rewrite"
    prompt_name = "rewrite"
    reply_model = McqDraft

    @staticmethod
    def payload(source: SourceQuestion, topic: Topic, difficulty: Difficulty | None = None,
                feedback: str | None = None, rank: int | None = None) -> dict[str, object]:
        # Extraction artefacts ("이 다 .", "－0 1%") are cleaned; the source keeps the original.
        payload: dict[str, object] = {
            "task": "rewrite",
            "subject": source.provenance.subject,
            "topic": topic.value,
            "question": clean_text(source.question),
            "options": dict(zip("ABCD", map(clean_text, source.options), strict=True)),
            "answer": source.answer,
        }
        if difficulty is not None:  # the slot's target: the rewrite adjusts to it
            payload["difficulty"] = difficulty.value
        if rank is not None:  # the slot's key length rank, as counts of longer/shorter options
            payload["key_length"] = rank_request(rank)
        if feedback is not None:  # a repair: why the previous rewrite failed verification
            payload["feedback"] = feedback
        return payload

    async def run(self, source: SourceQuestion, topic: Topic, item_id: str,
                  difficulty: Difficulty | None = None, feedback: str | None = None,
                  rank: int | None = None) -> McqDraft | Dropped:
        reply = await self.ask(self.payload(source, topic, difficulty, feedback, rank), item_id)
        return self.stats.count(reply)
