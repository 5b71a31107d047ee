"""Reading a reply: the Chat Completions envelope checks and parsing into the reply model.

Every way a 2xx reply can be unusable (a broken body, no choices, a refusal, a content filter,
invalid JSON, a schema violation) is an :class:`InvalidReply` with its own ``cause``, which the
engine counts and retries. :func:`reasoning_tokens` reads hidden reasoning from ``usage``;
:func:`is_response_format_error` tells a server's "no structured output" 400 from other errors.
Shared by the live engine, the Batch API engine and ``doctor``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from finmcq.engine.jsontext import json_text
from finmcq.engine.transport import BrokenBody, decode_json_body

T = TypeVar("T", bound=BaseModel)


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
