"""Server profiles of the fake LLM: how real OpenAI-compatible servers differ.

``finmcq fake-llm --profile NAME`` (``FakeConfig.profile``) makes the fake validate requests,
bill and answer the way one kind of server does, as its documentation describes:

* ``openai`` – the default: accepts every request shape, no reasoning tokens.
* ``openai-reasoning`` – the GPT-5 family / o-series on the OpenAI API: 400
  ``unsupported_parameter`` for ``max_tokens``, 400 ``unsupported_value`` for a temperature or
  top_p other than 1 and for a reasoning_effort the model lacks (OpenAI's error object with
  ``param`` and ``code``); hidden reasoning tokens billed in
  ``usage.completion_tokens_details.reasoning_tokens`` and taken from ``max_completion_tokens``.
* ``azure`` – Azure OpenAI's v1 endpoint (``/openai/v1``) with a reasoning deployment under a
  name of the user's choosing: validates like ``openai-reasoning`` for every model name.
* ``vllm`` – ``vllm serve``: both limit names, json_schema, vLLM's flat error object, no token
  details in usage, a Hugging Face model id.
* ``ollama`` – Ollama's ``/v1``: ``max_tokens`` only (unknown fields are ignored, as Go's JSON
  decoder does), tagged model names, no token details.
* ``llamacpp`` – llama.cpp's server: any model name is answered by the one loaded model.
* ``anthropic`` – Anthropic's OpenAI SDK compatibility: ``response_format``, ``seed`` and
  ``reasoning_effort`` ignored, temperature capped at 1. With the schema only in the prompt,
  replies are JSON as Claude writes it: plain, fenced, or after a sentence; without it, prose.
* ``gemini`` – Gemini's OpenAI compatibility (``/v1beta/openai``): json_schema, reasoning_effort
  mapped to thinking (reasoning tokens billed), Google's error list on a bad value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Rejection = tuple[int, Any]  # HTTP status, JSON error body

_EFFORT_SHARE = {"none": 0.0, "minimal": 0.15, "low": 0.6, "medium": 1.5, "high": 3.0,
                 "xhigh": 5.0}
"""Reasoning tokens per visible token, per effort (the fake's stand-in for hidden thinking)."""


@dataclass(frozen=True)
class Profile:
    name: str
    models: tuple[str, ...] = ()  # served model ids (empty: FakeConfig's default list)
    any_model: bool = False  # every model name is answered (llama.cpp)
    reasoning: bool = False  # bills hidden reasoning tokens
    efforts: dict[str, tuple[str, ...]] | None = None  # model -> accepted reasoning_effort
    default_effort: str = "medium"
    ignores: tuple[str, ...] = ()  # request fields the server ignores
    ignored_limits: tuple[str, ...] = ()  # limit names it does not honour
    temperature_max: float | None = None
    usage_details: bool = True  # prompt/completion_tokens_details in usage
    validate: Callable[[Profile, dict[str, Any]], Rejection | None] | None = None
    claude_json: bool = False  # replies as Claude writes JSON asked for in the prompt

    def reject(self, body: dict[str, Any]) -> Rejection | None:
        return self.validate(self, body) if self.validate is not None else None

    def effective(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request as the server reads it: ignored fields gone, temperature capped."""
        out = {k: v for k, v in body.items() if k not in self.ignores}
        t = out.get("temperature")
        if self.temperature_max is not None and isinstance(t, int | float) and (
                t > self.temperature_max):
            out["temperature"] = self.temperature_max
        return out

    def limit(self, body: dict[str, Any]) -> int | None:
        for name in ("max_completion_tokens", "max_tokens"):
            value = body.get(name)
            if name not in self.ignored_limits and isinstance(value, int) and value > 0:
                return value
        return None

    def reasoning_tokens(self, body: dict[str, Any], visible: int, digest: str) -> int:
        if not self.reasoning:
            return 0
        effort = body.get("reasoning_effort") or self.default_effort
        share = _EFFORT_SHARE.get(str(effort), 1.5)
        jitter = 0.75 + int(digest[:4], 16) / 0xFFFF / 2  # 0.75-1.25, deterministic
        return round(visible * share * jitter) + (16 if share else 0)

    def usage(self, prompt: int, completion: int, reasoning: int) -> dict[str, Any]:
        usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                                 "total_tokens": prompt + completion}
        if self.usage_details:
            usage["prompt_tokens_details"] = {"cached_tokens": 0}
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        return usage

    def wrap(self, content: str, schema_name: str | None, digest: str) -> str:
        """Claude's ways of writing the JSON it was asked for in the prompt."""
        if not self.claude_json or schema_name is None:
            return content
        form = int(digest[4:6], 16) % 4
        if form == 0:
            return content
        if form == 1:
            return f"```json\n{content}\n```"
        if form == 2:
            return f"다음은 요청하신 형식의 답변입니다.\n\n```json\n{content}\n```"
        return f"요청하신 JSON입니다:\n{content}"


def _openai_error(message: str, param: str, code: str) -> Rejection:
    return 400, {"error": {"message": message, "type": "invalid_request_error",
                           "param": param, "code": code}}


def _quote_list(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def _validate_reasoning(profile: Profile, body: dict[str, Any]) -> Rejection | None:
    """What OpenAI answers a reasoning model's request that uses a non-reasoning shape."""
    model = str(body.get("model"))
    if "max_tokens" in body:
        return _openai_error("Unsupported parameter: 'max_tokens' is not supported with this "
                             "model. Use 'max_completion_tokens' instead.", "max_tokens",
                             "unsupported_parameter")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and value != 1:
            return _openai_error(f"Unsupported value: '{name}' does not support {float(value)} "
                                 "with this model. Only the default (1) value is supported.",
                                 name, "unsupported_value")
    effort = body.get("reasoning_effort")
    allowed = (profile.efforts or {}).get(model, _GPT5_EFFORTS)
    if effort is not None and effort not in allowed:
        return _openai_error(f"Unsupported value: '{effort}' is not supported with the "
                             f"'{model}' model. Supported values are: {_quote_list(allowed)}.",
                             "reasoning_effort", "unsupported_value")
    return None


def _validate_gemini(profile: Profile, body: dict[str, Any]) -> Rejection | None:
    effort = body.get("reasoning_effort")
    allowed = (profile.efforts or {}).get(str(body.get("model")), ())
    if effort is not None and effort not in allowed:
        return 400, [{"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                "message": f"Invalid reasoning_effort value: {effort}. "
                                "Supported values are: " + _quote_list(allowed) + "."}}]
    return None


_GPT5_EFFORTS = ("minimal", "low", "medium", "high")
_GPT51_EFFORTS = ("none", "low", "medium", "high")

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("openai"),
    Profile("openai-reasoning",
            models=("gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5.1", "o4-mini"),
            reasoning=True, validate=_validate_reasoning,
            efforts={"gpt-5": _GPT5_EFFORTS, "gpt-5-mini": _GPT5_EFFORTS,
                     "gpt-5-nano": _GPT5_EFFORTS, "gpt-5.1": _GPT51_EFFORTS,
                     "o4-mini": ("low", "medium", "high")}),
    Profile("azure", models=("finmcq-gpt5-mini", "prod-reasoning"), any_model=False,
            reasoning=True, validate=_validate_reasoning),
    Profile("vllm", models=("Qwen/Qwen2.5-14B-Instruct",), usage_details=False),
    Profile("ollama", models=("qwen2.5:14b", "llama3.1:8b"), usage_details=False,
            ignored_limits=("max_completion_tokens",)),
    Profile("llamacpp", models=("qwen2.5-14b-instruct-q4_k_m.gguf",), any_model=True,
            usage_details=False),
    Profile("anthropic", models=("claude-sonnet-4-5", "claude-haiku-4-5"),
            ignores=("response_format", "seed", "reasoning_effort"), temperature_max=1.0,
            usage_details=False, claude_json=True),
    Profile("gemini", models=("gemini-2.5-flash", "gemini-2.5-pro"), reasoning=True,
            validate=_validate_gemini,
            efforts={"gemini-2.5-flash": ("none", "minimal", "low", "medium", "high"),
                     "gemini-2.5-pro": ("minimal", "low", "medium", "high")}),
)}

PATH_PREFIXES: tuple[str, ...] = ("/v1", "/openai/v1", "/v1beta/openai")
"""Where the fake answers: OpenAI and most servers, Azure's v1 endpoint, Gemini's."""


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown fake profile {name!r}; one of "
                         f"{', '.join(PROFILES)}") from None


def error_json(rejection: Rejection) -> bytes:
    return json.dumps(rejection[1], ensure_ascii=False).encode("utf-8")
