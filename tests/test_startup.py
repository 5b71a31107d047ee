"""How a build starts: the event loop it runs on, and what it imports before its first request."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from finmcq import aio


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop not installed")
def test_builds_run_on_uvloop_where_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINMCQ_EVENT_LOOP", raising=False)
    assert aio.run(_loop_module()).startswith("uvloop")


def test_asyncio_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINMCQ_EVENT_LOOP", "asyncio")
    assert aio.loop_factory() is None
    assert aio.run(_loop_module()).startswith("asyncio")


def test_a_build_starts_without_importing_numpy() -> None:
    """numpy (~0.2 s of CPU) loads in the contamination thread while the first requests are in
    flight, datasets only on a source-cache miss, openai only for --batch, rich only when the
    progress bars are shown: the modules a build needs before its first request import none."""
    import subprocess
    import sys

    code = ("import sys, finmcq.cli, finmcq.cli_build, finmcq.build, finmcq.pipeline.core; "
            "print(*(name in sys.modules for name in ('numpy', 'datasets', 'openai', 'rich')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False", "False", "False"], out
