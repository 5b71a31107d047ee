"""The fake OpenAI-compatible HTTP server (aiohttp).

Endpoints:

* ``POST /v1/chat/completions`` – replies built by :mod:`finmcq.fake.replies`, faults injected
  per :class:`~finmcq.fake.config.FakeConfig`.
* ``GET /v1/models`` and ``GET /v1/models/{id}`` – the configured models.
* ``GET /_fake/stats``, ``POST /_fake/reset``, ``GET /_fake/health`` – for tests and benchmarks.
* ``GET /_fake/requests`` – the last request bodies received, oldest first, exactly as sent
  (key order kept), so a test can read what a real request carried on the wire.
* ``GET /_fake/defects`` – in defect mode, every corrupted reply served (kind, task, fingerprint;
  see :mod:`finmcq.fake.defects`).

Determinism: the reply content depends only on the canonical request JSON (sorted keys) and the
server seed. A fault draw additionally depends on how many times this server has already seen
the exact same body, so a retry gets a fresh draw instead of failing forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from finmcq.fake.batch import add_batch_routes
from finmcq.fake.config import BODY_FAULTS, ENVELOPE_FAULTS, FakeConfig
from finmcq.fake.defects import Corruption, corrupt_draft, corrupt_solution, draw
from finmcq.fake.examinee import ExamReply, exam_reply
from finmcq.fake.profiles import PATH_PREFIXES, error_json
from finmcq.fake.replies import (
    SCHEMA_NAMES,
    ReplyContext,
    build_reply,
    context_for,
    extract_item,
    to_prose,
)
from finmcq.fake.wire import in_schema_order, request_schema

RECENT_REQUESTS = 64  # request bodies kept for GET /_fake/requests

# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


class FakeState:
    """Counters of one server. Only touched from the server's event loop thread."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Zero every counter (requests still in flight stay counted as in flight)."""
        self.requests = 0
        self.first_request_at: float | None = None  # epoch seconds of the first completion
        self.by_status: Counter[str] = Counter()
        self.by_task: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.cancelled = 0
        self.peak_in_flight = self.in_flight
        self.seen: dict[str, int] = {}  # body sha256 -> times received (drives fault draws)
        self.succeeded: Counter[str] = Counter()  # body sha256 -> 200s with usable JSON
        self.defects: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, fingerprint) -> record
        self.recent: deque[bytes] = deque(maxlen=RECENT_REQUESTS)  # raw bodies, as received

    def record_defect(self, corruption: Corruption) -> None:
        """Remember a corrupted reply that was served (a resend of the same one counts once)."""
        self.defects.setdefault((corruption.kind, corruption.fingerprint), corruption.as_dict())

    def defect_counts(self) -> dict[str, int]:
        return dict(Counter(kind for kind, _ in self.defects))

    def enter(self) -> None:
        if self.first_request_at is None:
            self.first_request_at = time.time()
        self.requests += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def snapshot(self) -> dict[str, Any]:
        """The ``/_fake/stats`` document."""
        return {
            "requests": self.requests,
            "first_request_at": self.first_request_at,
            "by_status": dict(self.by_status),
            "by_task": dict(self.by_task),
            "faults": dict(self.faults),
            "cancelled": self.cancelled,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "distinct_bodies": len(self.seen),
            "succeeded_bodies": dict(self.succeeded),
            "duplicate_successes": sum(n - 1 for n in self.succeeded.values() if n > 1),
            "defects": self.defect_counts(),
        }


STATE_KEY = web.AppKey("fake_state", FakeState)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _error(status: int, message: str, type_: str, code: str | None = None,
           param: str | None = None, headers: dict[str, str] | None = None) -> web.Response:
    """An error response in OpenAI's shape."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, ensure_ascii=False).encode("utf-8"),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _tokens(chars: int) -> int:
    """Token estimate for Korean-heavy text: about two characters per token."""
    return max(1, (chars + 1) // 2)


def _text_of(content: Any) -> str:
    """A message's text, whether ``content`` is a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _system_text(messages: list[Any]) -> str:
    return " ".join(_text_of(m.get("content")) for m in messages
                    if isinstance(m, dict) and m.get("role") in ("system", "developer"))


def _schema_name(body: dict[str, Any], messages: list[Any]) -> str | None:
    """The reply model the request asks for: response_format's name, else named in a prompt."""
    rf = body.get("response_format")
    if isinstance(rf, dict) and isinstance(rf.get("json_schema"), dict):
        name = rf["json_schema"].get("name")
        if isinstance(name, str):
            return name
    # json_object / prompt fallback: the schema travels in the system message. Take the known
    # model name that appears first there.
    system = _system_text(messages)
    found = [(system.find(n), n) for n in SCHEMA_NAMES if n in system]
    return min(found)[1] if found else None


def draw_fault(config: FakeConfig, canonical: bytes, nth: int) -> str | None:
    """The fault for the ``nth`` (0-based) arrival of this body, or None; deterministic."""
    rates = config.fault_rates()
    if not any(rates.values()):
        return None
    digest = hashlib.sha256(f"fault|{config.seed}|{nth}|".encode() + canonical).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    bound = 0.0
    for kind, rate in rates.items():
        bound += rate
        if u < bound:
            return kind
    return None


def _authorized(request: web.Request, config: FakeConfig) -> web.Response | None:
    """None when the request may proceed, else the 401 to send."""
    if config.api_key is None:
        return None
    header = request.headers.get("Authorization", "")
    if header == f"Bearer {config.api_key}":
        return None
    given = header.removeprefix("Bearer ").strip()
    shown = (given[:3] + "*" * 4 + given[-4:]) if len(given) > 8 else "*" * len(given)
    return _error(401, f"Incorrect API key provided: {shown or '(none)'}.",
                  "invalid_request_error", "invalid_api_key")


def _model_not_found(model: object) -> web.Response:
    return _error(404, f"The model `{model}` does not exist or you do not have access to it.",
                  "invalid_request_error", "model_not_found")


def _corrupt(task: str, item: dict[str, Any], reply: dict[str, Any], ctx: ReplyContext,
             config: FakeConfig) -> tuple[dict[str, Any], Corruption | None]:
    """Defect mode: maybe corrupt a draft or a solution (see finmcq.fake.defects)."""
    rates = config.defect_table()
    if task in ("generate", "rewrite") and "correct_option" in reply:
        return corrupt_draft(task, item, reply, ctx, rates)
    if task == "solve" and "option_reviews" in reply:
        return corrupt_solution(reply, ctx, rates)
    return reply, None


def _exam(config: FakeConfig, body: dict[str, Any], messages: list[Any]) -> ExamReply | None:
    """Exam mode's reply (finmcq.fake.examinee) to a free-text request, else None."""
    if config.answers is None or body.get("response_format") is not None:
        return None
    return exam_reply(config.answers, config.accuracy, config.unparseable, config.seed, messages)


# --------------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------------


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.enter()
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        config = state.config  # read once: FakeLLMServer.configure may swap it meanwhile
        response = await _chat(request, state, config)
        # The reply is built first and only the rest of the latency is slept, so building it
        # does not add to the configured latency.
        remaining = config.latency_ms / 1000 - (loop.time() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
    except asyncio.CancelledError:
        # The client went away (e.g. its timeout cut a hang); aiohttp cancels the handler.
        state.cancelled += 1
        raise
    finally:
        state.in_flight -= 1
    state.by_status[str(response.status)] += 1
    return response


async def _chat(request: web.Request, state: FakeState, config: FakeConfig) -> web.Response:
    denied = _authorized(request, config)
    if denied is not None:
        return denied
    raw = await request.read()
    state.recent.append(raw)
    try:
        body = json.loads(raw)
    except ValueError:
        return _error(400, "We could not parse the JSON body of your request.",
                      "invalid_request_error")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return _error(400, "'messages' is a required property", "invalid_request_error",
                      param="messages")
    model = body.get("model")
    server = config.server_profile  # how a real server of this kind validates (profiles.py)
    if model not in config.models and not server.any_model:
        return _model_not_found(model)
    rejected = server.reject(body)
    if rejected is not None:
        return web.Response(body=error_json(rejected), status=rejected[0],
                            content_type="application/json")
    body = server.effective(body)  # ignored fields dropped, temperature capped
    if body.get("stream"):
        return _error(400, "stream=true is not supported by the fake server",
                      "invalid_request_error", param="stream")
    rf = body.get("response_format")
    if config.reject_json_schema and isinstance(rf, dict) and rf.get("type") == "json_schema":
        return _error(400, "response_format json_schema is not supported",
                      "invalid_request_error", param="response_format")

    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False,
                           separators=(",", ":")).encode("utf-8")
    body_hash = hashlib.sha256(canonical).hexdigest()
    nth = state.seen.get(body_hash, 0)
    state.seen[body_hash] = nth + 1

    messages: list[Any] = body["messages"]
    last_user = next((_text_of(m.get("content")) for m in reversed(messages)
                      if isinstance(m, dict) and m.get("role") == "user"), "")
    item = extract_item(last_user)
    task = str(item.get("task") or "none") if item is not None else "none"
    state.by_task[task] += 1

    fault = draw_fault(config, canonical, nth)
    if fault == "broken_body":  # one of the body kinds, drawn from the same body and arrival
        fault = BODY_FAULTS[int(body_hash[:8], 16) * (nth + 1) % len(BODY_FAULTS)]
    if fault is not None:
        state.faults[fault] += 1
    wait = config.retry_after_s
    retry_headers = {"Retry-After": f"{wait:g}", "retry-after-ms": str(round(wait * 1000))}
    if fault == "429":
        return _error(
            429, "Rate limit reached for requests (fake). Please try again later.",
            "requests", "rate_limit_exceeded", headers=retry_headers,
        )
    if fault == "503":
        return _error(503, "The engine is currently overloaded, please try again later.",
                      "server_error", headers=retry_headers)
    if fault == "500":
        return _error(500, "The server had an error while processing your request. Sorry "
                      "about that!", "server_error")
    if fault == "hang":
        await asyncio.sleep(config.hang_seconds)

    seed = config.seed
    digest = hashlib.sha256(canonical + f"\x00{seed}".encode()).hexdigest()
    salt = json.dumps([model, body.get("seed"), body.get("temperature")])
    schema_name = _schema_name(body, messages)
    ctx = context_for(digest, seed, schema_name, last_user, salt)
    task, reply = build_reply(item, ctx)
    corruption: Corruption | None = None
    if config.defects_on and item is not None:
        reply, corruption = _corrupt(task, item, reply, ctx, config)
    # Fields in the order the request's schema lists them, as strict decoding writes them.
    reply = in_schema_order(reply, request_schema(body, _system_text(messages)))

    usable = not config.ignore_response_format and not (server.claude_json and not schema_name)
    content = json.dumps(reply, ensure_ascii=False) if usable else to_prose(reply)
    content = server.wrap(content, schema_name, digest) if usable else content
    exam = _exam(config, body, messages)
    if exam is not None:  # exam mode: a free-text answer to an eval question
        content, usable = exam.text, True
        state.by_task[exam.kind] += 1
        if exam.graded:
            state.by_task[exam.graded] += 1
    finish = "stop"
    rates = config.defect_table()
    if fault is None and rates["invalid_json"] and draw(
            rates, ("invalid_json",), "reply", seed, body_hash, nth) is not None:
        fault = "malformed"  # the defect is the same cut-off reply as the transport fault
        corruption = Corruption("invalid_json", task, f"{body_hash[:16]}#{nth}")
        state.record_defect(corruption)
    if fault == "malformed":
        content = content[: max(1, len(content) * 2 // 3)]  # a strict prefix: never valid JSON
        usable = False
    elif fault == "length":
        content = content[: max(1, len(content) // 2)]
        finish, usable = "length", False
    limit = server.limit(body)
    reasoning = server.reasoning_tokens(body, _tokens(len(content)), digest)
    if config.honor_max_tokens and limit is not None and reasoning >= limit:
        content, finish, usable, reasoning = "", "length", False, limit  # all spent thinking
    elif (config.honor_max_tokens and limit is not None
            and _tokens(len(content)) + reasoning > limit):
        content = content[: (limit - reasoning) * 2]
        finish, usable = "length", False
    if usable:
        state.succeeded[body_hash] += 1
        if corruption is not None:
            state.record_defect(corruption)  # only a reply finmcq can use is a served defect

    prompt_chars = sum(len(_text_of(m.get("content"))) for m in messages if isinstance(m, dict))
    prompt_tokens = _tokens(prompt_chars)
    completion_tokens = (_tokens(len(content)) if content else 0) + reasoning
    call_id = hashlib.sha256(f"{digest}|{nth}".encode()).hexdigest()
    completion = {
            "id": f"chatcmpl-fake{call_id[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": f"fp_fake{seed}",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }],
            "usage": server.usage(prompt_tokens, completion_tokens, reasoning),
        }
    headers = {"x-request-id": f"req_{call_id[24:48]}"}
    if fault in BODY_FAULTS or fault in ENVELOPE_FAULTS:
        return broken_reply(fault, completion, int(call_id[:8], 16), headers)
    return _json(completion, headers=headers)


_HTML_PAGE = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
              "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
              "</body>\r\n</html>\r\n")


def broken_reply(kind: str, completion: dict[str, Any], draw_bits: int,
                 headers: dict[str, str]) -> web.Response:
    """A status-200 reply whose body or envelope is broken in the way ``kind`` names."""
    if kind in ENVELOPE_FAULTS:
        message = completion["choices"][0]["message"]
        if kind == "no_choices":
            completion.pop("choices")
        elif kind == "empty_choices":
            completion["choices"] = []
        elif kind == "null_message":
            completion["choices"][0]["message"] = None
        elif kind == "content_filter":
            message["content"] = None
            completion["choices"][0]["finish_reason"] = "content_filter"
        else:  # refusal
            message["content"] = None
            message["refusal"] = "I'm sorry, but I can't assist with that request."
        return _json(completion, headers=headers)
    data = json.dumps(completion, ensure_ascii=False).encode("utf-8")
    content_type = "application/json"
    if kind == "cut_body":
        cut = len(data) * 2 // 3
        if draw_bits % 2:  # land inside a multi-byte character (Korean text is 3 bytes each)
            start = next((i for i in range(cut, len(data)) if data[i] >= 0xC0), None)
            cut = start + 1 if start is not None else cut
        data = data[:cut]
    elif kind == "not_json":
        data, content_type = b"Internal error: upstream model worker crashed", "text/plain"
    elif kind == "not_utf8":
        # A server or proxy that re-encodes Korean text as CP949 (EUC-KR).
        data = json.dumps(completion, ensure_ascii=False).encode("cp949", "replace")
        if data.isascii():  # nothing to mis-encode: one invalid byte instead
            data = data[:-1] + b"\xff}"
    elif kind == "empty_body":
        data = b""
    else:  # html_body
        data, content_type = _HTML_PAGE.encode(), "text/html"
    return web.Response(body=data, status=200, headers={**headers,
                                                        "Content-Type": content_type})


def _model_entry(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1700000000, "owned_by": "finmcq-fake"}


async def _list_models(request: web.Request) -> web.Response:
    config = request.app[STATE_KEY].config
    denied = _authorized(request, config)
    if denied is not None:
        return denied
    return _json({"object": "list", "data": [_model_entry(m) for m in config.models]})


async def _get_model(request: web.Request) -> web.Response:
    config = request.app[STATE_KEY].config
    denied = _authorized(request, config)
    if denied is not None:
        return denied
    model = request.match_info["model"]
    return _json(_model_entry(model)) if model in config.models else _model_not_found(model)


async def _unknown_route(request: web.Request) -> web.Response:
    return _error(404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error")


async def _stats(request: web.Request) -> web.Response:
    return _json(request.app[STATE_KEY].snapshot())


async def _defects(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _json({"counts": state.defect_counts(), "items": list(state.defects.values()),
                  "rates": state.config.defect_table()})


def _recent_bodies(state: FakeState) -> list[Any]:
    out: list[Any] = []
    for raw in state.recent:
        try:
            out.append(json.loads(raw))
        except ValueError:
            out.append(raw.decode("utf-8", "replace"))
    return out


async def _requests(request: web.Request) -> web.Response:
    return _json(_recent_bodies(request.app[STATE_KEY]))


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return _json({"ok": True})


async def _health(request: web.Request) -> web.Response:
    return _json({"ok": True})


def create_app(config: FakeConfig | None = None, state: FakeState | None = None) -> web.Application:
    """The aiohttp application; pass ``state`` to share counters with the caller."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE_KEY] = state or FakeState(config or FakeConfig())
    for prefix in PATH_PREFIXES:  # /v1, Azure's /openai/v1, Gemini's /v1beta/openai
        app.router.add_post(f"{prefix}/chat/completions", _chat_completions)
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


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------


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
        asyncio.run(main())


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
        return self._call(lambda: _recent_bodies(self.state))  # type: ignore[no-any-return]

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
