"""The LLM engine: *how* finmcq talks to an OpenAI-compatible Chat Completions API.

Stages hand it an :class:`LLMRequest` (messages + a pydantic reply model) and get back a validated
instance of that model. Everything else lives here, once:

* a global limit on requests in flight (an ``asyncio.Semaphore``; callers stream work in, so the
  limit stays full);
* retries with exponential backoff and jitter on 429 / 5xx / timeouts / connection errors,
  honouring ``Retry-After`` and ``retry-after-ms``; a bounded number of tries per request;
* a circuit breaker that stops the run when most recent attempts fail, and an immediate stop on
  401 / 403 / 404 with a message that says which;
* structured output: ``response_format`` ``json_schema`` (strict) built from the reply model, with
  a fallback to JSON mode (schema in the prompt) for servers that reject it; invalid JSON, schema
  violations and ``finish_reason == "length"`` are retried, never returned;
* the SQLite cache (a repeated request costs nothing), the audit log, token and USD accounting.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, NoReturn, TypeVar
from urllib.parse import urlparse

from pydantic import BaseModel, ValidationError

from finmcq.engine.budget import Budget
from finmcq.engine.capabilities import CapabilityTable
from finmcq.engine.cost import PriceTable
from finmcq.engine.jsontext import json_text
from finmcq.engine.runlog import redact, register_secret
from finmcq.engine.schema import (
    model_schema_json,
    response_format_json_schema,
    schema_instruction,
)
from finmcq.engine.shape import RequestShaper
from finmcq.engine.store import RunStore
from finmcq.engine.textreply import TextReply, text_reply
from finmcq.engine.transport import (
    BrokenBody,
    ChatTransport,
    HTTPStatusError,
    TransportError,
    TransportTimeout,
    decode_json_body,
)
from finmcq.errors import ConfigError, FinmcqError

if TYPE_CHECKING:
    import openai

log = logging.getLogger("finmcq.engine")

T = TypeVar("T", bound=BaseModel)
StructuredMode = Literal["json_schema", "json_object", "prompt"]
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


class LLMFatalError(FinmcqError):
    """A condition no retry can fix (bad key, unknown model, dead server): the run stops."""


class LLMCallFailed(FinmcqError):
    """One request failed after all its tries; the stage decides what to do with the item."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass
class EngineConfig:
    """How to reach the LLM and how hard to try. Every field can come from CLI or TOML."""

    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    model: str = "gpt-4o-mini"
    stage_models: dict[str, str] = field(default_factory=dict)
    temperature: float = 0.0
    max_tokens: int = 4096
    timeout_s: float = 120.0
    concurrency: int = 100
    max_attempts: int = 8
    # Unusable replies (bad JSON, schema violation, cut off) tolerated per request. Transient
    # server glitches produce them too, so this must make giving up rare: at a 5 % rate, 6 in a
    # row happen once in 64 million requests.
    max_invalid: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    structured_output: Literal["auto", "json_schema", "json_object"] = "auto"
    breaker_window: int = 40
    breaker_failure_ratio: float = 0.9
    # Longest wait honoured from a Retry-After header; a longer one is cut to this, and a run
    # where every request is told to wait longer stops (see _check_long_waits).
    max_retry_wait_s: float = 120.0
    budget_usd: float | None = None  # stop before the run's spend would pass it (budget.py)
    # Request shape per model (engine/capabilities.py, engine/shape.py).
    capabilities: Path | None = None  # extra capability rules (--capabilities FILE)
    reasoning_effort: str | None = None
    stage_reasoning_efforts: dict[str, str] = field(default_factory=dict)

    def model_for(self, stage: str) -> str:
        return self.stage_models.get(stage, self.model)

    def resolve_api_key(self) -> str:
        """The key from the environment variable named by ``api_key_env``.

        Local servers (vLLM, Ollama, llama.cpp, the fake LLM) need no key; hosted APIs do.
        """
        key = os.environ.get(self.api_key_env, "").strip()
        if key:
            return key
        host = urlparse(self.base_url).hostname if self.base_url else None
        if host in _LOOPBACK:
            return "no-key-needed-for-local-server"
        where = self.base_url or "the OpenAI API"
        raise ConfigError(
            f"No API key: the environment variable {self.api_key_env} is not set, and {where} "
            f"needs one. Set it (export {self.api_key_env}=sk-...), name another variable with "
            "--api-key-env, or run `finmcq demo` to try everything offline with the built-in "
            "fake LLM."
        )


@dataclass(frozen=True)
class LLMRequest(Generic[T]):
    """What a stage asks: messages and the pydantic model the reply must validate against."""

    stage: str
    messages: tuple[Mapping[str, str], ...]
    schema: type[T]
    item_id: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class LLMResult(Generic[T]):
    value: T
    key: str
    cached: bool
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


@dataclass
class StageUsage:
    """Counters for one stage, for the progress display and the stats file."""

    requests: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0  # hidden reasoning, part of completion_tokens (billed as output)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    failed_calls: int = 0
    unusable_cost_usd: float = 0.0  # paid for replies that failed validation
    retries: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "mean_latency_s": round(self.latency_s / self.requests, 3) if self.requests else None,
            "failed_calls": self.failed_calls,
            "unusable_cost_usd": round(self.unusable_cost_usd, 6),
            "retries": dict(sorted(self.retries.items())),
        }


class UsageMeter:
    """Usage per stage for this process; ``total_cost`` adds what earlier sessions spent."""

    def __init__(self, prior_cost_usd: float = 0.0) -> None:
        self.stages: dict[str, StageUsage] = {}
        self.prior_cost_usd = prior_cost_usd

    def stage(self, name: str) -> StageUsage:
        return self.stages.setdefault(name, StageUsage())

    @property
    def session_cost(self) -> float:
        return sum(s.cost_usd for s in self.stages.values())

    @property
    def total_cost(self) -> float:
        return self.prior_cost_usd + self.session_cost

    @property
    def reasoning_tokens(self) -> int:
        return sum(s.reasoning_tokens for s in self.stages.values())

    def as_dict(self) -> dict[str, Any]:
        return {name: usage.as_dict() for name, usage in sorted(self.stages.items())}


def request_key(model: str, messages: tuple[Mapping[str, str], ...], schema: type[BaseModel],
                temperature: float, max_tokens: int, seed: int | None,
                reasoning_effort: str | None = None) -> str:
    """Hash of everything that determines the answer: the cache key.

    It is the *logical* request: how the request is shaped on the wire (engine/shape.py) does
    not change it, so an adapted run resumes and caches like any other.
    """
    logical: dict[str, Any] = {
        "model": model,
        "messages": [dict(m) for m in messages],
        "schema": model_schema_json(schema),
        "temperature": temperature,
        "max_tokens": max_tokens,
        "seed": seed,
    }
    if reasoning_effort is not None:  # absent otherwise: keys of earlier runs stay valid
        logical["reasoning_effort"] = reasoning_effort
    canonical = json.dumps(
        logical,
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class InvalidReply(Exception):
    """The reply arrived but is not usable (bad JSON, schema violation, truncated)."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause


def parse_reply(content: str | None, schema: type[T]) -> T:
    """Parse a reply into ``schema``; tolerate a Markdown code fence around the JSON."""
    if not content or not content.strip():
        raise InvalidReply("empty_reply", "the reply had no content")
    text = json_text(content)  # plain, fenced, or wrapped in a sentence
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidReply("invalid_json",
                       f"reply is not valid JSON ({exc.msg} at {exc.pos})") from None
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise InvalidReply(
            "schema_violation",
            f"{exc.error_count()} schema error(s), first at {where}: {first['msg']}",
        ) from None


class LLMEngine:
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

    def _on_status_error(self, exc: HTTPStatusError, request: LLMRequest[Any],
                         attempt: int, mode: StructuredMode) -> float | None:
        """Classify an HTTP error; return seconds to wait before retrying, or raise."""
        status = exc.status
        message = self.redact(exc.message).rstrip(". ")
        if status in (401, 403):
            what = "was rejected (401: invalid API key)" if status == 401 else (
                "is not allowed to use this model or endpoint (403)")
            self._fail_fatal(
                f"The API key in {self.config.api_key_env} {what} at "
                f"{self._where}: {message}. Check the key (and "
                "--api-key-env, --base-url); nothing was lost, rerun to resume."
            )
        if status == 404:
            model = request.model or self.config.model_for(request.stage)
            self._fail_fatal(
                f"The server at {self._where} answered 404 for "
                f"model {model!r}: {message}. Check --model (see `finmcq doctor`) and that "
                "--base-url ends with /v1."
            )
        if (status == 400 and is_response_format_error(message) and mode != "prompt"
                and self.config.structured_output == "auto"):
            if self._mode == mode:  # first request to notice switches everyone
                self._mode = "json_object" if mode == "json_schema" else "prompt"
                log.warning("The server rejected response_format=%s (%s); falling back to %s "
                            "with the schema in the prompt.", mode, message, self._mode)
            return None
        if status == 429 or status >= 500 or status == 408 or status == 409:
            cause = "rate_limit" if status == 429 else f"http_{status}"
            self._note(False, cause)
            self._retry_event(request, cause, message, attempt)
            self._check_breaker()
            retry_after = exc.retry_after_s() if status in (429, 503) else None
            if retry_after is None:
                return self._backoff(attempt)
            # The server knows best, up to --max-retry-wait.
            return self._honour_retry_after(retry_after, status, request) + random.uniform(0, .1)
        # Any other 4xx is a bug in the request: retrying sends the same bytes again.
        self._fail_fatal(
            f"The server rejected a {request.stage} request with HTTP {status}: {message}. "
            "This is not something a retry fixes; check --model and --base-url."
        )

    @property
    def _where(self) -> str:
        return self.config.base_url or "api.openai.com"

    def _honour_retry_after(self, asked: float, status: int, request: LLMRequest[Any]) -> float:
        """The wait for a Retry-After of ``asked`` seconds: capped, and said aloud when long."""
        cap = self.config.max_retry_wait_s
        wait = min(asked, cap)
        if asked > cap:
            self._long_waits += 1
            self._check_long_waits(asked, status)
        if wait >= NOTICE_WAIT_S:
            at = (datetime.now() + timedelta(seconds=wait)).strftime("%H:%M:%S")
            capped = f" (capped by --max-retry-wait {cap:g} s)" if asked > cap else ""
            text = (f"server asked to wait {asked:g} s (HTTP {status}, {request.stage}); "
                    f"retrying at {at}{capped}")
            log.warning(text)
            now = time.monotonic()
            if now - self._last_notice >= NOTICE_EVERY_S:  # one line per burst, not per request
                self._last_notice = now
                self.notify(text)
        return wait

    def _check_long_waits(self, asked: float, status: int) -> None:
        """Every recent request is told to wait longer than we may: stop instead of hanging."""
        needed = max(2, min(LONG_WAIT_TRIP, self.config.concurrency))
        if self._long_waits >= needed:
            self._fail_fatal(
                f"Stopping: the server at {self._where} told the last {self._long_waits} "
                f"requests to wait {asked:g} s (HTTP {status} with Retry-After), longer than "
                f"--max-retry-wait {self.config.max_retry_wait_s:g} s, and none succeeded: it is "
                "unavailable or out of quota. Try again later, or raise --max-retry-wait to wait "
                "it out; rerun with the same --out to resume: replies received so far are saved."
            )

    async def _sleep(self, seconds: float) -> None:
        """Wait before a retry; wake at once if the run is stopped meanwhile."""
        if seconds <= 0 or self._fatal is not None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._fatal_event.wait(), timeout=seconds)

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

    def _backoff(self, attempt: int) -> float:
        cap = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(cap / 2, cap)  # "equal jitter": never zero, never synchronized

    def _note(self, ok: bool, cause: str = "") -> None:
        self._recent.append((ok, cause))
        if ok:
            self._successes += 1
            self._long_waits = 0

    def _check_breaker(self) -> None:
        window = self._recent
        failures = [cause for ok, cause in window if not ok]
        if not failures:
            return
        common, _ = Counter(failures).most_common(1)[0]
        if common == "unusable_reply" and len(window) == window.maxlen and (
                len(failures) / len(window) >= self.config.breaker_failure_ratio):
            self._fail_fatal(
                f"Stopping: {len(failures)} of the last {len(window)} replies from "
                f"{self.config.base_url or 'api.openai.com'} were not the JSON asked for. The "
                "server or model probably ignores response_format (structured output); check "
                "with `finmcq doctor`, pick a model that supports JSON output, then rerun with "
                "the same --out to resume."
            )
        # Nothing has ever worked and the first tries all failed to connect: a wrong
        # --base-url or a dead server. Say so now instead of after a full window of backoffs.
        early = self._successes == 0 and len(failures) >= 8 and len(failures) == len(window)
        if early and common in ("connection", "timeout"):
            self._fail_fatal(
                f"Cannot reach {self.config.base_url or 'api.openai.com'}: the first "
                f"{len(failures)} requests all failed ({common}). Check --base-url (it should "
                "end with /v1) and that the server is running (`finmcq doctor`); nothing was "
                "lost, rerun with the same --out to resume."
            )
        if len(window) < (window.maxlen or 0):
            return
        if len(failures) / len(window) >= self.config.breaker_failure_ratio:
            self._fail_fatal(
                f"Stopping: {len(failures)} of the last {len(window)} requests failed (mostly "
                f"{common}) at {self.config.base_url or 'api.openai.com'}. The server looks down "
                "or is refusing us; check it (`finmcq doctor`), then rerun with the same --out "
                "to resume: replies received so far are saved."
            )

    def _fail_fatal(self, message: str) -> NoReturn:
        if self._fatal is None:
            self._fatal = LLMFatalError(message)
            self._fatal_event.set()
            log.error(message)
            self.store.add_event("fatal", stage=None, item_id=None, detail=message)
        raise self._fatal

    def _retry_event(self, request: LLMRequest[Any], cause: str, detail: str, attempt: int) -> None:
        self.meter.stage(request.stage).retries[cause] += 1
        log.info("retry %s item=%s attempt=%d cause=%s: %s", request.stage, request.item_id,
                 attempt, cause, detail)
        self.store.add_event(f"retry:{cause}", stage=request.stage, item_id=request.item_id,
                             detail=f"attempt {attempt}: {detail}")

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


NOTICE_WAIT_S = 5.0  # a Retry-After wait at least this long is logged and shown
NOTICE_EVERY_S = 10.0  # at most one notice on screen per this many seconds
LONG_WAIT_TRIP = 8  # over-cap waits in a row (no success between) that stop the run


def _print_notice(text: str) -> None:
    print(f"finmcq: {text}", file=sys.stderr, flush=True)


def _encode(body: dict[str, Any], schema_name: str) -> tuple[bytes, str]:
    """The wire bytes of ``body``, and its audit text for the store: the same JSON, except
    that ``response_format`` names the reply schema instead of holding it.

    Both come from one encoding of the rest of the body (the messages are most of it), with
    ``response_format`` written last.
    """
    rf = body.get("response_format")
    if rf is None:
        text = json.dumps(body, ensure_ascii=False)
        return text.encode("utf-8"), text
    rest = json.dumps({k: v for k, v in body.items() if k != "response_format"},
                      ensure_ascii=False)
    head = rest[:-1] + (', "response_format": ' if len(rest) > 2 else '"response_format": ')
    wire = head + json.dumps(rf, ensure_ascii=False) + "}"
    audit = head + json.dumps({"type": rf["type"], "schema": schema_name}) + "}"
    return wire.encode("utf-8"), audit


def _decode_completion(body: bytes, content_type: str | None) -> Any:
    """A 2xx body as JSON, or an InvalidReply naming how it is broken."""
    try:
        return decode_json_body(body, content_type)
    except BrokenBody as exc:
        raise InvalidReply(exc.cause, str(exc)) from None


def _first_choice(completion: Any) -> tuple[str | None, str | None]:
    """Content and finish_reason of the first choice of a raw Chat Completions reply.

    Every way the envelope can be unusable is an InvalidReply with its own cause.
    """
    if not isinstance(completion, dict):
        raise InvalidReply("malformed_reply",
                           f"the reply is JSON but not an object ({type(completion).__name__})")
    if "choices" not in completion:
        error = completion.get("error")
        if error:  # some servers send an error object with status 200
            detail = error.get("message") if isinstance(error, dict) else error
            raise InvalidReply("error_body", f"the server sent an error with status 200: "
                               f"{str(detail)[:200]}")
        raise InvalidReply("no_choices", "the reply has no 'choices'")
    choices = completion["choices"]
    if not isinstance(choices, list) or not choices:
        raise InvalidReply("empty_choices",
                           f"the reply's 'choices' is {json.dumps(choices)[:40]}")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise InvalidReply("malformed_reply", "choices[0] is not an object")
    finish_reason = choice.get("finish_reason")
    message = choice.get("message")
    if not isinstance(message, dict):
        raise InvalidReply("no_message", f"choices[0].message is {json.dumps(message)[:40]}")
    refusal = message.get("refusal")
    if refusal:
        raise InvalidReply("refusal", f"the model refused: {str(refusal)[:200]}")
    content = message.get("content")
    if finish_reason == "content_filter":
        raise InvalidReply("content_filter", "the provider's content filter withheld the reply "
                           "(finish_reason=content_filter)")
    if content is not None and not isinstance(content, str):
        raise InvalidReply("malformed_reply",
                           f"choices[0].message.content is a {type(content).__name__}")
    return content, finish_reason if isinstance(finish_reason, str) else None


def reasoning_tokens(usage: Mapping[str, Any]) -> int:
    """Hidden reasoning tokens of a reply (``usage.completion_tokens_details``); 0 if absent."""
    details = usage.get("completion_tokens_details") or {}
    return int(details.get("reasoning_tokens") or 0) if isinstance(details, dict) else 0


def is_response_format_error(message: str) -> bool:
    text = message.lower()
    return "response_format" in text or "json_schema" in text or "structured" in text
