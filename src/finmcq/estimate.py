"""``finmcq estimate``: calls, tokens and USD of a build, per stage, before any LLM call.

The estimate is an expected value computed from:

* the **prompt files** (each stage's static system and user text, rendered exactly as the stage
  renders it) and the **source texts** (relevance and rewrite prompts are built from every source
  question; generation's few-shot examples from typical ones);
* **average reply lengths** per stage, measured in the run directory when it already holds
  replies (a resumed run, or an earlier one with the same ``--out``), else configured in
  ``data/estimate.toml``; a draft's reply length is also the size of the item that verify and solve
  receive;
* **rejection rates** per stage (``data/estimate.toml``), which decide how many attempts a slot
  needs: each attempt is a draft (attempt 0 of a source slot is a rewrite, every other one a
  generation), a blind solve if the draft survives, and up to ``solve_tries`` solutions;
* the **price table** (``--prices``), with the Batch API discount in ``--batch`` mode and the
  cached-input rate for a static prefix long enough for automatic prompt caching.

Token counts use a character-class approximation (see :func:`approx_tokens`), fitted against
o200k_base: no tokenizer download, no network.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from finmcq.config import BuildSettings
from finmcq.engine.cost import PriceTable
from finmcq.engine.store import RunStore
from finmcq.estimate_reasoning import (
    ReasoningPlan,
    query_run_dir,
    reasoning_from_run_dir,
    reasoning_from_store,
)
from finmcq.records import MARKET_TOPICS, Difficulty, SourceQuestion
from finmcq.stages.base import load_prompt
from finmcq.stages.generate import GenerateStage
from finmcq.stages.relevance import RelevanceStage
from finmcq.stages.rewrite import RewriteStage

STAGES: tuple[str, ...] = ("relevance", "rewrite", "generate", "verify", "judge", "solve",
                           "grade")
EXAMPLES_PER_TOPIC = 2  # the pipeline's few-shot examples per generation prompt

# --------------------------------------------------------------------------------------------
# Assumptions (data/estimate.toml)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenProfile:
    """Tokens per character class; see ``data/estimate.toml`` for how they were fitted."""

    name: str
    hangul: float
    whitespace: float
    other: float
    per_message: int
    per_request: int
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageAssumption:
    reply_tokens: float
    reject: float
    again: float = 0.0  # judge: share of items audited twice (after a repair); grade: regenerated


@dataclass(frozen=True)
class Assumptions:
    """Everything the estimate cannot read from prompts and sources."""

    profiles: dict[str, TokenProfile]
    default_profile: str
    stages: dict[str, StageAssumption]
    invalid_reply_rate: float = 0.0
    cache_min_tokens: int = 1024
    cache_step: int = 128

    @classmethod
    def load(cls, path: Path | None = None) -> Assumptions:
        """The bundled ``data/estimate.toml``, or ``path`` in the same layout."""
        if path is None:
            text = resources.files("finmcq.data").joinpath("estimate.toml").read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        data = tomllib.loads(text)
        tokens = data["tokens"]
        profiles = {
            name: TokenProfile(name=name, hangul=float(p["hangul"]),
                               whitespace=float(p["whitespace"]), other=float(p["other"]),
                               per_message=int(p.get("per_message", 0)),
                               per_request=int(p.get("per_request", 0)),
                               models=tuple(p.get("models", ())))
            for name, p in tokens.items() if isinstance(p, dict)
        }
        stages = {name: StageAssumption(float(s["reply_tokens"]), float(s["reject"]),
                                        float(s.get("again", 0.0)))
                  for name, s in data["stages"].items()}
        cache = data.get("prompt_cache", {})
        return cls(profiles=profiles, default_profile=str(tokens.get("default", "o200k")),
                   stages=stages, invalid_reply_rate=float(data.get("invalid_reply_rate", 0.0)),
                   cache_min_tokens=int(cache.get("min_tokens", 1024)),
                   cache_step=int(cache.get("step", 128)))

    def profile_for(self, model: str) -> TokenProfile:
        """The token profile whose model prefix is the longest match for ``model``."""
        best: tuple[int, TokenProfile] | None = None
        for profile in self.profiles.values():
            for prefix in profile.models:
                if model.startswith(prefix) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), profile)
        return best[1] if best else self.profiles[self.default_profile]


# --------------------------------------------------------------------------------------------
# Token counting
# --------------------------------------------------------------------------------------------


_HANGUL = re.compile("[\uac00-\ud7a3\u3131-\u318e]+")
_SPACE = re.compile(r"\s+")


@lru_cache(maxsize=1024)  # a stage's static system prompt is counted once, not per call
def approx_tokens(text: str, profile: TokenProfile) -> float:
    """Approximate tokens of ``text``: a weight per Hangul, whitespace and other character.

    Korean is mostly one syllable block per character and BPE vocabularies hold many whole
    syllables, so a per-character rate is close; ASCII and punctuation merge into longer tokens.
    """
    # Counted by what regex substitution removes (in C; a Python loop cost ~1 s per build).
    hangul = len(text) - len(_HANGUL.sub("", text))
    spaces = len(text) - len(_SPACE.sub("", text))  # \s is str.isspace
    other = len(text) - hangul - spaces
    return hangul * profile.hangul + spaces * profile.whitespace + other * profile.other


def messages_tokens(messages: Sequence[Mapping[str, str]], profile: TokenProfile) -> float:
    """Approximate prompt tokens of a chat request (contents plus per-message overhead)."""
    return profile.per_request + sum(
        approx_tokens(m.get("content", ""), profile) + profile.per_message for m in messages)


# --------------------------------------------------------------------------------------------
# The estimate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageEstimate:
    """Expected calls, tokens and cost of one stage."""

    stage: str
    model: str
    calls: float
    prompt_tokens: float
    completion_tokens: float
    cached_tokens: float
    usd: float | None  # None: the model has no price in the table
    reply_tokens: float
    reply_tokens_from: str  # "measured" or "configured"
    reject: float
    reasoning_tokens: float = 0.0  # hidden reasoning, part of completion_tokens
    reasoning_from: str = "none"  # "measured", "assumed" (estimate.toml) or "none"

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "calls": round(self.calls, 1),
            "prompt_tokens": round(self.prompt_tokens),
            "completion_tokens": round(self.completion_tokens),
            "cached_tokens": round(self.cached_tokens),
            "usd": None if self.usd is None else round(self.usd, 6),
            "reply_tokens": round(self.reply_tokens, 1),
            "reply_tokens_from": self.reply_tokens_from,
            "reject": self.reject,
            "reasoning_tokens": round(self.reasoning_tokens),
            "reasoning_from": self.reasoning_from,
        }


@dataclass(frozen=True)
class Estimate:
    """The whole build's estimate: per stage, totals, and what it assumed."""

    stages: dict[str, StageEstimate]
    questions: int
    sources: int
    batch: bool
    expected_delivered: float
    notes: list[str] = field(default_factory=list)

    @property
    def calls(self) -> float:
        return sum(s.calls for s in self.stages.values())

    @property
    def prompt_tokens(self) -> float:
        return sum(s.prompt_tokens for s in self.stages.values())

    @property
    def completion_tokens(self) -> float:
        return sum(s.completion_tokens for s in self.stages.values())

    @property
    def usd(self) -> float | None:
        """Total USD; None when some stage's model has no price."""
        costs = [s.usd for s in self.stages.values()]
        return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)

    def as_dict(self) -> dict[str, Any]:
        """The estimate for the stats file (JSON-ready)."""
        usd = self.usd
        return {
            "questions": self.questions,
            "sources": self.sources,
            "batch": self.batch,
            "expected_delivered": round(self.expected_delivered, 1),
            "stages": {name: s.as_dict() for name, s in self.stages.items()},
            "total": {
                "calls": round(self.calls, 1),
                "calls_per_question": round(self.calls / max(self.questions, 1), 3),
                "prompt_tokens": round(self.prompt_tokens),
                "completion_tokens": round(self.completion_tokens),
                "reasoning_tokens": round(sum(s.reasoning_tokens for s in self.stages.values())),
                "usd": None if usd is None else round(usd, 6),
            },
            "notes": list(self.notes),
        }

    def as_text(self) -> str:
        """A plain-text table for the run log."""
        lines = [f"{'stage':<10} {'model':<18} {'calls':>9} {'tokens in':>12} {'tokens out':>11} "
                 f"{'USD':>10}"]
        for s in self.stages.values():
            lines.append(f"{s.stage:<10} {s.model:<18} {s.calls:>9.0f} {s.prompt_tokens:>12,.0f} "
                         f"{s.completion_tokens:>11,.0f} {_usd(s.usd):>10}")
        lines.append(f"{'total':<10} {'':<18} {self.calls:>9.0f} {self.prompt_tokens:>12,.0f} "
                     f"{self.completion_tokens:>11,.0f} {_usd(self.usd):>10}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def render(self) -> Any:
        """A rich Table for the CLI (``rich.console.Console().print(estimate.render())``)."""
        from rich.table import Table

        mode = "Batch API (discounted)" if self.batch else "synchronous API"
        table = Table(title=f"Estimate: {self.questions} questions from {self.sources} source "
                            f"questions, {mode}", show_footer=True)
        table.add_column("stage", footer="total")
        table.add_column("model")
        table.add_column("calls", justify="right", footer=f"{self.calls:,.0f}")
        table.add_column("tokens in", justify="right", footer=f"{self.prompt_tokens:,.0f}")
        table.add_column("tokens out", justify="right", footer=f"{self.completion_tokens:,.0f}")
        table.add_column("reply avg", justify="right")
        table.add_column("reasoning", justify="right",
                         footer=f"{sum(s.reasoning_tokens for s in self.stages.values()):,.0f}")
        table.add_column("reject", justify="right")
        table.add_column("USD", justify="right", footer=_usd(self.usd))
        for s in self.stages.values():
            table.add_row(s.stage, s.model, f"{s.calls:,.0f}", f"{s.prompt_tokens:,.0f}",
                          f"{s.completion_tokens:,.0f}",
                          f"{s.reply_tokens:,.0f} ({s.reply_tokens_from[:4]}.)",
                          f"{s.reasoning_tokens:,.0f}"
                          + (f" ({s.reasoning_from[:4]}.)" if s.reasoning_tokens else ""),
                          f"{s.reject:.0%}", _usd(s.usd))
        if self.notes:
            table.caption = "\n".join(self.notes)
        return table


def _usd(value: float | None) -> str:
    return "?" if value is None else f"${value:,.4f}"


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
# Public API
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


def measured_reply_tokens(usage_by_stage: Mapping[str, Mapping[str, float]],
                          min_replies: int = 20) -> dict[str, float]:
    """Average completion tokens per stage from ``RunStore.usage_by_stage()``-shaped rows.

    Stages with fewer than ``min_replies`` replies are left out (too few to trust).
    """
    out: dict[str, float] = {}
    for stage, row in usage_by_stage.items():
        n = row.get("responses", 0)
        if n >= min_replies:
            out[stage] = float(row.get("completion_tokens", 0)) / n
    return out


def measured_from_store(store: RunStore) -> dict[str, float]:
    """Measured average reply tokens of an open run store (e.g. the build's own, on resume)."""
    return measured_reply_tokens(store.usage_by_stage())


def measured_from_run_dir(run_dir: Path) -> dict[str, float]:
    """Measured average reply tokens of a run directory, read-only; {} when it has no store.

    Opens SQLite read-only and without the run lock, so it works while a build is running.
    """
    found = query_run_dir(run_dir, "SELECT stage, COUNT(*), SUM(completion_tokens) "
                                   "FROM responses GROUP BY stage")
    if found is None:
        return {}
    return measured_reply_tokens({stage: {"responses": n, "completion_tokens": ct or 0}
                                  for stage, n, ct in found[0]})


def rates_from_stats(stats: Mapping[str, Any], base: Assumptions) -> Assumptions:
    """``base`` with the rejection rates a finished (or stopped) build measured.

    Read from its stats document (``stages``: in / dropped / retried per stage). The draft rate
    folds in the deterministic checks between a draft and the blind solve (shape, placement,
    contamination). Stages the build did not run keep their configured rates.
    """
    stages = stats.get("stages") or {}

    def row(name: str) -> Mapping[str, Any]:
        return stages.get(name) or {}

    def share(part: float, whole: float) -> float | None:
        return min(1.0, part / whole) if whole > 0 else None

    measured: dict[str, tuple[float | None, float | None]] = {}
    measured["relevance"] = (share(row("relevance").get("dropped", 0),
                                   row("relevance").get("in", 0)), None)
    drafted = row("rewrite").get("in", 0) + row("generate").get("in", 0)
    draft_drops = sum(row(n).get("dropped", 0) for n in
                      ("rewrite", "generate", "shape", "placement", "contamination"))
    measured["rewrite"] = measured["generate"] = (share(draft_drops, drafted), None)
    measured["verify"] = (share(row("verify").get("dropped", 0), row("verify").get("in", 0)),
                          None)
    judge = row("judge")
    measured["judge"] = (share(judge.get("dropped", 0), judge.get("in", 0)),
                         share((judge.get("retried") or {}).get("repaired", 0), judge.get("in", 0)))
    solve = row("solve")
    rejected = sum((solve.get("retried") or {}).values())
    replies = (stats.get("usage_all_sessions") or {}).get("solve", {}).get("responses") \
        or rejected + solve.get("out", 0)
    measured["solve"] = (share(rejected, replies), None)
    grade = row("grade")
    measured["grade"] = (share(grade.get("dropped", 0), grade.get("in", 0)),
                         share((grade.get("retried") or {}).get("solution_score_below_threshold",
                                                                 0), grade.get("in", 0)))
    updated = dict(base.stages)
    for name, (reject, again) in measured.items():
        if name in updated and reject is not None:
            old = updated[name]
            updated[name] = StageAssumption(old.reply_tokens, reject,
                                            old.again if again is None else again)
    return Assumptions(profiles=base.profiles, default_profile=base.default_profile,
                       stages=updated, invalid_reply_rate=base.invalid_reply_rate,
                       cache_min_tokens=base.cache_min_tokens, cache_step=base.cache_step)


def latest_stats(run_dir: Path) -> dict[str, Any] | None:
    """The newest ``processing_stats_*.json`` of a run directory, if any."""
    files = sorted(Path(run_dir).glob("processing_stats_*.json"))
    if not files:
        return None
    try:
        data: dict[str, Any] = json.loads(files[-1].read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data


def compare(estimate: Estimate, actual_stats: Mapping[str, Any]) -> dict[str, Any]:
    """Estimate against what the run used, per stage and in total, for the stats file.

    ``actual_stats`` is the build's stats document; its ``usage_all_sessions`` (every reply the
    run directory holds) is the actual. ``ratio`` is actual / estimate.
    """
    actual = actual_stats.get("usage_all_sessions") or {}
    out: dict[str, Any] = {}
    totals = {"calls": [0.0, 0.0], "prompt_tokens": [0.0, 0.0],
              "completion_tokens": [0.0, 0.0], "reasoning_tokens": [0.0, 0.0],
              "usd": [0.0, 0.0]}
    for stage, est in estimate.stages.items():
        row = actual.get(stage) or {}
        pairs = {
            "calls": (est.calls, float(row.get("responses", 0))),
            "prompt_tokens": (est.prompt_tokens, float(row.get("prompt_tokens", 0))),
            "completion_tokens": (est.completion_tokens, float(row.get("completion_tokens", 0))),
            "reasoning_tokens": (est.reasoning_tokens, float(row.get("reasoning_tokens", 0))),
            "usd": (est.usd or 0.0, float(row.get("cost_usd", 0.0))),
        }
        out[stage] = {k: _pair(e, a) for k, (e, a) in pairs.items()}
        for k, (e, a) in pairs.items():
            totals[k][0] += e
            totals[k][1] += a
    out["total"] = {k: _pair(e, a) for k, (e, a) in totals.items()}
    return out


def _pair(estimate: float, actual: float) -> dict[str, float | None]:
    return {"estimate": round(estimate, 6), "actual": round(actual, 6),
            "ratio": round(actual / estimate, 3) if estimate else None}


def estimate_json(estimate: Estimate) -> str:
    """The estimate as indented JSON (``finmcq estimate --json``)."""
    return json.dumps(estimate.as_dict(), ensure_ascii=False, indent=2)



def estimate_with_history(settings: BuildSettings, sources: list[SourceQuestion], *,
                          store: RunStore | None = None) -> Estimate:
    """The estimate with what the run directory already knows: reply lengths measured from its
    stored replies (``store`` if open, else read-only from ``settings.out``) and rejection
    rates from its last stats file. A fresh directory gives the configured figures."""
    measured = (measured_from_store(store) if store is not None
                else measured_from_run_dir(settings.out))
    reasoning = (reasoning_from_store(store) if store is not None
                 else reasoning_from_run_dir(settings.out))
    stats = latest_stats(settings.out)
    assumptions = Assumptions.load()
    if stats is not None:
        assumptions = rates_from_stats(stats, assumptions)
    estimate = estimate_build(settings, sources, measured=measured, assumptions=assumptions,
                              measured_reasoning=reasoning)
    if stats is not None:
        estimate.notes.append("rejection rates as measured by the last build in this run "
                              "directory")
    return estimate
