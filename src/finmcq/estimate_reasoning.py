"""Hidden reasoning tokens in the estimate: assumed per stage, replaced by measurements.

Reasoning models bill their hidden reasoning as output tokens. Before a run, the estimate
assumes ``reply_tokens × stage share × effort factor`` reasoning tokens per call
(``[reasoning]`` in ``data/estimate.toml``) for every stage whose model the capability table
(:mod:`finmcq.engine.capabilities`) marks as reasoning; once a run directory holds 20 replies
of a stage, their measured reasoning tokens per reply are used instead.
"""

from __future__ import annotations

import sqlite3
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from finmcq.config import BuildSettings
from finmcq.engine.capabilities import CapabilityTable
from finmcq.engine.store import STORE_FILENAME, RunStore

MIN_REPLIES = 20


@dataclass(frozen=True)
class ReasoningAssumptions:
    stage_share: dict[str, float]
    effort_factor: dict[str, float]

    @classmethod
    def load(cls) -> ReasoningAssumptions:
        text = resources.files("finmcq.data").joinpath("estimate.toml").read_text("utf-8")
        data = tomllib.loads(text).get("reasoning", {})
        return cls({k: float(v) for k, v in data.get("stages", {}).items()},
                   {k: float(v) for k, v in data.get("effort", {}).items()})


@dataclass(frozen=True)
class ReasoningPlan:
    """Per stage: the model reasons or not, at which effort, and the assumed tokens per call."""

    settings: BuildSettings
    table: CapabilityTable
    assumptions: ReasoningAssumptions

    @classmethod
    def for_settings(cls, settings: BuildSettings) -> ReasoningPlan:
        return cls(settings, CapabilityTable.load(settings.capabilities),
                   ReasoningAssumptions.load())

    def effort(self, stage: str, model: str) -> str | None:
        caps = self.table.lookup(model, self.settings.base_url)
        if not caps.reasoning:
            return None
        wanted = self.settings.stage_reasoning_efforts.get(stage, self.settings.reasoning_effort)
        return wanted or caps.default_effort or "medium"

    def assumed_per_call(self, stage: str, model: str, reply_tokens: float) -> float:
        effort = self.effort(stage, model)
        if effort is None:
            return 0.0
        share = self.assumptions.stage_share.get(stage, 1.0)
        return reply_tokens * share * self.assumptions.effort_factor.get(effort, 1.0)


def measured_reasoning(responses: Mapping[str, float], reasoning: Mapping[str, float]
                       ) -> dict[str, float]:
    """Reasoning tokens per reply per stage, for stages with at least 20 replies."""
    return {stage: float(reasoning.get(stage, 0)) / n for stage, n in responses.items()
            if n >= MIN_REPLIES}


def reasoning_from_store(store: RunStore) -> dict[str, float]:
    usage = store.usage_by_stage()
    return measured_reasoning({s: row.get("responses", 0) for s, row in usage.items()},
                              store.reasoning_by_stage())


def query_run_dir(run_dir: Path, *queries: str) -> list[list[tuple[Any, ...]]] | None:
    """Run ``queries`` on a run directory's store, read-only and without the run lock (so it
    works while a build runs); None when there is no store or it lacks a table queried."""
    path = Path(run_dir) / STORE_FILENAME
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return [db.execute(query).fetchall() for query in queries]
        finally:
            db.close()
    except sqlite3.Error:  # no store yet, or one from before a table was recorded
        return None


def reasoning_from_run_dir(run_dir: Path) -> dict[str, float]:
    """Like :func:`reasoning_from_store`, read-only and without the run lock."""
    rows = query_run_dir(run_dir, "SELECT stage, COUNT(*) FROM responses GROUP BY stage",
                         "SELECT stage, SUM(reasoning_tokens) FROM reasoning GROUP BY stage")
    if rows is None:
        return {}
    responses, reasoning = rows
    return measured_reasoning(dict(responses), dict(reasoning))
