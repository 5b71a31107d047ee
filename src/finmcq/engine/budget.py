"""``--budget-usd``: stop the build cleanly before its spend would pass a limit.

The engine asks :meth:`Budget.hold` for every attempt it sends. A hold reserves the attempt's
*worst-case* cost (an upper bound on its prompt tokens, plus ``max_tokens`` of output) for as long
as the attempt is in flight; once the reply is recorded the reservation is replaced by the real
cost, which the engine's :class:`~finmcq.engine.client.UsageMeter` already counts. So at every
moment ``spent + reserved <= limit``, and the real spend can never pass the limit.

When the next attempt does not fit, the hold waits for attempts in flight to settle (their real
cost is usually far below the worst case) and tries again; only when nothing is in flight and it
still does not fit does it raise :class:`BudgetExceeded`. Nothing is then in flight, every reply
received is in the store, and a rerun with the same ``--out`` (and a larger budget) resumes.

The limit applies to the run directory as a whole: spend of earlier sessions (read from the
store) counts, cache hits are free.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from finmcq.errors import FinmcqError

if TYPE_CHECKING:
    from finmcq.engine.client import LLMEngine
    from finmcq.engine.cost import PriceTable
    from finmcq.engine.store import RunStore

log = logging.getLogger("finmcq.engine")

# Chat formats add a few tokens per message (role, separators); generous on purpose.
_MESSAGE_OVERHEAD_TOKENS = 8


class BudgetExceeded(FinmcqError):
    """The next request could pass ``--budget-usd``; the build stops, everything is saved."""


def prompt_token_bound(body: Mapping[str, Any]) -> int:
    """An upper bound on the prompt tokens of a Chat Completions ``body``.

    Byte-level BPE tokenizers (OpenAI's, Llama's, Qwen's) never produce more tokens than the
    UTF-8 bytes they encode, so bytes are a safe bound. For Korean it is ~3x the real count;
    that only makes the budget stop a little early, never late. The response_format schema is
    counted too, since providers may bill it as prompt.
    """
    total = 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            total += len(content.encode("utf-8"))
        total += _MESSAGE_OVERHEAD_TOKENS
    response_format = body.get("response_format")
    if response_format:
        total += len(json.dumps(response_format, ensure_ascii=False).encode("utf-8"))
    return total


def worst_case_usd(prices: PriceTable, model: str, body: Mapping[str, Any]) -> float:
    """The most one attempt with ``body`` can cost: bounded prompt plus ``max_tokens`` output."""
    max_out = int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)
    return prices.cost(model, prompt_token_bound(body), max_out)


class Budget:
    """Admission control on spend. ``limit_usd=None`` admits everything at no cost."""

    def __init__(self, limit_usd: float | None, spent: Callable[[], float],
                 prices: Callable[[], PriceTable] | None = None,
                 progress: Callable[[], str] | None = None) -> None:
        self.limit_usd = limit_usd
        self._spent = spent
        self._prices = prices
        self._progress = progress
        self.reserved = 0.0
        self.in_flight = 0
        self.waits = 0
        self._changed = asyncio.Event()
        self._exceeded: BudgetExceeded | None = None

    @classmethod
    def for_engine(cls, engine: LLMEngine) -> Budget:
        """The budget of ``engine``: its config's ``budget_usd`` against its meter and prices.

        Prices are read through the engine at each hold, so an engine that swaps its price
        table (the Batch API's discounted one) is budgeted at the price it really pays.
        """
        limit = getattr(engine.config, "budget_usd", None)
        return cls(limit, lambda: engine.meter.total_cost, lambda: engine.prices,
                   lambda: delivered_summary(engine.store))

    @property
    def enabled(self) -> bool:
        return self.limit_usd is not None

    @property
    def exceeded(self) -> BudgetExceeded | None:
        return self._exceeded

    def remaining_usd(self) -> float | None:
        """What is left of the limit after the spend so far and the reservations in flight."""
        if self.limit_usd is None:
            return None
        return self.limit_usd - self._spent() - self.reserved

    @asynccontextmanager
    async def hold(self, model: str, body: Mapping[str, Any]) -> AsyncIterator[None]:
        """Reserve the worst-case cost of one attempt while it is in flight (see module doc)."""
        if self.limit_usd is None or self._prices is None:
            yield
            return
        usd = worst_case_usd(self._prices(), model, body)
        await self.acquire(usd)
        try:
            yield
        finally:
            self.release(usd)

    async def acquire(self, usd: float) -> None:
        """Reserve ``usd``; wait while others are in flight; raise when it can never fit."""
        if self.limit_usd is None:
            return
        while True:
            if self._exceeded is not None:
                raise self._exceeded
            spent = self._spent()
            if spent + self.reserved + usd <= self.limit_usd:
                self.reserved += usd
                self.in_flight += 1
                return
            if self.in_flight == 0:
                self._stop(spent, usd)
            self.waits += 1
            await self._changed.wait()

    def release(self, usd: float) -> None:
        """Drop a reservation (the engine has recorded the real cost, if any, by now)."""
        if self.limit_usd is None:
            return
        self.reserved = max(0.0, self.reserved - usd)
        self.in_flight -= 1
        # Wake every waiter: each re-checks against the spend as it is now.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _stop(self, spent: float, usd: float) -> None:
        progress = self._progress() if self._progress is not None else ""
        self._exceeded = BudgetExceeded(
            f"Budget reached: ${spent:.4f} of the ${self.limit_usd:.4f} budget is spent in this "
            f"run directory, and the next request could cost up to ${usd:.4f}, so the build "
            f"stopped before passing it.{(' ' + progress) if progress else ''} Every reply "
            "received so far is saved.",
            fix="Rerun with the same --out and a larger --budget-usd (or none) to resume; "
            "nothing received so far is paid for again",
        )
        log.error("%s", self._exceeded)
        raise self._exceeded


def delivered_summary(store: RunStore) -> str:
    """"Delivered N of Q questions so far." from the store (outcomes and the saved settings)."""
    try:
        delivered = sum(1 for _ in store.iter_outcomes("deliver"))
        settings = json.loads(store.get_meta("settings") or "{}")
    except Exception:  # a summary must never hide the budget message itself
        return ""
    target = settings.get("questions")
    of = f" of {target}" if target else ""
    return f"Delivered {delivered}{of} questions so far."
