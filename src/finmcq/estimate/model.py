"""The estimate model: expected calls per stage × prompt and reply tokens per call × price.

:func:`planned_calls` turns rejection rates into expected calls per stage (a slot's chain of
attempts, each a draft, blind solves, solves and the optional judge and grade);
:func:`_prompt_tokens_per_call` sizes each stage's prompt from its prompt file and the source
texts; :func:`estimate_build` puts them together with reply lengths, reasoning tokens and the
price table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from finmcq.config import BuildSettings
from finmcq.engine.cost import PriceTable
from finmcq.estimate.assumptions import Assumptions, StageAssumption
from finmcq.estimate.result import Estimate, StageEstimate
from finmcq.estimate.tokens import TokenProfile, approx_tokens, messages_tokens
from finmcq.estimate_reasoning import ReasoningPlan
from finmcq.records import MARKET_TOPICS, Difficulty, SourceQuestion
from finmcq.stages.base import load_prompt
from finmcq.stages.generate import GenerateStage
from finmcq.stages.relevance import RelevanceStage
from finmcq.stages.rewrite import RewriteStage

STAGES: tuple[str, ...] = ("relevance", "rewrite", "generate", "verify", "judge", "solve",
                           "grade")
EXAMPLES_PER_TOPIC = 2  # the pipeline's few-shot examples per generation prompt


# --------------------------------------------------------------------------------------------
# Planned calls
# --------------------------------------------------------------------------------------------


def active_stages(settings: BuildSettings) -> tuple[str, ...]:
    """The LLM stages this build runs: judge and grade only when the settings turn them on."""
    optional = {"judge": bool(getattr(settings, "second_answer_judge", False)),
                "grade": bool(getattr(settings, "grade_solutions", False))}
    return tuple(s for s in STAGES if optional.get(s, True))


@dataclass(frozen=True)
class _AttemptShape:
    """Expected calls per stage of one attempt that starts with a draft, and its chance to
    deliver."""

    calls: dict[str, float]
    success: float


def _attempt(settings: BuildSettings, rates: Mapping[str, StageAssumption], draft: str,
             stages: Sequence[str]) -> _AttemptShape:
    """Draft → verify (k blind solves) → judge (maybe twice) → solve (tries) → grade."""
    calls = dict.fromkeys(stages, 0.0)
    calls[draft] = 1.0
    alive = 1 - rates[draft].reject  # drafts that survive their own and the shape checks
    calls["verify"] = alive * int(getattr(settings, "blind_solves", 1))
    alive *= 1 - rates["verify"].reject
    if "judge" in stages:
        calls["judge"] = alive * (1 + rates["judge"].again)
        alive *= 1 - rates["judge"].reject
    s, tries = rates["solve"].reject, settings.solve_tries
    solve_calls = sum(s ** k for k in range(tries))
    calls["solve"] = alive * solve_calls
    alive *= 1 - s ** tries
    if "grade" in stages:
        again = rates["grade"].again
        calls["grade"] = alive * (1 + again)
        calls["solve"] += alive * again * solve_calls  # a low grade regenerates the solution
        alive *= 1 - rates["grade"].reject
    return _AttemptShape(calls=calls, success=alive)


def _reach(first_fail: float, later_fail: float, max_attempts: int) -> list[float]:
    """P(attempt k is made), k = 0..max_attempts-1, for a chain that stops at its first success."""
    out = [1.0]
    for k in range(1, max_attempts):
        out.append(out[-1] * (first_fail if k == 1 else later_fail))
    return out


def planned_calls(n_sources: int, settings: BuildSettings,
                  rates: Mapping[str, StageAssumption]) -> tuple[dict[str, float], float]:
    """Expected calls per active stage and expected delivered questions.

    Admitted source questions are ``min(relevant, questions)``: per-topic quotas can only lower
    that, and a generation then replaces each missing rewrite at a similar cost.
    """
    stages = active_stages(settings)
    q, max_attempts = settings.questions, settings.max_attempts_per_question
    relevant = n_sources * (1 - rates["relevance"].reject)
    admitted = min(relevant, float(q))
    generated_slots = q - admitted
    rw = _attempt(settings, rates, "rewrite", stages)
    gen = _attempt(settings, rates, "generate", stages)
    calls = dict.fromkeys(stages, 0.0)
    calls["relevance"] = float(n_sources)

    # A source slot: attempt 0 rewrites, later attempts generate.
    reach = _reach(1 - rw.success, 1 - gen.success, max_attempts)
    later = sum(reach[1:])
    # A generated slot: every attempt generates.
    reach_g = _reach(1 - gen.success, 1 - gen.success, max_attempts)
    attempts_g = sum(reach_g)
    for stage in stages:
        calls[stage] += (admitted * (rw.calls.get(stage, 0.0) + later * gen.calls.get(stage, 0.0))
                         + generated_slots * attempts_g * gen.calls.get(stage, 0.0))
    last_fail = 1 - (gen.success if max_attempts > 1 else rw.success)
    delivered = (admitted * (1 - reach[-1] * last_fail)
                 + generated_slots * (1 - reach_g[-1] * (1 - gen.success)))
    return calls, delivered


# --------------------------------------------------------------------------------------------
# Prompt sizes
# --------------------------------------------------------------------------------------------


def _static_messages(stage: str) -> tuple[dict[str, str], ...]:
    """A stage's prompt with an empty item: the part every call of the stage shares."""
    return load_prompt(stage).messages({})


def _typical(sources: Sequence[SourceQuestion], k: int) -> list[SourceQuestion]:
    """``k`` source questions of median length, to stand in for few-shot examples."""
    if not sources:
        return []
    ranked = sorted(sources, key=lambda s: len(s.question) + sum(len(o) for o in s.options))
    mid = len(ranked) // 2
    return ranked[max(0, mid - k // 2): max(0, mid - k // 2) + k]


def _prompt_tokens_per_call(stage: str, sources: Sequence[SourceQuestion],
                            profile: TokenProfile, item_tokens: float,
                            solution_tokens: float = 0.0) -> float:
    """Average prompt tokens of one call of ``stage``."""
    if stage == "relevance" and sources:
        prompt = load_prompt("relevance")
        return sum(messages_tokens(prompt.messages(RelevanceStage.payload(s)), profile)
                   for s in sources) / len(sources)
    if stage == "rewrite" and sources:
        prompt = load_prompt("rewrite")
        topic = max(MARKET_TOPICS, key=lambda t: len(t.value))
        return sum(messages_tokens(prompt.messages(RewriteStage.payload(s, topic)), profile)
                   for s in sources) / len(sources)
    if stage == "generate":
        from finmcq.pipeline import subtopics  # the pipeline's own list: same prompts

        prompt = load_prompt("generate")
        total = 0.0
        for topic in MARKET_TOPICS:
            options = subtopics().get(topic.value) or [""]
            subtopic = sorted(options, key=len)[len(options) // 2]
            payload = GenerateStage.payload(topic, subtopic, Difficulty.MEDIUM, "g0000000", 0,
                                            _typical(sources, EXAMPLES_PER_TOPIC))
            total += messages_tokens(prompt.messages(payload), profile)
        return total / len(MARKET_TOPICS)
    # verify / judge / solve (and rewrite/relevance without sources): the shared part plus the
    # item, whose size is a draft reply's (a draft is the question and its seven options); the
    # grader also reads the solution.
    extra = solution_tokens if stage == "grade" else 0.0
    return messages_tokens(_static_messages(stage), profile) + item_tokens + extra


def _cached_per_call(stage: str, profile: TokenProfile, assumptions: Assumptions) -> float:
    """Prompt tokens a provider's automatic prefix cache would serve (the static system text)."""
    system = load_prompt(stage).system
    prefix = approx_tokens(system, profile) + profile.per_message
    if prefix < assumptions.cache_min_tokens:
        return 0.0
    return float(int(prefix) // assumptions.cache_step * assumptions.cache_step)


# --------------------------------------------------------------------------------------------
# The estimate
# --------------------------------------------------------------------------------------------


def estimate_build(settings: BuildSettings, sources: list[SourceQuestion], *,
                   measured: Mapping[str, float] | None = None,
                   assumptions: Assumptions | None = None,
                   prices: PriceTable | None = None,
                   measured_reasoning: Mapping[str, float] | None = None) -> Estimate:
    """Expected calls, tokens and USD per stage of ``settings`` over ``sources``; no LLM call.

    ``measured`` maps a stage to its measured average reply tokens (see
    :func:`measured_reply_tokens`); those replace the configured ones.
    """
    assumptions = assumptions or Assumptions.load()
    prices = prices or PriceTable.load(settings.prices)
    measured = dict(measured or {})
    measured_reasoning = dict(measured_reasoning or {})
    reasoning_plan = ReasoningPlan.for_settings(settings)
    engine_config = settings.engine_config()
    stages_run = active_stages(settings)
    calls, delivered = planned_calls(len(sources), settings, assumptions.stages)
    reply = {stage: measured.get(stage) or assumptions.stages[stage].reply_tokens
             for stage in stages_run}
    drafts = calls["rewrite"] + calls["generate"]
    item_tokens = ((calls["rewrite"] * reply["rewrite"] + calls["generate"] * reply["generate"])
                   / drafts) if drafts else reply["generate"]
    paid = 1 + assumptions.invalid_reply_rate

    stages: dict[str, StageEstimate] = {}
    unpriced: list[str] = []
    for stage in stages_run:
        model = engine_config.model_for(stage)
        profile = assumptions.profile_for(model)
        n = calls[stage] * paid
        per_call_in = _prompt_tokens_per_call(stage, sources, profile, item_tokens,
                                              reply["solve"])
        cached = _cached_per_call(stage, profile, assumptions) * max(n - 1, 0.0)
        prompt_tokens = per_call_in * n
        # Measured reply lengths already include reasoning (it is part of completion_tokens).
        if measured.get(stage):
            reasoning = measured_reasoning.get(stage, 0.0)
            reasoning_from = "measured" if reasoning else "none"
        else:
            reasoning = reasoning_plan.assumed_per_call(stage, model, reply[stage])
            reasoning_from = "assumed" if reasoning else "none"
        completion_tokens = (reply[stage] + (0.0 if measured.get(stage) else reasoning)) * n
        usd: float | None = None
        if prices.price_of(model) is not None:
            usd = prices.cost(model, round(prompt_tokens), round(completion_tokens),
                              round(cached), batch=settings.batch)
        elif n:
            unpriced.append(model)
        stages[stage] = StageEstimate(
            stage=stage, model=model, calls=n, prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens, cached_tokens=cached, usd=usd,
            reply_tokens=reply[stage],
            reply_tokens_from="measured" if measured.get(stage) else "configured",
            reject=assumptions.stages[stage].reject,
            reasoning_tokens=reasoning * n, reasoning_from=reasoning_from)

    notes = []
    if unpriced:
        notes.append(f"no price for {', '.join(sorted(set(unpriced)))}: add it with --prices")
    if settings.batch:
        notes.append(f"Batch API prices: {prices.batch_discount:.0%} off input and output")
    if delivered < settings.questions - 0.5:
        notes.append(f"expected to fill only {delivered:.0f} of {settings.questions} slots with "
                     f"--max-attempts {settings.max_attempts_per_question}")
    return Estimate(stages=stages, questions=settings.questions, sources=len(sources),
                    batch=settings.batch, expected_delivered=delivered, notes=notes)

