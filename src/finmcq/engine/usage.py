"""Token, cost, latency and retry counters per stage, for the progress display and stats.

:class:`UsageMeter` keeps one :class:`StageUsage` per stage for this process; its
``total_cost`` adds what earlier sessions of the run spent (read from the store at start).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StageUsage:
    """Counters for one stage, for the progress display and the stats file."""

    requests: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0  # hidden reasoning, part of completion_tokens (billed as output)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    failed_calls: int = 0
    unusable_cost_usd: float = 0.0  # paid for replies that failed validation
    retries: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "mean_latency_s": round(self.latency_s / self.requests, 3) if self.requests else None,
            "failed_calls": self.failed_calls,
            "unusable_cost_usd": round(self.unusable_cost_usd, 6),
            "retries": dict(sorted(self.retries.items())),
        }


class UsageMeter:
    """Usage per stage for this process; ``total_cost`` adds what earlier sessions spent."""

    def __init__(self, prior_cost_usd: float = 0.0) -> None:
        self.stages: dict[str, StageUsage] = {}
        self.prior_cost_usd = prior_cost_usd

    def stage(self, name: str) -> StageUsage:
        return self.stages.setdefault(name, StageUsage())

    @property
    def session_cost(self) -> float:
        return sum(s.cost_usd for s in self.stages.values())

    @property
    def total_cost(self) -> float:
        return self.prior_cost_usd + self.session_cost

    @property
    def reasoning_tokens(self) -> int:
        return sum(s.reasoning_tokens for s in self.stages.values())

    def as_dict(self) -> dict[str, Any]:
        return {name: usage.as_dict() for name, usage in sorted(self.stages.items())}
