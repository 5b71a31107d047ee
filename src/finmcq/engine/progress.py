"""Live progress per stage: done/total, rate, ETA and USD so far (quiet when not on a TTY)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich (~0.05 s to import) only loads when the bars are shown
    from rich.progress import Progress, TaskID

class StageProgress:
    """One bar per stage. ``enabled=None`` means: only when stderr is a terminal."""

    def __init__(self, cost_of: Callable[[str], float], enabled: bool | None = None,
                 reasoning_of: Callable[[str], int] | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._tasks: dict[str, TaskID] = {}
        self._progress: Progress | None = None
        if self.enabled:
            from finmcq.engine.progress_bars import stage_bars

            self._progress = stage_bars(cost_of, reasoning_of)

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
