"""Generate: a new 7-option draft for a topic, to fill the set up to its quota."""

from __future__ import annotations

from collections.abc import Sequence

from finmcq.quality.artefacts import clean_text
from finmcq.quality.length_rank import rank_request
from finmcq.records import Difficulty, McqDraft, SourceQuestion, Topic
from finmcq.stages.base import Dropped, LLMStage


class GenerateStage(LLMStage[McqDraft]):
    """Asks for a new draft; its leak and shape checks run in the shape stage, after placement."""

    name = "generate"
    prompt_name = "generate"
    reply_model = McqDraft

    @staticmethod
    def payload(topic: Topic, subtopic: str, difficulty: Difficulty, slot_id: str, attempt: int,
                examples: Sequence[SourceQuestion], rank: int | None = None,
                feedback: str | None = None) -> dict[str, object]:
        payload: dict[str, object] = {
            "task": "generate",
            "topic": topic.value,
            "subtopic": subtopic,
            "difficulty": difficulty.value,
            "slot": slot_id,
            "attempt": attempt,
            # Examples are KMMLU questions: their extraction artefacts are cleaned first.
            "examples": [
                {"question": clean_text(ex.question),
                 "options": dict(zip("ABCD", map(clean_text, ex.options), strict=True)),
                 "answer": ex.answer}
                for ex in examples
            ],
        }
        if rank is not None:  # the slot's key length rank, as counts of longer/shorter options
            payload["key_length"] = rank_request(rank)
        if feedback is not None:  # why the slot's previous attempt was dropped
            payload["feedback"] = feedback
        return payload

    async def run(self, topic: Topic, subtopic: str, difficulty: Difficulty, slot_id: str,
                  attempt: int, examples: Sequence[SourceQuestion], rank: int | None = None,
                  feedback: str | None = None) -> McqDraft | Dropped:
        payload = self.payload(topic, subtopic, difficulty, slot_id, attempt, examples, rank,
                               feedback)
        reply = await self.ask(payload, f"{slot_id}.{attempt}")
        return self.stats.count(reply)
