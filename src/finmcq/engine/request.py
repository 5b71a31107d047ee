"""What the engine is asked and how to reach the server: the request side of a call.

* :class:`EngineConfig`: base URL, key, model(s), limits and retry settings (CLI or TOML);
* :class:`LLMRequest` (what a stage asks) and :class:`LLMResult` (what it gets back);
* :class:`LLMFatalError` (the run stops) and :class:`LLMCallFailed` (one request gave up);
* :func:`request_key`: the cache key, a hash of the *logical* request;
* :func:`_encode`: a wire body's bytes and its audit text for the store, from one encoding.

The engine itself (``engine/client.py``) sends these; this module imports nothing of it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlparse

from pydantic import BaseModel

from finmcq.engine.schema import model_schema_json
from finmcq.errors import ConfigError, FinmcqError

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
