"""``POST /v1/chat/completions`` of the fake: validate, draw a fault, build, corrupt, bill.

The reply content depends only on the canonical request JSON (sorted keys) and the server seed
(:mod:`finmcq.fake.replies`); faults are drawn per arrival (:mod:`finmcq.fake.faults`), defects
per reply in defect mode (:mod:`finmcq.fake.defects`), and exam mode answers eval questions
(:mod:`finmcq.fake.examinee`). The Batch API (:mod:`finmcq.fake.batch`) answers each line of a
batch with :func:`chat` too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from aiohttp import web

from finmcq.fake.config import BODY_FAULTS, ENVELOPE_FAULTS, FakeConfig
from finmcq.fake.defects import Corruption, corrupt_draft, corrupt_solution, draw
from finmcq.fake.examinee import ExamReply, exam_reply
from finmcq.fake.faults import broken_reply, draw_fault
from finmcq.fake.profiles import error_json
from finmcq.fake.replies import (
    SCHEMA_NAMES,
    ReplyContext,
    build_reply,
    context_for,
    extract_item,
    to_prose,
)
from finmcq.fake.responses import authorized, json_reply, model_not_found, openai_error
from finmcq.fake.state import STATE_KEY, FakeState
from finmcq.fake.wire import in_schema_order, request_schema


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


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.enter()
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        config = state.config  # read once: FakeLLMServer.configure may swap it meanwhile
        response = await chat(request, state, config)
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


async def chat(request: web.Request, state: FakeState, config: FakeConfig) -> web.Response:
    denied = authorized(request, config)
    if denied is not None:
        return denied
    raw = await request.read()
    state.recent.append(raw)
    try:
        body = json.loads(raw)
    except ValueError:
        return openai_error(400, "We could not parse the JSON body of your request.",
                            "invalid_request_error")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return openai_error(400, "'messages' is a required property", "invalid_request_error",
                            param="messages")
    model = body.get("model")
    server = config.server_profile  # how a real server of this kind validates (profiles.py)
    if model not in config.models and not server.any_model:
        return model_not_found(model)
    rejected = server.reject(body)
    if rejected is not None:
        return web.Response(body=error_json(rejected), status=rejected[0],
                            content_type="application/json")
    body = server.effective(body)  # ignored fields dropped, temperature capped
    if body.get("stream"):
        return openai_error(400, "stream=true is not supported by the fake server",
                            "invalid_request_error", param="stream")
    rf = body.get("response_format")
    if config.reject_json_schema and isinstance(rf, dict) and rf.get("type") == "json_schema":
        return openai_error(400, "response_format json_schema is not supported",
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
        return openai_error(
            429, "Rate limit reached for requests (fake). Please try again later.",
            "requests", "rate_limit_exceeded", headers=retry_headers,
        )
    if fault == "503":
        return openai_error(503, "The engine is currently overloaded, please try again later.",
                            "server_error", headers=retry_headers)
    if fault == "500":
        return openai_error(500, "The server had an error while processing your request. Sorry "
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
    return json_reply(completion, headers=headers)
