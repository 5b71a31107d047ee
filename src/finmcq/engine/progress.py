"""Live progress per stage: done/total, rate, ETA and USD so far (quiet when not on a TTY)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
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


class StageProgress:
    """One bar per stage. ``enabled=None`` means: only when stderr is a terminal."""

    def __init__(self, cost_of: Callable[[str], float], enabled: bool | None = None,
                 reasoning_of: Callable[[str], int] | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._tasks: dict[str, TaskID] = {}
        self._progress: Progress | None = None
        if self.enabled:
            self._progress = Progress(
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

    def __enter__(self) -> StageProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def note(self, text: str) -> None:
        """A line for the user (e.g. a long server-requested wait), shown even without a TTY."""
        if self._progress is not None:
            self._progress.console.print(f"finmcq: {text}", style="yellow", markup=False)
        else:
            print(f"finmcq: {text}", file=sys.stderr, flush=True)

    def set_total(self, stage: str, total: int) -> None:
        if self._progress is None:
            return
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=total)
        else:
            self._progress.update(self._tasks[stage], total=total)

    def advance(self, stage: str, n: int = 1) -> None:
        if self._progress is None:
            return
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=None)
        self._progress.advance(self._tasks[stage], n)
