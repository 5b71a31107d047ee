"""What the engine does after a failed try: backoff, Retry-After, circuit breaker, stopping.

:class:`RetryPolicy` is a mixin of :class:`~finmcq.engine.client.LLMEngine` (and so of the
Batch API engine). It holds, in one place:

* classifying an HTTP error (``_on_status_error``): stop at once on 401 / 403 / 404 and on any
  other 4xx a retry cannot fix, fall back from ``json_schema`` to JSON mode when the server
  rejects ``response_format``, and wait then retry on 408 / 409 / 429 / 5xx;
* the wait: exponential backoff with equal jitter, or the server's ``Retry-After`` up to
  ``--max-retry-wait`` (long waits said aloud, a run told only to wait longer stops);
* the circuit breaker over the last ``breaker_window`` tries, and the fatal stop itself;
* the retry events (counted per stage and cause, logged, written to the store).

It keeps no state of its own: the attributes it reads are set by ``LLMEngine.__init__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from finmcq.engine.replies import is_response_format_error
from finmcq.engine.request import EngineConfig, LLMFatalError, LLMRequest, StructuredMode
from finmcq.engine.transport import HTTPStatusError

if TYPE_CHECKING:
    from finmcq.engine.store import RunStore
    from finmcq.engine.usage import UsageMeter

log = logging.getLogger("finmcq.engine")

NOTICE_WAIT_S = 5.0  # a Retry-After wait at least this long is logged and shown
NOTICE_EVERY_S = 10.0  # at most one notice on screen per this many seconds
LONG_WAIT_TRIP = 8  # over-cap waits in a row (no success between) that stop the run


def _print_notice(text: str) -> None:
    print(f"finmcq: {text}", file=sys.stderr, flush=True)


class RetryPolicy:
    """Retry, backoff and stop decisions of an engine (see the module doc)."""

    # Set by LLMEngine.__init__.
    config: EngineConfig
    store: RunStore
    meter: UsageMeter
    redact: Callable[[str], str]
    notify: Callable[[str], None]
    _mode: StructuredMode
    _recent: deque[tuple[bool, str]]
    _successes: int
    _fatal: LLMFatalError | None
    _fatal_event: asyncio.Event
    _long_waits: int
    _last_notice: float

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

