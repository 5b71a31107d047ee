"""The Batch API's JSONL files: request lines going in, result lines coming back.

* :func:`request_line`: one ``/v1/chat/completions`` request as an input-file line, with the
  request's cache key as its ``custom_id``;
* :func:`chunks`: queued lines split into input files within the API's per-file limits (lines
  and bytes);
* :func:`parse_result_line`: one output- or error-file line as ``(custom_id, ok, payload)``;
* :func:`missing_payload`: the error payload of a request a finished batch has no line for.

Pure functions over bytes and JSON: no I/O, no engine state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

log = logging.getLogger("finmcq.engine")

ENDPOINT: Final = "/v1/chat/completions"


@dataclass
class QueuedRequest:
    """A request waiting to be submitted: its cache key, where it comes from, its JSONL line."""

    key: str
    stage: str
    item_id: str | None
    line: bytes


def request_line(key: str, body: dict[str, Any]) -> bytes:
    """The input-file line of one chat completion request (``custom_id`` = cache key)."""
    return json.dumps({"custom_id": key, "method": "POST", "url": ENDPOINT,
                       "body": body}, ensure_ascii=False).encode("utf-8") + b"\n"


def missing_payload(status: str) -> str:
    """The error payload stored for a request that a batch ended ``status`` without."""
    return json.dumps({"cause": f"batch_{status}",
                       "message": f"the batch ended {status} without this request"})


def parse_result_line(raw: str) -> tuple[str, bool, str] | None:
    """(custom_id, ok, payload) of one output/error-file line; payload is the completion JSON
    when ok, else {"cause", "status_code", "message"}."""
    if not raw.strip():
        return None
    try:
        obj = json.loads(raw)
        key = str(obj["custom_id"])
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring an unreadable batch result line: %.200s", raw)
        return None
    response = obj.get("response") or {}
    error = obj.get("error")
    status = response.get("status_code")
    if status == 200 and not error and isinstance(response.get("body"), dict):
        return key, True, json.dumps(response["body"], ensure_ascii=False)
    if error:
        cause = str(error.get("code") or "batch_error")
        message = str(error.get("message") or "")
    else:
        body = response.get("body") or {}
        err = body.get("error") if isinstance(body, dict) else None
        cause = "rate_limit" if status == 429 else f"http_{status}"
        message = str(err.get("message") if isinstance(err, dict) else body)
    return key, False, json.dumps({"cause": cause, "status_code": status, "message": message},
                                  ensure_ascii=False)


def chunks(items: list[QueuedRequest], max_requests: int,
           max_bytes: int) -> Iterable[list[QueuedRequest]]:
    """Split into files of at most ``max_requests`` lines and ``max_bytes`` bytes."""
    chunk: list[QueuedRequest] = []
    size = 0
    for item in items:
        if chunk and (len(chunk) >= max_requests or size + len(item.line) > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item.line)
    if chunk:
        yield chunk
