"""The Batch API engine: :class:`BatchEngine` submits, polls and collects.

``call()`` answers from the cache or from a downloaded result line, and otherwise queues the
request; the collector task turns queued requests into input files and batches, the poller task
waits for batches to end and ingests their results. The file format lives in
:mod:`~finmcq.engine.batch.jsonl`, what was sent where in :mod:`~finmcq.engine.batch.ledger`,
the settings in :mod:`~finmcq.engine.batch.options`; the overview is in
:mod:`finmcq.engine.batch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from typing import Any, TypeVar

import openai
from pydantic import BaseModel

from finmcq.engine.batch.jsonl import (
    ENDPOINT,
    QueuedRequest,
    chunks,
    missing_payload,
    parse_result_line,
    request_line,
)
from finmcq.engine.batch.ledger import BatchLedger
from finmcq.engine.batch.options import BatchOptions, BatchPriceTable
from finmcq.engine.client import (
    EngineConfig,
    InvalidReply,
    LLMCallFailed,
    LLMEngine,
    LLMFatalError,
    LLMRequest,
    LLMResult,
    _first_choice,
    is_response_format_error,
    parse_reply,
)
from finmcq.engine.cost import PriceTable
from finmcq.engine.store import RunStore

log = logging.getLogger("finmcq.engine")

T = TypeVar("T", bound=BaseModel)

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_FATAL_STATUS = (401, 403, 404)


class BatchEngine(LLMEngine):
    """:class:`LLMEngine` whose uncached requests travel through the OpenAI Batch API."""

    GROUP_COMMIT = False

    def __init__(self, config: EngineConfig, store: RunStore, prices: PriceTable,
                 options: BatchOptions | None = None) -> None:
        super().__init__(config, store, prices)
        self.prices = BatchPriceTable.of(prices)  # every recorded cost at the batch rate
        self.options = options or BatchOptions.from_env()
        self.ledger = BatchLedger(store)
        self._queue: dict[str, list[QueuedRequest]] = {}  # model -> requests not yet submitted
        self._queued_keys: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._active: dict[str, float] = {}  # batch id -> submitted at (epoch s)
        self._last_enqueue = 0.0
        self._first_enqueue: float | None = None
        self._queue_event = asyncio.Event()
        self._active_event = asyncio.Event()
        self._ready: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.counters = {"batches_submitted": 0, "requests_submitted": 0, "resubmitted": 0,
                         "reattached_batches": 0, "batches_ingested": 0}

    # -- lifecycle -------------------------------------------------------------------------

    async def _started(self) -> None:
        if self._ready is None:
            self._ready = asyncio.Event()
            self._tasks = [asyncio.create_task(self._start()),
                           asyncio.create_task(self._collector()),
                           asyncio.create_task(self._poller())]
        await self._ready.wait()
        if self._fatal is not None:
            raise self._fatal

    async def _start(self) -> None:
        """Re-attach to batches an earlier session left unfinished (see module doc)."""
        assert self._ready is not None
        try:
            for input_file_id, batch_id, status, created_at in self.ledger.unfinished():
                if batch_id is None:
                    batch_id = await self._find_batch_for(input_file_id, created_at)
                    if batch_id is None:
                        self.ledger.abandon(input_file_id)
                        continue
                    self.ledger.record_batch(input_file_id, batch_id, "validating")
                self._active[batch_id] = created_at
                self.counters["reattached_batches"] += 1
                log.info("re-attached to batch %s (%s) from an earlier session", batch_id, status)
            self._active_event.set()
        except LLMFatalError:
            pass
        except openai.APIError as exc:
            self._fail_all(f"Could not re-attach to this run's earlier batches: "
                           f"{self.redact(str(exc))}. Rerun later with the same --out; nothing "
                           "is lost")
        finally:
            self._ready.set()

    async def _find_batch_for(self, input_file_id: str, uploaded_at: float) -> str | None:
        """The provider's batch created from ``input_file_id`` (newest first; stops at older)."""
        async for batch in self._client.batches.list(limit=100):
            if batch.input_file_id == input_file_id:
                return str(batch.id)
            if batch.created_at < uploaded_at - 3600:
                break
        return None

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.ledger.close()
        await super().aclose()

    def batch_stats(self) -> dict[str, Any]:
        """Counters for the stats file: batches submitted, re-attached, resubmitted lines."""
        return {**self.counters, "ledger": self.ledger.counts()}

    # -- public API ------------------------------------------------------------------------

    async def call(self, request: LLMRequest[T]) -> LLMResult[T]:
        """Answer ``request`` from the cache or a Batch API job (see module doc)."""
        if self._fatal is not None:
            raise self._fatal
        await self._started()
        cfg = self.config
        model, temperature, max_tokens, key = self.resolve(request)
        usage = self.meter.stage(request.stage)
        invalid = resubmits = 0
        body: dict[str, Any] | None = None
        while True:
            if self._fatal is not None:
                raise self._fatal
            cached = self.store.get_response(key)
            if cached is not None:
                if body is None:  # only a reply this call did not wait for is a cache hit
                    usage.cache_hits += 1
                return LLMResult(
                    value=request.schema.model_validate_json(cached.parsed_json), key=key,
                    cached=body is None, prompt_tokens=cached.prompt_tokens,
                    completion_tokens=cached.completion_tokens,
                    cost_usd=0.0 if body is None else cached.cost_usd)
            found = self.ledger.result(key)
            if found is not None:
                ok, payload, batch_id = found
                body = body or self._body(request, model, temperature, max_tokens, self._mode)
                if ok:
                    outcome = self._use(request, key, model, body, payload, batch_id,
                                        invalid + resubmits + 1, usage)
                    if isinstance(outcome, LLMResult):
                        return outcome
                    invalid += 1
                    if invalid >= cfg.max_invalid:
                        usage.failed_calls += 1
                        raise LLMCallFailed(f"{request.stage}: no valid reply after {invalid} "
                                            f"tries ({outcome})", outcome.cause)
                else:
                    self.ledger.consume(key)
                    resubmits += 1
                    cause = self._on_line_error(request, payload, resubmits)
                    if resubmits > self.options.max_resubmits:
                        usage.failed_calls += 1
                        raise LLMCallFailed(f"{request.stage}: the Batch API failed this request "
                                            f"{resubmits} times ({cause})", cause)
                    self.counters["resubmitted"] += 1
            elif self.ledger.pending_batch_of(key) is not None or key in self._queued_keys:
                await self._wait(key)  # already submitted (maybe by an earlier session)
                continue
            body = self._body(request, model, temperature, max_tokens, self._mode)
            async with self.budget.hold(model, body):  # reserved until the result is here
                await self._submit_and_wait(request, key, model, body)

    # -- results ---------------------------------------------------------------------------

    def _use(self, request: LLMRequest[T], key: str, model: str, body: dict[str, Any],
             payload: str, batch_id: str, attempts: int, usage: Any) -> LLMResult[T] | InvalidReply:
        """Validate a downloaded reply like the engine does; record it (batch price) if valid."""
        self.ledger.consume(key)
        completion = json.loads(payload)
        try:
            content, finish_reason = _first_choice(completion)
            if finish_reason == "length":
                raise InvalidReply("truncated", "finish_reason=length: the reply was cut off")
            value = parse_reply(content, request.schema)
        except InvalidReply as exc:
            self._note(True)
            self._retry_event(request, exc.cause, str(exc), attempts)
            return exc
        self._note(True)
        submitted = self._active.get(batch_id) or self.ledger.created_at(batch_id) or time.time()
        latency = max(0.0, time.time() - submitted)
        return self._record(request, key, model, body, content or "", value, completion, latency,
                            attempts, usage)

    def _on_line_error(self, request: LLMRequest[Any], payload: str, attempt: int) -> str:
        """Classify a failed line: fatal (bad key, unknown model), a structured-output
        fallback, or a cause to resubmit."""
        info = json.loads(payload)
        status = info.get("status_code")
        message = self.redact(str(info.get("message", "")))
        cause = str(info.get("cause") or "batch_failed")
        if status in _FATAL_STATUS:
            self._fail_fatal(f"The Batch API answered HTTP {status} for a {request.stage} request "
                             f"at {self.config.base_url or 'api.openai.com'}: {message}. Check the "
                             "API key, --model and --base-url; rerun with the same --out to resume")
        if (status == 400 and is_response_format_error(message)
                and self.config.structured_output == "auto" and self._mode != "prompt"):
            self._mode = "json_object" if self._mode == "json_schema" else "prompt"
            log.warning("The Batch API rejected response_format (%s); falling back to %s.",
                        message, self._mode)
        self._retry_event(request, cause, message, attempt)
        return cause

    # -- submission ------------------------------------------------------------------------

    async def _submit_and_wait(self, request: LLMRequest[Any], key: str, model: str,
                               body: dict[str, Any]) -> None:
        if key not in self._queued_keys:
            line = request_line(key, body)
            self._queue.setdefault(model, []).append(
                QueuedRequest(key, request.stage, request.item_id, line))
            self._queued_keys.add(key)
            now = time.monotonic()
            self._last_enqueue = now
            if self._first_enqueue is None:
                self._first_enqueue = now
            self._queue_event.set()
        await self._wait(key)

    async def _wait(self, key: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(future)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await future
        finally:
            self.in_flight -= 1

    def _wake(self, keys: Iterable[str]) -> None:
        for key in keys:
            for future in self._waiters.pop(key, ()):
                if not future.done():
                    future.set_result(None)

    def _fail_all(self, message: str) -> None:
        """A fatal error in a background task: every waiting call raises it."""
        if self._fatal is None:
            self._fatal = LLMFatalError(message)
            log.error(message)
            self.store.add_event("fatal", stage=None, item_id=None, detail=message)
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(self._fatal)
        self._waiters.clear()

    async def _collector(self) -> None:
        """Submit queued requests once the burst that produced them is over."""
        opts = self.options
        while True:
            await self._queue_event.wait()
            while True:
                now = time.monotonic()
                quiet = now - self._last_enqueue
                waited = now - (self._first_enqueue or now)
                full = any(len(q) >= opts.max_requests_per_file for q in self._queue.values())
                if quiet >= opts.collect_s or waited >= opts.max_collect_s or full:
                    break
                await asyncio.sleep(max(0.005, opts.collect_s - quiet))
            queue, self._queue = self._queue, {}
            self._queue_event.clear()
            self._first_enqueue = None
            try:
                for model, items in queue.items():
                    for chunk in chunks(items, opts.max_requests_per_file,
                                         opts.max_bytes_per_file):
                        await self._submit_file(model, chunk)
            except LLMFatalError:
                return
            except Exception as exc:  # a bug or an unexpected reply: stop, don't hang
                self._fail_all(f"Submitting a batch failed: {self.redact(repr(exc))}. Rerun "
                               "with the same --out to resume")
                return

    async def _submit_file(self, model: str, chunk: list[QueuedRequest]) -> None:
        data = b"".join(q.line for q in chunk)
        file_obj = await self._with_retries(
            "upload a batch file",
            lambda: self._client.files.create(file=("finmcq-batch.jsonl", data,
                                                    "application/jsonl"), purpose="batch"))
        # Recorded before the batch exists: a crash right after creating it is recoverable.
        self.ledger.record_upload(file_obj.id, model, len(data),
                                  ((q.key, q.stage, q.item_id) for q in chunk))
        batch = await self._with_retries(
            "create a batch",
            lambda: self._client.batches.create(
                input_file_id=file_obj.id, endpoint=ENDPOINT, completion_window="24h",
                metadata={"created_by": "finmcq", "run_dir": str(self.store.run_dir)[-500:]}))
        self.ledger.record_batch(file_obj.id, batch.id, batch.status)
        for q in chunk:
            self._queued_keys.discard(q.key)
        self._active[batch.id] = time.time()
        self._active_event.set()
        self.counters["batches_submitted"] += 1
        self.counters["requests_submitted"] += len(chunk)
        log.info("submitted batch %s: %d %s requests (%.1f MB)", batch.id, len(chunk), model,
                 len(data) / 1e6)

    async def _with_retries(self, what: str, action: Any) -> Any:
        """A files/batches API call with the engine's backoff; 401/403/404 stop the run."""
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                return await action()
            except openai.APIStatusError as exc:
                status = exc.status_code
                message = self.redact(str(exc))
                if status in _FATAL_STATUS or (400 <= status < 500 and status not in (408, 409,
                                                                                       429)):
                    self._fail_all(f"Could not {what}: HTTP {status} from "
                                   f"{self.config.base_url or 'api.openai.com'}: {message}. "
                                   "Check the key, --base-url and that the server has the Batch "
                                   "API; rerun with the same --out to resume")
                    raise self._fatal from None  # type: ignore[misc]
                log.info("could not %s (HTTP %s, attempt %d); retrying", what, status, attempt)
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                log.info("could not %s (%s, attempt %d); retrying", what, exc, attempt)
            await asyncio.sleep(self._backoff(attempt))
        self._fail_all(f"Could not {what} after {self.config.max_attempts} tries at "
                       f"{self.config.base_url or 'api.openai.com'}; rerun with the same --out "
                       "to resume")
        raise self._fatal  # type: ignore[misc]

    # -- polling ---------------------------------------------------------------------------

    async def _poller(self) -> None:
        while True:
            if not self._active:
                self._active_event.clear()
                await self._active_event.wait()
            for batch_id in list(self._active):
                try:
                    batch = await self._client.batches.retrieve(batch_id)
                except openai.APIStatusError as exc:
                    if exc.status_code in _FATAL_STATUS:
                        self._fail_all(f"Could not read batch {batch_id}: HTTP "
                                       f"{exc.status_code}: {self.redact(str(exc))}. Rerun "
                                       "with the same --out to resume")
                        return
                    log.info("polling batch %s failed (HTTP %s); will retry", batch_id,
                             exc.status_code)
                    continue
                except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                    log.info("polling batch %s failed (%s); will retry", batch_id, exc)
                    continue
                if batch.status not in TERMINAL:
                    self.ledger.set_status(batch_id, batch.status)
                    continue
                try:
                    await self._ingest(batch)
                except openai.APIError as exc:
                    log.info("downloading results of %s failed (%s); will retry", batch_id, exc)
                    continue
                self._active.pop(batch_id, None)
                self._wake(self.ledger.keys_of(batch_id))
            await asyncio.sleep(self.options.poll_interval_s)

    async def _ingest(self, batch: Any) -> None:
        """Download a finished batch's output and error files into the ledger."""
        lines: list[tuple[str, bool, str]] = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            async with self._client.files.with_streaming_response.content(file_id) as response:
                async for raw in response.iter_lines():
                    parsed = parse_result_line(raw)
                    if parsed is not None:
                        lines.append(parsed)
        self.ledger.ingest(batch.id, lines, batch.status, missing_payload(batch.status),
                           batch.output_file_id, batch.error_file_id)
        self.counters["batches_ingested"] += 1
