"""What a run directory already knows, and the estimate against what a build used.

Reply lengths measured from stored replies (an open store, or read-only from a run
directory), rejection rates from the last stats file (:func:`rates_from_stats`),
:func:`estimate_with_history` (the estimate with both) and :func:`compare` (estimate against
actual usage, for the stats file).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finmcq.config import BuildSettings
from finmcq.engine.store import RunStore
from finmcq.estimate.assumptions import Assumptions, StageAssumption
from finmcq.estimate.model import estimate_build
from finmcq.estimate.result import Estimate
from finmcq.estimate_reasoning import (
    query_run_dir,
    reasoning_from_run_dir,
    reasoning_from_store,
)
from finmcq.records import SourceQuestion


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
