"""The estimate's result: per-stage and whole-build figures and their renderings.

:class:`StageEstimate` and :class:`Estimate` hold expected calls, tokens and USD; they render
as the stats file's JSON-ready dict, a plain-text table for the run log, a rich table for the
CLI, and indented JSON (:func:`estimate_json`, ``finmcq estimate --json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


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


def estimate_json(estimate: Estimate) -> str:
    """The estimate as indented JSON (``finmcq estimate --json``)."""
    return json.dumps(estimate.as_dict(), ensure_ascii=False, indent=2)
