"""``finmcq eval``: ask a model the set's questions in the format the training pairs teach.

Two variants, each through the same engine as a build (concurrency limit, retries, SQLite
cache, cost, ``--budget-usd``):

* **two_step** — step 1: the step-1 prompt alone; the model writes its reasoning. Step 2: the
  step-2 prompt exactly as the pairs build it, ``step1 + "\\n" + reasoning`` (the model's own
  reasoning); the model must reply with the letter alone.
* **direct** — the step-1 prompt after a system instruction to reply with the letter alone
  (``prompts/eval_direct.md``): the one-step baseline a model gets without reasoning.

Replies are free text (:class:`~finmcq.engine.textreply.TextReply`: no ``response_format``), and
answers are parsed strictly (:func:`~finmcq.evaluate.scoring.parse_letter`). A request that
fails after every retry counts as *failed* and wrong; a fatal condition (bad key, budget)
stops the eval, and a rerun with the same ``--out`` resumes from the cache at no cost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finmcq.engine.client import EngineConfig, LLMCallFailed, LLMEngine, LLMRequest
from finmcq.engine.cost import PriceTable
from finmcq.engine.progress import StageProgress
from finmcq.engine.store import RunStore
from finmcq.engine.textreply import TextReply
from finmcq.evaluate.scoring import Outcome, parse_letter
from finmcq.evaluate.sets import EvalItem
from finmcq.stages.base import load_prompt

log = logging.getLogger("finmcq.eval")

VARIANTS: tuple[str, ...] = ("two_step", "direct")
STAGE_REASON, STAGE_ANSWER, STAGE_DIRECT = "eval_reason", "eval_answer", "eval_direct"


@dataclass(frozen=True)
class EvalSettings:
    """How to reach the model under test and how to ask it."""

    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    variants: tuple[str, ...] = VARIANTS
    concurrency: int = 32
    temperature: float = 0.0
    reasoning_max_tokens: int = 2048  # step 1: room for a full solution
    answer_max_tokens: int = 16  # step 2 and direct: a letter needs one or two
    timeout_s: float = 120.0
    max_retries: int = 8
    budget_usd: float | None = None
    prices: Path | None = None
    system: str | None = None  # a system message before the two-step prompts (e.g. chat export)
    seed: int = 0  # the --limit sample

    def engine_config(self) -> EngineConfig:
        return EngineConfig(base_url=self.base_url, api_key_env=self.api_key_env,
                            model=self.model, temperature=self.temperature,
                            max_tokens=self.reasoning_max_tokens, timeout_s=self.timeout_s,
                            concurrency=self.concurrency, max_attempts=self.max_retries,
                            budget_usd=self.budget_usd)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": self.base_url, "variants": list(self.variants),
                "concurrency": self.concurrency, "temperature": self.temperature,
                "reasoning_max_tokens": self.reasoning_max_tokens,
                "answer_max_tokens": self.answer_max_tokens, "system": self.system,
                "budget_usd": self.budget_usd, "seed": self.seed}


@dataclass
class ItemResult:
    """What one question got in each variant: the replies as sent and the outcome."""

    item: EvalItem
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"item_id": self.item.item_id, "topic": self.item.topic,
                "difficulty": self.item.difficulty, "answer": self.item.answer,
                **{variant: {**self.replies[variant],
                             "correct": outcome.correct, "unparseable": outcome.unparseable,
                             "failed": outcome.failed, "truncated": outcome.truncated}
                   for variant, outcome in self.outcomes.items()}}


def _messages(system: str | None, user: str) -> tuple[Mapping[str, str], ...]:
    head = ({"role": "system", "content": system},) if system else ()
    return (*head, {"role": "user", "content": user})


class Examiner:
    """Asks every question of a set in the chosen variants; one engine, one store."""

    def __init__(self, settings: EvalSettings, engine: LLMEngine, progress: StageProgress) -> None:
        self.settings = settings
        self.engine = engine
        self.progress = progress
        direct = load_prompt("eval_direct")
        self._direct_system = direct.system
        self._direct_user = direct.user

    async def run(self, items: tuple[EvalItem, ...]) -> list[ItemResult]:
        stages = [STAGE_REASON, STAGE_ANSWER] if "two_step" in self.settings.variants else []
        if "direct" in self.settings.variants:
            stages.append(STAGE_DIRECT)
        for stage in stages:
            self.progress.set_total(stage, len(items))
        results = [ItemResult(item) for item in items]
        try:
            async with asyncio.TaskGroup() as group:  # a fatal error cancels the rest
                for result in results:
                    if "two_step" in self.settings.variants:
                        group.create_task(self._two_step(result))
                    if "direct" in self.settings.variants:
                        group.create_task(self._direct(result))
        except BaseExceptionGroup as failure:  # the user sees the first error, as from a build
            raise failure.exceptions[0] from None
        return results

    async def _ask(self, stage: str, item: EvalItem, messages: tuple[Mapping[str, str], ...],
                   max_tokens: int) -> TextReply | None:
        request: LLMRequest[TextReply] = LLMRequest(
            stage=stage, messages=messages, schema=TextReply, item_id=item.item_id,
            max_tokens=max_tokens)
        try:
            return (await self.engine.call(request)).value
        except LLMCallFailed as exc:
            log.warning("%s %s: no reply (%s); scored wrong", stage, item.item_id, exc)
            return None
        finally:
            self.progress.advance(stage)

    async def _two_step(self, result: ItemResult) -> None:
        item, s = result.item, self.settings
        reasoning = await self._ask(STAGE_REASON, item, _messages(s.system, item.prompt),
                                    s.reasoning_max_tokens)
        if reasoning is None:
            self.progress.advance(STAGE_ANSWER)
            result.replies["two_step"] = {"reasoning": None, "reply": None, "letter": None}
            result.outcomes["two_step"] = Outcome(False, False, True)
            return
        step2 = f"{item.prompt}\n{reasoning.text}"  # the step-2 prompt, as the pairs build it
        answer = await self._ask(STAGE_ANSWER, item, _messages(s.system, step2),
                                 s.answer_max_tokens)
        truncated = reasoning.truncated or (answer is not None and answer.truncated)
        result.replies["two_step"] = {"reasoning": reasoning.text,
                                      "reply": answer.text if answer else None}
        result.outcomes["two_step"] = self._outcome(result, "two_step", answer, truncated)

    async def _direct(self, result: ItemResult) -> None:
        item = result.item
        user = self._direct_user.replace("{input}", item.prompt)
        answer = await self._ask(STAGE_DIRECT, item, _messages(self._direct_system, user),
                                 self.settings.answer_max_tokens)
        result.replies["direct"] = {"reply": answer.text if answer else None}
        result.outcomes["direct"] = self._outcome(result, "direct", answer,
                                                  answer is not None and answer.truncated)

    @staticmethod
    def _outcome(result: ItemResult, variant: str, answer: TextReply | None,
                 truncated: bool) -> Outcome:
        if answer is None:
            result.replies[variant]["letter"] = None
            return Outcome(False, False, True, truncated)
        letter = parse_letter(answer.text)
        result.replies[variant]["letter"] = letter
        return Outcome(correct=letter == result.item.answer, unparseable=letter is None,
                       failed=False, truncated=truncated)


async def examine(settings: EvalSettings, items: tuple[EvalItem, ...], out: Path,
                  progress: bool | None) -> tuple[list[ItemResult], dict[str, Any]]:
    """Run the eval with a store in ``out``; returns the results and the usage document."""
    store = RunStore(out)
    engine: LLMEngine | None = None
    try:
        engine = LLMEngine(settings.engine_config(), store, PriceTable.load(settings.prices))
        meter = engine.meter
        with StageProgress(lambda stage: meter.stage(stage).cost_usd, enabled=progress) as bar:
            results = await Examiner(settings, engine, bar).run(items)
        usage = {"by_stage": meter.as_dict(),
                 "cost_usd": {"this_session": round(meter.session_cost, 6),
                              "total": round(store.total_cost(), 6)},
                 "peak_in_flight": engine.peak_in_flight}
        return results, usage
    finally:
        if engine is not None:
            await engine.aclose()
        store.close()
