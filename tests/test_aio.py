"""The event loop finmcq runs on: uvloop where installed, asyncio's own on request."""

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
