"""A gate in front of the fake LLM that checks, by the order of events alone, that a client keeps
its concurrency limit full without ever exceeding it.

The gate holds every chat completion that arrives. Only when ``limit`` requests are in flight
does it let the oldest one through; the fake answers it, the client's freed slot must bring the
next request, and that arrival (again the ``limit``-th in flight) lets the next oldest through.
Once all ``total`` requests have arrived, the rest go through. A client that keeps its limit
full therefore makes progress at whatever speed the machine allows, and every arrival after the
first ``limit`` finds exactly ``limit - 1`` others in flight. A client that never reaches the
limit (a smaller semaphore, a lock around the request, waiting for a whole wave to end) makes no
progress: when no request has arrived for ``stall_s`` while some are held, the gate counts a
stall and opens for good so the run can end. A client over the limit shows in ``at_arrival``.

Timing never decides the outcome on a working client: ``stall_s`` only bounds how long a broken
one is waited for, and is far above the time one request takes even on a starved machine.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FillGate:
    """aiohttp middleware for ``create_app()``'s app; see the module doc."""

    def __init__(self, limit: int, total: int, stall_s: float = 20.0) -> None:
        self.limit = limit
        self.total = total
        self.stall_s = stall_s
        self.arrived = 0
        self.in_flight = 0
        self.at_arrival: list[int] = []  # requests in flight (this one included) at each arrival
        self.stalls = 0
        self._held: deque[asyncio.Future[None]] = deque()
        self._open = False
        self._last_arrival = 0.0

    @property
    def peak(self) -> int:
        return max(self.at_arrival, default=0)

    def _release(self) -> None:
        everything = self._open or self.arrived >= self.total
        while self._held and (everything or self.in_flight >= self.limit):
            self._held.popleft().set_result(None)
            if not everything:
                return  # one at a time: its answer must bring the next arrival

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or not request.path.endswith("/chat/completions"):
            return await handler(request)
        loop = asyncio.get_running_loop()
        self.arrived += 1
        self.in_flight += 1
        self.at_arrival.append(self.in_flight)
        self._last_arrival = loop.time()
        released: asyncio.Future[None] = loop.create_future()
        self._held.append(released)
        try:
            self._release()
            while not released.done():
                try:
                    await asyncio.wait_for(asyncio.shield(released), self.stall_s)
                except TimeoutError:
                    if loop.time() - self._last_arrival >= self.stall_s and not self._open:
                        self.stalls += 1
                        self._open = True
                        self._release()
            return await handler(request)
        finally:
            # Before the answer is sent: the client cannot send its next request earlier.
            self.in_flight -= 1
            if not released.done():  # cancelled while held (the client gave up)
                self._held.remove(released)
