"""What the report reads from a run's stats document: per-stage rows, the funnel's steps, and
tokens and USD per stage (actual usage and the pre-run estimate the build recorded)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LLM_STAGES: tuple[str, ...] = ("relevance", "rewrite", "generate", "verify", "solve")


def _stage(stats: Mapping[str, Any], name: str) -> dict[str, Any]:
    stage = stats.get("stages", {}).get(name)
    return stage if isinstance(stage, dict) else {"in": 0, "out": 0, "drop_reasons": {}}


def funnel_rows(stats: Mapping[str, Any]) -> list[tuple[str, int, dict[str, int]]]:
    """(step, items kept, {drop reason: count}) for each step of the funnel, in order.

    A step's width is what reached it; kept plus dropped. Placement drops (an invalid 7-option
    item) happen just before verification and are shown there.
    """
    def reasons(*names: str) -> dict[str, int]:
        merged: dict[str, int] = {}
        for name in names:
            for reason, n in _stage(stats, name).get("drop_reasons", {}).items():
                merged[f"{name}: {reason}"] = int(n)
        return merged

    return [
        ("source questions", int(stats.get("sources", 0)), {}),
        ("relevant", int(_stage(stats, "relevance")["out"]), reasons("relevance")),
        ("rewritten", int(_stage(stats, "rewrite")["out"]), reasons("rewrite")),
        ("generated", int(_stage(stats, "generate")["out"]), reasons("generate")),
        ("verified", int(_stage(stats, "verify")["out"]), reasons("placement", "verify")),
        ("solved", int(_stage(stats, "solve")["out"]), reasons("solve")),
        ("delivered", int(stats["questions"]["delivered"]), reasons("dedupe")),
    ]


def stage_estimates(stats: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The pre-run estimate per stage, when the build recorded one (else empty).

    Read from ``stats["estimate"]["stages"]`` (finmcq.estimate's layout) or from per-stage
    dicts at the top of ``stats["estimate"]``; USD may be ``usd`` or ``cost_usd``. Each entry
    comes back with ``calls``, ``prompt_tokens``, ``completion_tokens`` and ``cost_usd`` (any of
    them None when not estimated).
    """
    estimate = stats.get("estimate")
    if not isinstance(estimate, dict):
        return {}
    stages = estimate.get("stages")
    per_stage: dict[str, Any] = stages if isinstance(stages, dict) else estimate
    return {
        name: {"calls": v.get("calls"), "prompt_tokens": v.get("prompt_tokens"),
               "completion_tokens": v.get("completion_tokens"),
               "reasoning_tokens": v.get("reasoning_tokens"),
               "cost_usd": v.get("cost_usd", v.get("usd"))}
        for name, v in per_stage.items() if isinstance(v, dict) and name != "total"
    }


def stage_usage(stats: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Actual tokens and USD per LLM stage, over every session of the run."""
    usage = stats.get("usage_all_sessions") or stats.get("usage_this_session") or {}
    return {k: v for k, v in usage.items() if isinstance(v, dict)}


def _stages_with_usage(stats: Mapping[str, Any]) -> list[str]:
    seen = set(stage_usage(stats)) | set(stage_estimates(stats))
    return [s for s in LLM_STAGES if s in seen] + sorted(seen - set(LLM_STAGES))

