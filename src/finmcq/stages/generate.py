"""Generate: a new 7-option draft for a topic, to fill the set up to its quota."""

from __future__ import annotations

from collections.abc import Sequence

from finmcq.records import Difficulty, McqDraft, SourceQuestion, Topic
from finmcq.stages.base import Dropped, LLMStage


class GenerateStage(LLMStage[McqDraft]):
    """Asks for a new draft; its leak and shape checks run in the shape stage, after placement."""

    name = "generate"
    prompt_name = "generate"
    reply_model = McqDraft

    @staticmethod
    def payload(topic: Topic, subtopic: str, difficulty: Difficulty, slot_id: str, attempt: int,
                examples: Sequence[SourceQuestion]) -> dict[str, object]:
        return {
            "task": "generate",
            "topic": topic.value,
            "subtopic": subtopic,
            "difficulty": difficulty.value,
            "slot": slot_id,
            "attempt": attempt,
            "examples": [
                {"question": ex.question, "options": dict(zip("ABCD", ex.options, strict=True)),
                 "answer": ex.answer}
                for ex in examples
            ],
        }

    async def run(self, topic: Topic, subtopic: str, difficulty: Difficulty, slot_id: str,
                  attempt: int, examples: Sequence[SourceQuestion]) -> McqDraft | Dropped:
        payload = self.payload(topic, subtopic, difficulty, slot_id, attempt, examples)
        reply = await self.ask(payload, f"{slot_id}.{attempt}")
        return self.stats.count(reply)
