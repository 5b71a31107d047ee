"""The fake's aiohttp application: its routes, and starting it on a host and port.

Endpoints:

* ``POST /v1/chat/completions`` – :mod:`finmcq.fake.chat` (replies built by
  :mod:`finmcq.fake.replies`, faults injected per :class:`~finmcq.fake.config.FakeConfig`).
* ``GET /v1/models`` and ``GET /v1/models/{id}`` – the configured models.
* ``GET /_fake/stats``, ``POST /_fake/reset``, ``GET /_fake/health`` – for tests and benchmarks.
* ``GET /_fake/requests`` – the last request bodies received, oldest first, exactly as sent
  (key order kept), so a test can read what a real request carried on the wire.
* ``GET /_fake/defects`` – in defect mode, every corrupted reply served (kind, task, fingerprint;
  see :mod:`finmcq.fake.defects`).
* ``/v1/files`` and ``/v1/batches`` – the Batch API (:mod:`finmcq.fake.batch`).

Every route is also served under Azure's ``/openai/v1`` and Gemini's ``/v1beta/openai``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from finmcq.fake.batch import add_batch_routes
from finmcq.fake.chat import chat_completions
from finmcq.fake.config import FakeConfig
from finmcq.fake.profiles import PATH_PREFIXES
from finmcq.fake.responses import authorized, json_reply, model_not_found, openai_error
from finmcq.fake.state import STATE_KEY, FakeState, recent_bodies


def _model_entry(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1700000000, "owned_by": "finmcq-fake"}


async def _list_models(request: web.Request) -> web.Response:
    config = request.app[STATE_KEY].config
    denied = authorized(request, config)
    if denied is not None:
        return denied
    return json_reply({"object": "list", "data": [_model_entry(m) for m in config.models]})


async def _get_model(request: web.Request) -> web.Response:
    config = request.app[STATE_KEY].config
    denied = authorized(request, config)
    if denied is not None:
        return denied
    model = request.match_info["model"]
    return json_reply(_model_entry(model)) if model in config.models else model_not_found(model)


async def _unknown_route(request: web.Request) -> web.Response:
    return openai_error(404, f"Invalid URL ({request.method} {request.path})",
                        "invalid_request_error")


async def _stats(request: web.Request) -> web.Response:
    return json_reply(request.app[STATE_KEY].snapshot())


async def _defects(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return json_reply({"counts": state.defect_counts(), "items": list(state.defects.values()),
                       "rates": state.config.defect_table()})


async def _requests(request: web.Request) -> web.Response:
    return json_reply(recent_bodies(request.app[STATE_KEY]))


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return json_reply({"ok": True})


async def _health(request: web.Request) -> web.Response:
    return json_reply({"ok": True})


def create_app(config: FakeConfig | None = None, state: FakeState | None = None) -> web.Application:
    """The aiohttp application; pass ``state`` to share counters with the caller."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE_KEY] = state or FakeState(config or FakeConfig())
    for prefix in PATH_PREFIXES:  # /v1, Azure's /openai/v1, Gemini's /v1beta/openai
        app.router.add_post(f"{prefix}/chat/completions", chat_completions)
        app.router.add_get(f"{prefix}/models", _list_models)
        app.router.add_get(f"{prefix}/models/{{model}}", _get_model)
    app.router.add_get("/_fake/stats", _stats)
    app.router.add_get("/_fake/defects", _defects)
    app.router.add_get("/_fake/requests", _requests)
    app.router.add_post("/_fake/reset", _reset)
    app.router.add_get("/_fake/health", _health)
    add_batch_routes(app)  # /v1/files, /v1/batches (fake/batch.py)
    app.router.add_route("*", "/v1/{tail:.*}", _unknown_route)
    return app


async def start_site(app: web.Application, host: str, port: int,
                     shutdown_timeout: float = 1.0) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``host:port`` in the running loop; returns the runner and bound port."""
    # No access log: at thousands of requests per second it would cost more than the replies.
    # handler_cancellation: a client that gives up (timeout on a hang) cancels its handler.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                           shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=2048, reuse_address=True)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, int(bound)
