"""Rewrite: a kept 4-option source question becomes a 7-option financial-market draft."""

from __future__ import annotations

from finmcq.records import McqDraft, SourceQuestion, Topic
from finmcq.stages.base import Dropped, LLMStage
from finmcq.stages.placement import draft_problems


class RewriteStage(LLMStage[McqDraft]):
    name = "rewrite"
    prompt_name = "rewrite"
    reply_model = McqDraft

    @staticmethod
    def payload(source: SourceQuestion, topic: Topic) -> dict[str, object]:
        return {
            "task": "rewrite",
            "subject": source.provenance.subject,
            "topic": topic.value,
            "question": source.question,
            "options": dict(zip("ABCD", source.options, strict=True)),
            "answer": source.answer,
        }

    async def run(self, source: SourceQuestion, topic: Topic, item_id: str) -> McqDraft | Dropped:
        reply = await self.ask(self.payload(source, topic), item_id)
        if not isinstance(reply, Dropped):
            problem = draft_problems(reply)
            if problem:
                reply = Dropped(problem)
        if isinstance(reply, Dropped):
            self.stats.drop(reply.reason)
        else:
            self.stats.keep()
        return reply
