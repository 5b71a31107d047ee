"""The rich progress bars behind :class:`finmcq.engine.progress.StageProgress`.

Kept apart so that rich is imported only when the bars are shown (a terminal); a build writing
to a pipe or a log never loads it.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _CostColumn(ProgressColumn):
    def __init__(self, cost_of: Callable[[str], float]) -> None:
        super().__init__()
        self._cost_of = cost_of

    def render(self, task: Task) -> Text:
        return Text(f"${self._cost_of(task.description):,.4f}", style="green")


class _ReasoningColumn(ProgressColumn):
    """Hidden reasoning tokens so far (shown only once a model reported any)."""

    def __init__(self, reasoning_of: Callable[[str], int]) -> None:
        super().__init__()
        self._reasoning_of = reasoning_of

    def render(self, task: Task) -> Text:
        n = self._reasoning_of(task.description)
        return Text(f"reasoning {n:,} tok" if n else "", style="magenta")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f}/s" if speed else "-/s", style="cyan")


def stage_bars(cost_of: Callable[[str], float],
               reasoning_of: Callable[[str], int] | None) -> Progress:
    """One bar per stage: done/total, rate, elapsed, ETA, USD and reasoning tokens so far."""
    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        _CostColumn(cost_of),
        *([_ReasoningColumn(reasoning_of)] if reasoning_of is not None else []),
        console=Console(stderr=True),
        refresh_per_second=4,
    )
