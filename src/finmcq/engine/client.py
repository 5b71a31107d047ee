"""The LLM engine: *how* finmcq talks to an OpenAI-compatible Chat Completions API.

Stages hand it an :class:`LLMRequest` (messages + a pydantic reply model) and get back a validated
instance of that model. :class:`LLMEngine` does, once for every stage:

* a global limit on requests in flight (an ``asyncio.Semaphore``; callers stream work in, so the
  limit stays full);
* the try loop of :meth:`LLMEngine.call`: the wire body (``_body``), the post, the envelope
  checks and parsing, a bounded number of tries per request;
* structured output: ``response_format`` ``json_schema`` (strict) built from the reply model, with
  a fallback to JSON mode (schema in the prompt) for servers that reject it; invalid JSON, schema
  violations and ``finish_reason == "length"`` are retried, never returned;
* the SQLite cache (a repeated request costs nothing), the audit log, token and USD accounting.

Its parts live next door, each importable on its own (none imports this module):

* ``engine/request.py``: :class:`EngineConfig`, :class:`LLMRequest` / :class:`LLMResult`, the
  two errors, the cache key (:func:`request_key`) and the wire/audit encoding (``_encode``);
* ``engine/replies.py``: reading a reply (``_decode_completion``, ``_first_choice``,
  :func:`parse_reply`, :class:`InvalidReply`, :func:`reasoning_tokens`);
* ``engine/retry.py``: :class:`RetryPolicy`, the mixin with backoff and jitter, ``Retry-After`` /
  ``retry-after-ms``, the circuit breaker and the stop on 401 / 403 / 404;
* ``engine/usage.py``: :class:`StageUsage` and :class:`UsageMeter`.

The names other modules import from here are re-exported (``__all__``).
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from finmcq.engine.budget import Budget
from finmcq.engine.capabilities import CapabilityTable
from finmcq.engine.cost import PriceTable
from finmcq.engine.replies import (
    InvalidReply,
    _decode_completion,
    _first_choice,
    is_response_format_error,
    parse_reply,
    reasoning_tokens,
)
from finmcq.engine.request import (
    EngineConfig,
    LLMCallFailed,
    LLMFatalError,
    LLMRequest,
    LLMResult,
    StructuredMode,
    T,
    _encode,
    request_key,
)
from finmcq.engine.retry import RetryPolicy, _print_notice
from finmcq.engine.runlog import redact, register_secret
from finmcq.engine.schema import response_format_json_schema, schema_instruction
from finmcq.engine.shape import RequestShaper
from finmcq.engine.store import RunStore
from finmcq.engine.textreply import TextReply, text_reply
from finmcq.engine.transport import (
    ChatTransport,
    HTTPStatusError,
    TransportError,
    TransportTimeout,
)
from finmcq.engine.usage import StageUsage, UsageMeter

if TYPE_CHECKING:
    import openai

# What other modules and tests import from here.
__all__ = [
    "EngineConfig", "InvalidReply", "LLMCallFailed", "LLMEngine", "LLMFatalError", "LLMRequest",
    "LLMResult", "StageUsage", "StructuredMode", "UsageMeter", "_encode", "_first_choice",
    "is_response_format_error", "parse_reply", "reasoning_tokens", "request_key",
]


class LLMEngine(RetryPolicy):
    """Sends requests, keeps the limit full, retries, validates, caches and counts cost."""

    # Replies share SQLite commits (store.py, "Group commit"); each is on disk before a stage
    # sees it. The Batch API engine keeps one commit per write (its ledger has a connection of
    # its own that must never wait for ours).
    GROUP_COMMIT = True

    def __init__(self, config: EngineConfig, store: RunStore, prices: PriceTable) -> None:
        self.config = config
        self.store = store
        self.prices = prices
        api_key = config.resolve_api_key()
        register_secret(api_key)
        self.redact = redact
        self.meter = UsageMeter(prior_cost_usd=store.total_cost())
        self.budget = Budget.for_engine(self)
        self._semaphore = asyncio.Semaphore(config.concurrency)
        self._mode: StructuredMode = (
            "json_schema" if config.structured_output in ("auto", "json_schema")
            else "json_object"
        )
        self.shaper = RequestShaper(
            CapabilityTable.load(config.capabilities), config.base_url,
            effort=config.reasoning_effort, stage_efforts=config.stage_reasoning_efforts,
            default_temperature=config.temperature, store=store)
        if config.structured_output == "auto":  # e.g. schema in the prompt from the start
            self._mode = self.shaper.initial_mode(config.model, self._mode)
        self._recent: deque[tuple[bool, str]] = deque(maxlen=config.breaker_window)
        self._successes = 0
        self._fatal: LLMFatalError | None = None
        self.in_flight = 0
        self.peak_in_flight = 0
        self._api_key = api_key
        self._transport = ChatTransport(config.base_url, api_key, config.timeout_s,
                                        config.concurrency)
        self._sdk: openai.AsyncOpenAI | None = None
        self._fatal_event = asyncio.Event()  # wakes retry waits when the run stops
        self._long_waits = 0  # over-cap Retry-After answers since the last success
        self._last_notice = 0.0
        self._grouping = False
        # Where "server asked to wait ..." notices go; the build points it at the progress.
        self.notify: Callable[[str], None] = _print_notice

    @property
    def _client(self) -> openai.AsyncOpenAI:
        """The ``openai`` SDK client, for the Batch API (files, batches); made on first use."""
        if self._sdk is None:
            import openai

            self._sdk = openai.AsyncOpenAI(
                api_key=self._api_key, base_url=self.config.base_url,
                timeout=self.config.timeout_s,
                max_retries=0,  # retries are ours: one policy, counted and logged per cause
            )
        return self._sdk

    async def aclose(self) -> None:
        await self._transport.aclose()
        if self._sdk is not None:
            await self._sdk.close()

    @property
    def fatal(self) -> LLMFatalError | None:
        return self._fatal

    # -- public API ------------------------------------------------------------------------

    def resolve(self, request: LLMRequest[Any]) -> tuple[str, float, int, str]:
        """The model, temperature and max_tokens a request runs with, and its cache key."""
        cfg = self.config
        model = request.model or cfg.model_for(request.stage)
        temperature = cfg.temperature if request.temperature is None else request.temperature
        max_tokens = request.max_tokens or cfg.max_tokens
        key = request_key(model, request.messages, request.schema, temperature, max_tokens,
                          request.seed, self.shaper.requested_effort(request.stage))
        return model, temperature, max_tokens, key

    async def call(self, request: LLMRequest[T]) -> LLMResult[T]:
        """Answer ``request`` from the cache or the API; raise LLMCallFailed / LLMFatalError."""
        if self._fatal is not None:
            raise self._fatal
        if self.GROUP_COMMIT and not self._grouping:
            self._grouping = True
            self.store.enable_group_commit()
        cfg = self.config
        model, temperature, max_tokens, key = self.resolve(request)
        usage = self.meter.stage(request.stage)

        cached = self.store.get_response(key)
        if cached is not None:
            usage.cache_hits += 1
            return LLMResult(
                value=request.schema.model_validate_json(cached.parsed_json),
                key=key, cached=True, prompt_tokens=cached.prompt_tokens,
                completion_tokens=cached.completion_tokens, cost_usd=0.0,
            )

        invalid = 0
        completion: Any = None
        for attempt in range(1, cfg.max_attempts + 1):
            if self._fatal is not None:
                raise self._fatal
            mode = self._mode
            body = self._body(request, model, temperature, max_tokens, mode)
            wire, audit = _encode(body, request.schema.__name__)
            started = time.monotonic()
            completion = None
            try:
                async with self._semaphore, self.budget.hold(model, body):
                    self.in_flight += 1
                    self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                    try:
                        reply = await self._transport.post(wire)
                    finally:
                        self.in_flight -= 1
                completion = _decode_completion(reply.body, reply.headers.get("Content-Type"))
                content, finish_reason = _first_choice(completion)
                if request.schema is TextReply:  # free text (finmcq eval): taken as it comes
                    value = request.schema.model_validate(text_reply(content, finish_reason))
                elif finish_reason == "length":
                    raise InvalidReply("truncated", "finish_reason=length: the reply was cut off")
                else:
                    value = parse_reply(content, request.schema)
            except InvalidReply as exc:
                self._note(False, "unusable_reply")
                self._charge_unusable(request, usage, model, completion, exc.cause)
                invalid += 1
                self._retry_event(request, exc.cause, str(exc), attempt)
                self._check_breaker()
                if invalid >= cfg.max_invalid:
                    usage.failed_calls += 1
                    raise LLMCallFailed(
                        f"{request.stage}: no valid reply after {invalid} tries ({exc})", exc.cause
                    ) from None
                continue
            except HTTPStatusError as exc:
                if self.shaper.adapt(model, body, exc.status, exc.json,
                                     self.redact(exc.message)):
                    continue  # an unsupported parameter: sent again in the adapted shape
                wait = self._on_status_error(exc, request, attempt, mode)
                if wait is not None:
                    await self._sleep(wait)
                continue
            except (TransportTimeout, TransportError) as exc:
                cause = "timeout" if isinstance(exc, TransportTimeout) else "connection"
                self._note(False, cause)
                self._retry_event(request, cause, self.redact(str(exc)), attempt)
                self._check_breaker()
                await self._sleep(self._backoff(attempt))
                continue

            latency = time.monotonic() - started
            self._note(True)
            result = self._record(request, key, model, body, content or "", value,
                                  completion, latency, attempt, usage, audit_json=audit)
            await self.store.committed()  # on disk before any stage builds on it
            return result

        usage.failed_calls += 1
        raise LLMCallFailed(
            f"{request.stage}: gave up after {cfg.max_attempts} tries", "max_attempts"
        )

    # -- internals -------------------------------------------------------------------------

    def _body(self, request: LLMRequest[Any], model: str, temperature: float, max_tokens: int,
              mode: StructuredMode) -> dict[str, Any]:
        """The one place a request's wire body is built (every try calls it again).

        Request shaping by model capability (parameter names, dropped parameters) belongs here,
        so the live engine and the Batch API (which calls it too) send the same bodies.
        """
        messages = [dict(m) for m in request.messages]
        schema: type[BaseModel] = request.schema
        if schema is TextReply:  # free text: no response_format, no schema in the prompt
            response_format: dict[str, Any] | None = None
        elif mode == "json_schema":
            response_format = response_format_json_schema(schema)
        else:
            # Fallback: the schema travels in the system prompt instead.
            response_format = {"type": "json_object"} if mode == "json_object" else None
            instruction = schema_instruction(schema)
            if messages and messages[0].get("role") == "system":
                messages[0]["content"] = messages[0]["content"] + instruction
            else:
                messages.insert(0, {"role": "system", "content": instruction.strip()})
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if response_format is not None:
            body["response_format"] = response_format
        return self.shaper.wire(body, request.stage)  # the model's shape (engine/shape.py)

    def _charge_unusable(self, request: LLMRequest[Any], usage: StageUsage, model: str,
                         completion: Any, cause: str) -> None:
        """An unusable reply is still billed: count its tokens and cost (not cached)."""
        u = completion.get("usage") if isinstance(completion, dict) else None
        if not isinstance(u, dict):
            return
        prompt_tokens = int(u.get("prompt_tokens") or 0)
        completion_tokens = int(u.get("completion_tokens") or 0)
        cost = self.prices.cost(model, prompt_tokens, completion_tokens)
        usage.prompt_tokens += prompt_tokens
        usage.completion_tokens += completion_tokens
        usage.reasoning_tokens += reasoning_tokens(u)
        self.shaper.observe_reasoning(model, reasoning_tokens(u))
        usage.cost_usd += cost
        usage.unusable_cost_usd += cost
        self.store.add_unusable(stage=request.stage, item_id=request.item_id, model=model,
                                cause=cause, prompt_tokens=prompt_tokens,
                                completion_tokens=completion_tokens, cost_usd=cost)

    def _record(self, request: LLMRequest[T], key: str, model: str, body: dict[str, Any],
                content: str, value: T, completion: dict[str, Any], latency: float, attempts: int,
                usage: StageUsage, *, audit_json: str | None = None) -> LLMResult[T]:
        u = completion.get("usage") or {}
        prompt_tokens = int(u.get("prompt_tokens") or 0)
        completion_tokens = int(u.get("completion_tokens") or 0)
        details = u.get("prompt_tokens_details") or {}
        cached_tokens = int(details.get("cached_tokens") or 0)
        cost = self.prices.cost(model, prompt_tokens, completion_tokens, cached_tokens)
        if audit_json is None:
            audit_json = _encode(body, request.schema.__name__)[1]
        self.store.put_response(
            key=key, stage=request.stage, item_id=request.item_id, model=model,
            request=audit_json,
            content=content, parsed_json=value.model_dump_json(), prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens, cached_tokens=cached_tokens, cost_usd=cost,
            latency_s=latency, attempts=attempts,
        )
        usage.requests += 1
        usage.prompt_tokens += prompt_tokens
        usage.completion_tokens += completion_tokens
        usage.cached_tokens += cached_tokens
        reasoning = reasoning_tokens(u)
        usage.reasoning_tokens += reasoning
        if reasoning:
            self.store.add_reasoning(key, request.stage, reasoning)
            self.shaper.observe_reasoning(model, reasoning)
        usage.cost_usd += cost
        usage.latency_s += latency
        return LLMResult(value=value, key=key, cached=False, prompt_tokens=prompt_tokens,
                         completion_tokens=completion_tokens, cost_usd=cost)

