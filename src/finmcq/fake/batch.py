"""A fake OpenAI Batch API for the fake LLM server: ``/v1/files`` and ``/v1/batches``.

Enough of the real API for finmcq's Batch mode and its tests:

* ``POST /v1/files`` (multipart, ``purpose=batch``), ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``;
* ``POST /v1/batches`` (``endpoint=/v1/chat/completions``, ``completion_window=24h``),
  ``GET /v1/batches`` (newest first, ``after`` / ``limit``), ``GET /v1/batches/{id}``,
  ``POST /v1/batches/{id}/cancel``;
* ``GET /_fake/batch/stats`` and ``POST /_fake/batch/config`` (JSON with any field of
  :class:`BatchSettings`) for tests and benchmarks.

Each line of an input file is answered by the same handler as ``/v1/chat/completions`` (same
reply builders, same fault injection, same per-body counters in ``/_fake/stats``), after a
configurable processing delay. Per line, a deterministic draw can instead *fail* it (an error-file
line carrying a 500 response) or *expire* it (an error-file line with code ``batch_expired``; the
batch then ends ``expired``, like a real batch whose 24 h window ran out). ``fail_batches`` makes
the next N batches fail validation as a whole.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from finmcq.fake.chat import chat
from finmcq.fake.state import STATE_KEY

TERMINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class BatchSettings:
    """How the fake Batch API behaves; change it at run time with ``POST /_fake/batch/config``."""

    delay_s: float = 0.2  # from creation to the results being ready
    rate_failed: float = 0.0  # per line: answered with a 500 in the error file
    rate_expired: float = 0.0  # per line: not run before the window "expired"
    fail_batches: int = 0  # the next N batches fail validation as a whole
    seed: int = 0


class BatchState:
    """Files, batches and counters of one fake server (touched only from its event loop)."""

    def __init__(self, settings: BatchSettings | None = None) -> None:
        self.settings = settings or BatchSettings()
        self.files: dict[str, dict[str, Any]] = {}
        self.content: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.counters: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()  # line body sha256 -> times run (drives the draws)
        self.tasks: set[asyncio.Task[None]] = set()

    def snapshot(self) -> dict[str, Any]:
        by_status = Counter(b["status"] for b in self.batches.values())
        return {**dict(self.counters), "batches_by_status": dict(by_status),
                "settings": dataclasses.asdict(self.settings)}

    def add_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        file_id = f"file-fake{uuid.uuid4().hex[:20]}"
        obj = {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
               "filename": filename, "purpose": purpose, "status": "processed"}
        self.files[file_id] = obj
        self.content[file_id] = data
        return obj


BATCH_KEY = web.AppKey("fake_batch_state", BatchState)


def _error(status: int, message: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None,
                      "code": code}}
    return web.json_response(body, status=status)


def _draw(settings: BatchSettings, body: bytes, nth: int) -> str | None:
    """'failed', 'expired' or None for the ``nth`` run of this line body; deterministic."""
    if not settings.rate_failed and not settings.rate_expired:
        return None
    digest = hashlib.sha256(f"batch|{settings.seed}|{nth}|".encode() + body).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < settings.rate_failed:
        return "failed"
    if u < settings.rate_failed + settings.rate_expired:
        return "expired"
    return None


class _LineRequest:
    """Just what the chat-completions handler reads from a request: headers and body."""

    def __init__(self, headers: Any, body: bytes) -> None:
        self.headers = headers
        self._body = body

    async def read(self) -> bytes:
        return self._body


# --------------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------------


async def _upload(request: web.Request) -> web.Response:
    state = request.app[BATCH_KEY]
    form = await request.post()
    purpose = form.get("purpose")
    upload = form.get("file")
    if not isinstance(purpose, str) or upload is None or not hasattr(upload, "file"):
        return _error(400, "A multipart upload needs 'file' and 'purpose'.")
    data = upload.file.read()
    state.counters["files_uploaded"] += 1
    return web.json_response(state.add_file(data, upload.filename or "upload.jsonl", purpose))


async def _get_file(request: web.Request) -> web.Response:
    obj = request.app[BATCH_KEY].files.get(request.match_info["file_id"])
    if obj is None:
        return _error(404, f"No such File object: {request.match_info['file_id']}")
    return web.json_response(obj)


async def _file_content(request: web.Request) -> web.Response:
    data = request.app[BATCH_KEY].content.get(request.match_info["file_id"])
    if data is None:
        return _error(404, f"No such File object: {request.match_info['file_id']}")
    return web.Response(body=data, content_type="application/octet-stream")


async def _create_batch(request: web.Request) -> web.Response:
    state = request.app[BATCH_KEY]
    try:
        params = await request.json()
    except ValueError:
        return _error(400, "We could not parse the JSON body of your request.")
    file_id = params.get("input_file_id")
    if file_id not in state.files:
        return _error(400, f"No such File object: {file_id}")
    if params.get("endpoint") != "/v1/chat/completions":
        return _error(400, "The fake Batch API supports only /v1/chat/completions.")
    if params.get("completion_window") != "24h":
        return _error(400, "completion_window must be 24h.")
    now = int(time.time())
    batch: dict[str, Any] = {
        "id": f"batch_fake{uuid.uuid4().hex[:20]}", "object": "batch",
        "endpoint": "/v1/chat/completions", "errors": None, "input_file_id": file_id,
        "completion_window": "24h", "status": "validating", "output_file_id": None,
        "error_file_id": None, "created_at": now, "in_progress_at": None,
        "expires_at": now + 86400, "finalizing_at": None, "completed_at": None,
        "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": params.get("metadata"),
    }
    state.batches[batch["id"]] = batch
    state.counters["batches_created"] += 1
    task = asyncio.create_task(_process(request.app, batch["id"], request.headers.copy()))
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)
    return web.json_response(batch)


async def _get_batch(request: web.Request) -> web.Response:
    state = request.app[BATCH_KEY]
    state.counters["batch_retrieves"] += 1
    batch = state.batches.get(request.match_info["batch_id"])
    if batch is None:
        return _error(404, f"No such batch: {request.match_info['batch_id']}")
    return web.json_response(batch)


async def _list_batches(request: web.Request) -> web.Response:
    state = request.app[BATCH_KEY]
    ordered = sorted(state.batches.values(), key=lambda b: b["created_at"], reverse=True)
    after = request.query.get("after")
    if after:
        ids = [b["id"] for b in ordered]
        ordered = ordered[ids.index(after) + 1:] if after in ids else []
    limit = max(1, min(100, int(request.query.get("limit", "20"))))
    page = ordered[:limit]
    return web.json_response({
        "object": "list", "data": page, "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None, "has_more": len(ordered) > limit,
    })


async def _cancel_batch(request: web.Request) -> web.Response:
    batch = request.app[BATCH_KEY].batches.get(request.match_info["batch_id"])
    if batch is None:
        return _error(404, f"No such batch: {request.match_info['batch_id']}")
    if batch["status"] in ("validating", "in_progress"):
        batch["status"] = "cancelling"
        batch["cancelling_at"] = int(time.time())
    return web.json_response(batch)


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[BATCH_KEY].snapshot())


async def _configure(request: web.Request) -> web.Response:
    state = request.app[BATCH_KEY]
    changes = await request.json()
    known = {f.name for f in dataclasses.fields(BatchSettings)}
    unknown = set(changes) - known
    if unknown:
        return _error(400, f"unknown batch settings: {sorted(unknown)}")
    state.settings = dataclasses.replace(state.settings, **changes)
    return web.json_response(dataclasses.asdict(state.settings))


# --------------------------------------------------------------------------------------------
# Processing
# --------------------------------------------------------------------------------------------


async def _process(app: web.Application, batch_id: str, headers: Any) -> None:
    """Run a batch after the configured delay: every line through the chat handler."""
    state = app[BATCH_KEY]
    settings = state.settings
    batch = state.batches[batch_id]
    await asyncio.sleep(settings.delay_s / 2)
    now = int(time.time())
    if batch["status"] == "cancelling":
        batch.update(status="cancelled", cancelled_at=now)
        return
    if settings.fail_batches > 0:
        state.settings = dataclasses.replace(settings, fail_batches=settings.fail_batches - 1)
        state.counters["batches_failed"] += 1
        batch.update(status="failed", failed_at=now, errors={"object": "list", "data": [{
            "code": "fake_validation_failure", "message": "The fake failed this batch on purpose.",
            "param": None, "line": None}]})
        return
    batch.update(status="in_progress", in_progress_at=now)
    fake_state = app[STATE_KEY]
    output: list[bytes] = []
    errors: list[bytes] = []
    expired = 0
    lines = state.content[batch["input_file_id"]].splitlines()
    batch["request_counts"]["total"] = len(lines)
    for n, raw in enumerate(lines):
        if not raw.strip():
            continue
        if n % 200 == 199:
            await asyncio.sleep(0)  # a big batch must not stall the server's other requests
        state.counters["lines_processed"] += 1
        try:
            line = json.loads(raw)
        except ValueError:
            line = {"custom_id": None, "body": None}
        custom_id = line.get("custom_id")
        body = json.dumps(line.get("body"), ensure_ascii=False).encode("utf-8")
        digest = hashlib.sha256(body).hexdigest()
        nth = state.seen[digest]
        state.seen[digest] += 1
        request_id = f"req_fake{uuid.uuid4().hex[:16]}"
        fault = _draw(settings, body, nth)
        if fault == "expired":
            expired += 1
            state.counters["lines_expired"] += 1
            errors.append(_jsonl({"id": f"batch_req_{request_id}", "custom_id": custom_id,
                                  "response": None, "error": {
                                      "code": "batch_expired",
                                      "message": "This request could not be executed before "
                                                 "the completion window expired."}}))
            continue
        if fault == "failed":
            status, payload = 500, {"error": {"message": "The server had an error (fake batch).",
                                              "type": "server_error", "param": None,
                                              "code": None}}
        else:
            response = await chat(_LineRequest(headers, body), fake_state,  # type: ignore[arg-type]
                                  fake_state.config)
            status, payload = response.status, json.loads(response.body)  # type: ignore[arg-type]
        entry = {"id": f"batch_req_{request_id}", "custom_id": custom_id,
                 "response": {"status_code": status, "request_id": request_id, "body": payload},
                 "error": None}
        if status == 200:
            state.counters["lines_succeeded"] += 1
            batch["request_counts"]["completed"] += 1
            output.append(_jsonl(entry))
        else:
            state.counters["lines_failed"] += 1
            batch["request_counts"]["failed"] += 1
            errors.append(_jsonl(entry))
    await asyncio.sleep(settings.delay_s / 2)
    batch.update(status="finalizing", finalizing_at=int(time.time()))
    if output:
        batch["output_file_id"] = state.add_file(b"".join(output), f"{batch_id}_output.jsonl",
                                                 "batch_output")["id"]
    if errors:
        batch["error_file_id"] = state.add_file(b"".join(errors), f"{batch_id}_error.jsonl",
                                                "batch_output")["id"]
    if batch["status"] == "cancelling":
        batch.update(status="cancelled", cancelled_at=int(time.time()))
    elif expired:
        batch.update(status="expired", expired_at=int(time.time()))
    else:
        batch.update(status="completed", completed_at=int(time.time()))


def _jsonl(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n"


def add_batch_routes(app: web.Application, settings: BatchSettings | None = None) -> None:
    """Register the Batch API routes on ``app`` (before any catch-all ``/v1/...`` route)."""
    app[BATCH_KEY] = BatchState(settings)
    app.router.add_post("/v1/files", _upload)
    app.router.add_get("/v1/files/{file_id}", _get_file)
    app.router.add_get("/v1/files/{file_id}/content", _file_content)
    app.router.add_post("/v1/batches", _create_batch)
    app.router.add_get("/v1/batches", _list_batches)
    app.router.add_get("/v1/batches/{batch_id}", _get_batch)
    app.router.add_post("/v1/batches/{batch_id}/cancel", _cancel_batch)
    app.router.add_get("/_fake/batch/stats", _stats)
    app.router.add_post("/_fake/batch/config", _configure)


# --------------------------------------------------------------------------------------------
# Client helpers for tests and benchmarks
# --------------------------------------------------------------------------------------------


def batch_stats(server_url: str) -> dict[str, Any]:
    """``GET /_fake/batch/stats`` of the fake at ``server_url`` (``http://HOST:PORT``)."""
    import urllib.request

    with urllib.request.urlopen(f"{server_url}/_fake/batch/stats", timeout=10) as r:
        data: dict[str, Any] = json.loads(r.read())
        return data


def configure_batch(server_url: str, **changes: Any) -> dict[str, Any]:
    """``POST /_fake/batch/config``: change :class:`BatchSettings` fields at run time."""
    import urllib.request

    req = urllib.request.Request(f"{server_url}/_fake/batch/config", method="POST",
                                 data=json.dumps(changes).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        data: dict[str, Any] = json.loads(r.read())
        return data
