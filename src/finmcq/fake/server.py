"""Running the fake OpenAI-compatible server: in the foreground, or in a thread for tests.

:func:`serve` runs it until Ctrl-C or SIGTERM (``python -m finmcq.fake``, ``finmcq fake-llm``);
:class:`FakeLLMServer` runs it on a free port in a daemon thread, for tests and ``finmcq demo``.
The app itself (routes, endpoints) is :mod:`finmcq.fake.app`; the chat handler
:mod:`finmcq.fake.chat`; fault injection :mod:`finmcq.fake.faults`; counters
:mod:`finmcq.fake.state`. This module re-exports what callers import from it.

Determinism: the reply content depends only on the canonical request JSON (sorted keys) and the
server seed. A fault draw additionally depends on how many times this server has already seen
the exact same body, so a retry gets a fresh draw instead of failing forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

from finmcq import aio
from finmcq.fake.app import create_app, start_site
from finmcq.fake.config import FakeConfig
from finmcq.fake.faults import broken_reply, draw_fault
from finmcq.fake.state import STATE_KEY, FakeState, recent_bodies


def serve(config: FakeConfig | None = None, host: str = "127.0.0.1", port: int = 8765, *,
          announce: Callable[[str], None] | None = None) -> None:
    """Run the fake in the foreground until Ctrl-C or SIGTERM.

    When ready, ``announce`` (default: print to stdout) receives the base URL
    ``http://HOST:PORT/v1``; with ``port=0`` that URL carries the port actually bound.
    """
    say = announce or (lambda url: print(url, flush=True))

    async def main() -> None:
        runner, bound = await start_site(create_app(config), host, port)
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
            # A benchmark stops its server with SIGTERM; shut down cleanly, exit status 0.
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        say(f"http://{host}:{bound}/v1")
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        aio.run(main())


class FakeLLMServer:
    """The fake on 127.0.0.1 and a free port, in a daemon thread with its own event loop.

    Starts in the constructor; use as a context manager or call :meth:`close`::

        with FakeLLMServer(latency_ms=50, rate_429=0.1) as fake:
            client = AsyncOpenAI(base_url=fake.base_url, api_key="x")
            ...
            assert fake.stats()["by_status"]["200"] > 0
    """

    def __init__(self, config: FakeConfig | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, **overrides: Any) -> None:
        if config is None:
            config = FakeConfig(**overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.host = host
        self.state = FakeState(config)
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(port,), daemon=True,
                                        name="finmcq-fake-llm")
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError("the fake LLM server failed to start") from self._error

    def _run(self, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            # shutdown_timeout is short: hung handlers must not hold up close().
            self._runner, self.port = self._loop.run_until_complete(
                start_site(create_app(state=self.state), self.host, port, shutdown_timeout=0.2)
            )
        except BaseException as exc:  # reported to the constructor's thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    @property
    def config(self) -> FakeConfig:
        """The configuration requests are answered with now."""
        return self.state.config

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: what an OpenAI client's ``base_url`` should be."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def url(self) -> str:
        """The server root, where ``/_fake/...`` lives."""
        return f"http://{self.host}:{self.port}"

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters (same document as ``GET /_fake/stats``)."""
        return self._call(self.state.snapshot)  # type: ignore[no-any-return]

    def defects(self) -> dict[str, Any]:
        """Every corrupted reply served so far (same document as ``GET /_fake/defects``)."""

        def document() -> dict[str, Any]:
            return {"counts": self.state.defect_counts(),
                    "items": list(self.state.defects.values()),
                    "rates": self.state.config.defect_table()}

        return self._call(document)  # type: ignore[no-any-return]

    def requests(self) -> list[Any]:
        """The last request bodies received, oldest first (same as ``GET /_fake/requests``)."""
        return self._call(lambda: recent_bodies(self.state))  # type: ignore[no-any-return]

    def reset(self) -> None:
        """Zero the counters, as ``POST /_fake/reset`` does."""
        self._call(self.state.reset)

    def configure(self, **changes: Any) -> FakeConfig:
        """Change settings (e.g. fault rates) for the requests that arrive from now on."""
        new = dataclasses.replace(self.state.config, **changes)

        def swap() -> None:
            self.state.config = new

        self._call(swap)
        return new

    def close(self) -> None:
        """Stop the server and its thread; safe to call twice."""
        if self._runner is None or self._loop.is_closed():
            return
        runner, self._runner = self._runner, None
        try:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeLLMServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = [
    "STATE_KEY",
    "FakeConfig",
    "FakeLLMServer",
    "FakeState",
    "broken_reply",
    "create_app",
    "draw_fault",
    "serve",
    "start_site",
]
