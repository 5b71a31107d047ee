"""``finmcq doctor``: check a model endpoint before a long build, one tiny request per check.

A build sends thousands of requests; a wrong base URL, key, model name or a server without
structured output should show up in seconds, not after an hour. :func:`run_doctor` runs, in order:

1. **config** – the API key can be resolved (or is not needed for a local server) and the base
   URL is an http(s) URL; no request.
2. **connectivity** – ``GET /models``: the server answers and accepts the key.
3. **model** – every model the build would use is in that list.
4. **chat** – a 1-token chat completion with the build's model, shaped as the build shapes it
   (:mod:`finmcq.engine.shape`: ``max_completion_tokens`` or ``max_tokens``, temperature sent or
   not, ``reasoning_effort``); a 400 naming an unsupported parameter adapts the shape, as in a
   build. **request_shape** then reports the shape settled on.
5. **structured_output** – a small verify-stage request with ``response_format`` json_schema
   (the exact form the build sends); the reply must validate against the stage's reply model.
   If the server rejects json_schema, JSON mode (the build's fallback) is tried instead.

Each :class:`Check` carries a one-line ``fix`` when it is not ``ok``. A check whose prerequisite
failed is ``skip`` rather than a second, confusing failure. Requests go through the official
``openai`` SDK with no SDK retries and a short timeout; the API key never appears in a result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlparse

import openai

from finmcq.config import BuildSettings
from finmcq.engine.capabilities import CapabilityTable

# The engine's own reply parser and rejection heuristic, so that the doctor judges a reply
# exactly as a build would.
from finmcq.engine.client import (
    EngineConfig,
    InvalidReply,
    is_response_format_error,
    parse_reply,
)
from finmcq.engine.runlog import redact, register_secret
from finmcq.engine.schema import response_format_json_schema, schema_instruction
from finmcq.engine.shape import RequestShaper
from finmcq.errors import ConfigError
from finmcq.records import LETTERS, BlindSolve
from finmcq.stages.base import load_prompt

Status = Literal["ok", "warn", "fail", "skip"]

DOCTOR_TIMEOUT_S = 30.0
"""Upper bound on each doctor request; a build's own ``timeout_s`` applies when shorter."""

STRUCTURED_MAX_TOKENS = 400
"""Room for a BlindSolve reply (1–3 sentences of reasoning and a letter)."""

# A question any model answers in one line; only the shape of the reply is checked.
_PROBE_ITEM: dict[str, object] = {
    "task": "verify",
    "question": "시장 금리가 오르면 이미 발행된 고정금리 채권의 가격은 일반적으로 어떻게 되는가?",
    "options": dict(zip(LETTERS, (
        "하락한다", "상승한다", "변하지 않는다", "액면가로 고정된다", "두 배가 된다",
        "0이 된다", "만기가 짧아진다",
    ), strict=True)),
}


@dataclass(frozen=True)
class Check:
    """The result of one doctor check: what was found and, unless ok, what to do."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def run_doctor(settings: BuildSettings,
               client_factory: Callable[[EngineConfig, str], openai.OpenAI] | None = None
               ) -> list[Check]:
    """Check ``settings``' endpoint: config, connectivity, model, chat, structured output.

    ``client_factory`` (tests) builds the SDK client from the engine config and the key.
    """
    config = settings.engine_config()
    checks: list[Check] = []
    key_check, api_key = _check_config(config)
    checks.append(key_check)
    if api_key is None:
        return checks + _skipped(("connectivity", "model", "chat", "request_shape",
                                           "structured_output"),
                                 "the configuration is not usable")
    register_secret(api_key)  # error texts from the server may quote it
    timeout = min(config.timeout_s, DOCTOR_TIMEOUT_S)
    client = (client_factory or _default_client)(config, api_key)
    where = config.base_url or "https://api.openai.com/v1"
    models = sorted({config.model, *config.stage_models.values()})
    try:
        connectivity, listed = _check_connectivity(client, config, where, timeout)
        checks.append(connectivity)
        if connectivity.failed:
            return checks + _skipped(("model", "chat", "request_shape", "structured_output"),
                                     "the server could not be used")
        model_check = _check_models(models, listed, where)
        checks.append(model_check)
        shaper = RequestShaper(CapabilityTable.load(config.capabilities), config.base_url,
                               effort=config.reasoning_effort,
                               stage_efforts=config.stage_reasoning_efforts)
        chat = _check_chat(client, shaper, config, where, timeout)
        checks.append(chat)
        if chat.failed:
            return checks + _skipped(("request_shape", "structured_output"),
                                     "the chat request failed")
        if model_check.failed and models == [config.model]:
            # llama.cpp answers every model name with its one loaded model: not a failure.
            checks[checks.index(model_check)] = Check(
                "model", "warn", f"{model_check.detail}, but the server answers chat requests "
                f"for {config.model!r}", "Servers such as llama.cpp answer any model name with "
                "the model they loaded; check that it is the one you mean")
        checks.append(_check_shape(shaper, config))
        checks.append(_check_structured(client, shaper, config, where, timeout))
    finally:
        client.close()
    return checks


def render_checks(checks: list[Check]) -> str:
    """One line per check (``ok``/``WARN``/``FAIL``/``skip``), each fix on the line below."""
    labels = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
    lines: list[str] = []
    for check in checks:
        lines.append(f"{labels[check.status]}  {check.name}: {check.detail}")
        if check.fix and check.status != "ok":
            lines.append(f"      fix: {check.fix}")
    failed = sum(c.failed for c in checks)
    lines.append("doctor: all checks passed" if not failed else
                 f"doctor: {failed} check(s) failed; fix them before a long run")
    return "\n".join(lines)


# -- the checks ----------------------------------------------------------------------------


def _default_client(config: EngineConfig, api_key: str) -> openai.OpenAI:
    # max_retries=0: a doctor answers fast; the build has its own retry policy.
    return openai.OpenAI(api_key=api_key, base_url=config.base_url,
                         timeout=min(config.timeout_s, DOCTOR_TIMEOUT_S), max_retries=0)


def _skipped(names: tuple[str, ...], why: str) -> list[Check]:
    return [Check(name, "skip", f"not checked: {why}") for name in names]


def _check_config(config: EngineConfig) -> tuple[Check, str | None]:
    if config.base_url is not None:
        parsed = urlparse(config.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            return Check("config", "fail", f"--base-url {config.base_url!r} is not an http(s) URL",
                         "Give the server's OpenAI-compatible root, e.g. "
                         "http://localhost:8000/v1"), None
    try:
        api_key = config.resolve_api_key()
    except ConfigError:
        needs = config.base_url or "the OpenAI API"
        return Check("config", "fail",
                     f"no API key: ${config.api_key_env} is not set, and {needs} needs one",
                     f"export {config.api_key_env}=sk-... (or name another variable with "
                     "--api-key-env), or run `finmcq demo` to try finmcq offline"), None
    if os.environ.get(config.api_key_env, "").strip():
        source = f"API key from ${config.api_key_env}"
    else:
        source = "no API key needed for a local server"
    where = config.base_url or "the OpenAI API"
    return Check("config", "ok", f"{source}; endpoint {where}; model {config.model}"), api_key


def _check_connectivity(client: openai.OpenAI, config: EngineConfig, where: str,
                        timeout: float) -> tuple[Check, set[str] | None]:
    """GET /models. Returns the check and the model ids (None when the list is unavailable)."""
    try:
        page = client.models.list(timeout=timeout)
        listed = {m.id for m in page.data}
    except openai.APITimeoutError:
        return Check("connectivity", "fail", f"no answer from {where} within {timeout:g} s",
                     "Check --base-url and that the server is up (and not overloaded)"), None
    except openai.APIConnectionError as exc:
        return Check("connectivity", "fail", f"cannot reach {where}: {_cause(exc)}",
                     "Check --base-url (host, port, http/https; it usually ends with /v1) and "
                     "that the server is running"), None
    except openai.AuthenticationError as exc:
        return Check("connectivity", "fail",
                     f"the key in ${config.api_key_env} was rejected (401): {_message(exc)}",
                     f"Check the key in ${config.api_key_env} (or --api-key-env, --base-url)"
                     ), None
    except openai.PermissionDeniedError as exc:
        return Check("connectivity", "fail", f"access denied (403): {_message(exc)}",
                     "This key may not use this endpoint; check the key's project and "
                     "permissions"), None
    except openai.NotFoundError:
        # Some servers have no model list; the chat request below still tells us enough.
        return Check("connectivity", "warn", f"{where} answers but has no GET /models (404)",
                     "If the chat check fails too, check that --base-url ends with /v1"), None
    except openai.APIStatusError as exc:
        return Check("connectivity", "fail",
                     f"GET /models at {where} answered HTTP {exc.status_code}: {_message(exc)}",
                     "Check --base-url and the server's logs"), None
    return Check("connectivity", "ok", f"{where} answers; {len(listed)} model(s) listed"), listed


def _check_models(models: list[str], listed: set[str] | None, where: str) -> Check:
    if listed is None:
        return Check("model", "skip", "the server does not list its models; see the chat check")
    missing = [m for m in models if m not in listed]
    if not missing:
        return Check("model", "ok", f"{', '.join(models)} listed at {where}")
    shown = ", ".join(sorted(listed)[:10]) + (" ..." if len(listed) > 10 else "")
    return Check("model", "fail",
                 f"{', '.join(repr(m) for m in missing)} not listed at {where} "
                 f"(available: {shown or 'none'})",
                 "Use --model (or stage_models in --config) with a model the server serves")


def _send(client: openai.OpenAI, shaper: RequestShaper, base: dict[str, Any],
          timeout: float) -> Any:
    """One chat request in the model's shape; an unsupported-parameter 400 adapts the shape
    and sends it again (as a build does), any other error is raised."""
    for _ in range(6):  # every adaptation changes one parameter; a handful is all there is
        body = shaper.wire(json.loads(json.dumps(base)), "verify")
        try:
            reply = client.chat.completions.create(**body, timeout=timeout)
        except openai.BadRequestError as exc:
            if not shaper.adapt(str(base["model"]), body, 400, exc.body, _message(exc)):
                raise
            continue
        details = reply.usage.completion_tokens_details if reply.usage else None
        shaper.observe_reasoning(str(base["model"]), (details.reasoning_tokens or 0)
                                 if details is not None else 0)
        return reply
    raise RuntimeError("unreachable: the request shape kept changing")  # pragma: no cover


def _check_shape(shaper: RequestShaper, config: EngineConfig) -> Check:
    detail = shaper.describe(config.model, "verify")
    changes = shaper.changes().get(config.model)
    if changes:
        detail += f" (adapted to the server: {'; '.join(changes)})"
    return Check("request_shape", "ok", detail)


def _check_chat(client: openai.OpenAI, shaper: RequestShaper, config: EngineConfig,
                where: str, timeout: float) -> Check:
    try:
        reply = _send(client, shaper, {"model": config.model, "max_tokens": 1, "temperature": 0,
                                       "messages": [{"role": "user", "content": "ping"}]},
                      timeout)
    except openai.NotFoundError as exc:
        return Check("chat", "fail", f"model {config.model!r} unknown at {where} (404): "
                     f"{_message(exc)}", "Use --model with a model the server serves")
    except openai.APITimeoutError:
        return Check("chat", "fail", f"no chat reply within {timeout:g} s",
                     "The server or model is too slow or stuck; check it before a long run")
    except openai.APIConnectionError as exc:
        return Check("chat", "fail", f"the chat request failed: {_cause(exc)}",
                     "Check that the server is running")
    except openai.APIStatusError as exc:
        return Check("chat", "fail", f"a 1-token chat request answered HTTP {exc.status_code}: "
                     f"{_message(exc)}", "Check --model and the server's logs")
    if not reply.choices:
        return Check("chat", "fail", "the chat reply has no choices",
                     "The server is not OpenAI-compatible enough for finmcq")
    return Check("chat", "ok", f"{config.model} answers a 1-token request "
                 f"(finish_reason={reply.choices[0].finish_reason})")


def _check_structured(client: openai.OpenAI, shaper: RequestShaper, config: EngineConfig,
                      where: str, timeout: float) -> Check:
    messages = [dict(m) for m in load_prompt("verify").messages(_PROBE_ITEM)]
    if shaper.initial_mode(config.model, "json_schema") == "prompt":
        return _check_prompt_only(client, shaper, config, messages, timeout)
    schema_format = response_format_json_schema(BlindSolve)
    try:
        content, finish = _ask(client, shaper, config, messages, schema_format, timeout)
    except openai.BadRequestError as exc:
        if not is_response_format_error(_message(exc)):
            return Check("structured_output", "fail",
                         f"the structured request was rejected (400): {_message(exc)}",
                         "Check --model; finmcq needs a model that can answer in JSON")
        return _check_json_mode(client, shaper, config, messages, timeout, _message(exc))
    except (openai.APIConnectionError, openai.APIStatusError) as exc:
        return Check("structured_output", "fail", f"the structured request failed: {_cause(exc)}",
                     "Retry `finmcq doctor`; if it persists, check the server")
    problem = _reply_problem(content, finish)
    if problem is None:
        return Check("structured_output", "ok",
                     "response_format json_schema is supported; the reply validates")
    cause, text = problem
    fix = ("Use a server/model with structured output (OpenAI, vLLM, Ollama, llama.cpp with a "
           "JSON grammar); finmcq retries every reply that does not validate. If this server "
           "ignores response_format (as Anthropic's OpenAI compatibility does), say so in a "
           "--capabilities file: [[rule]] base_url = \"URL*\", response_format = \"ignored\"")
    if cause in ("invalid_json", "empty_reply"):
        return Check("structured_output", "fail",
                     f"the server ignores response_format json_schema: {text}", fix)
    return Check("structured_output", "fail",
                 f"the reply does not follow the requested json_schema: {text}", fix)


def _check_prompt_only(client: openai.OpenAI, shaper: RequestShaper, config: EngineConfig,
                       messages: list[dict[str, str]], timeout: float) -> Check:
    """The capability table says the server ignores response_format: the schema travels in the
    prompt from the first request, as in a build."""
    prompt = [dict(m) for m in messages]
    prompt[0]["content"] += schema_instruction(BlindSolve)
    try:
        content, finish = _ask(client, shaper, config, prompt, None, timeout)
    except (openai.APIConnectionError, openai.APIStatusError) as exc:
        return Check("structured_output", "fail", f"the structured request failed: {_cause(exc)}",
                     "Retry `finmcq doctor`; if it persists, check the server")
    problem = _reply_problem(content, finish)
    if problem is None:
        return Check("structured_output", "ok", "the server ignores response_format (capability "
                     "table); with the schema in the prompt the reply validates")
    return Check("structured_output", "fail",
                 f"with the schema in the prompt the reply does not validate: {problem[1]}",
                 "Use a model that follows JSON instructions, or a server with structured "
                 "output")


def _check_json_mode(client: openai.OpenAI, shaper: RequestShaper, config: EngineConfig,
                     messages: list[dict[str, str]], timeout: float, why: str) -> Check:
    """json_schema was rejected: try the build's fallback, JSON mode + the schema in the prompt."""
    fallback = [dict(m) for m in messages]
    fallback[0]["content"] += schema_instruction(BlindSolve)
    try:
        content, finish = _ask(client, shaper, config, fallback, {"type": "json_object"},
                               timeout)
    except (openai.APIConnectionError, openai.APIStatusError) as exc:
        return Check("structured_output", "fail",
                     f"json_schema rejected ({why}) and JSON mode failed too: {_cause(exc)}",
                     "Use a server/model that supports response_format")
    problem = _reply_problem(content, finish)
    if problem is None:
        return Check("structured_output", "warn",
                     f"json_schema rejected ({why}); JSON mode works and the reply validates",
                     "finmcq falls back to JSON mode by itself; expect a few more invalid "
                     "replies (retried) than with json_schema")
    return Check("structured_output", "fail",
                 f"json_schema rejected ({why}) and JSON mode replies do not validate: "
                 f"{problem[1]}",
                 "Use a server/model that supports response_format")


def _ask(client: openai.OpenAI, shaper: RequestShaper, config: EngineConfig,
         messages: list[dict[str, str]], response_format: dict[str, Any] | None,
         timeout: float) -> tuple[str | None, str | None]:
    base: dict[str, Any] = {"model": config.model, "messages": messages,
                            "max_tokens": STRUCTURED_MAX_TOKENS, "temperature": 0}
    if response_format is not None:
        base["response_format"] = response_format
    reply = _send(client, shaper, base, timeout)
    if not reply.choices:
        return None, None
    choice = reply.choices[0]
    return choice.message.content, choice.finish_reason


def _reply_problem(content: str | None, finish: str | None) -> tuple[str, str] | None:
    """None when ``content`` is a valid BlindSolve reply, else (the engine's cause, text)."""
    if finish == "length":
        return "truncated", f"the reply was cut off at {STRUCTURED_MAX_TOKENS} tokens"
    try:
        parse_reply(content, BlindSolve)
    except InvalidReply as exc:
        shown = json.dumps((content or "")[:80], ensure_ascii=False)
        return exc.cause, f"{exc} (reply began {shown})"
    return None


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return redact(str(err["message"]).rstrip("."))
    return redact(str(exc.message).rstrip("."))


def _cause(exc: openai.APIError) -> str:
    """The root cause of a transport error, e.g. 'Connection refused', without the key."""
    root: BaseException = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(root) or type(root).__name__
    if isinstance(exc, openai.APIStatusError):
        text = f"HTTP {exc.status_code}: {_message(exc)}"
    return redact(text)
