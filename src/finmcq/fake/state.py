"""The fake server's counters and recent request bodies (one :class:`FakeState` per server).

Shared by the chat handler, the ``/_fake/...`` routes, the Batch API and :class:`FakeLLMServer`
through the app key :data:`STATE_KEY`.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from typing import Any

from aiohttp import web

from finmcq.fake.config import FakeConfig
from finmcq.fake.defects import Corruption

RECENT_REQUESTS = 64  # request bodies kept for GET /_fake/requests


class FakeState:
    """Counters of one server. Only touched from the server's event loop thread."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Zero every counter (requests still in flight stay counted as in flight)."""
        self.requests = 0
        self.first_request_at: float | None = None  # epoch seconds of the first completion
        self.by_status: Counter[str] = Counter()
        self.by_task: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.cancelled = 0
        self.peak_in_flight = self.in_flight
        self.seen: dict[str, int] = {}  # body sha256 -> times received (drives fault draws)
        self.succeeded: Counter[str] = Counter()  # body sha256 -> 200s with usable JSON
        self.defects: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, fingerprint) -> record
        self.recent: deque[bytes] = deque(maxlen=RECENT_REQUESTS)  # raw bodies, as received

    def record_defect(self, corruption: Corruption) -> None:
        """Remember a corrupted reply that was served (a resend of the same one counts once)."""
        self.defects.setdefault((corruption.kind, corruption.fingerprint), corruption.as_dict())

    def defect_counts(self) -> dict[str, int]:
        return dict(Counter(kind for kind, _ in self.defects))

    def enter(self) -> None:
        if self.first_request_at is None:
            self.first_request_at = time.time()
        self.requests += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def snapshot(self) -> dict[str, Any]:
        """The ``/_fake/stats`` document."""
        return {
            "requests": self.requests,
            "first_request_at": self.first_request_at,
            "by_status": dict(self.by_status),
            "by_task": dict(self.by_task),
            "faults": dict(self.faults),
            "cancelled": self.cancelled,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "distinct_bodies": len(self.seen),
            "succeeded_bodies": dict(self.succeeded),
            "duplicate_successes": sum(n - 1 for n in self.succeeded.values() if n > 1),
            "defects": self.defect_counts(),
        }


STATE_KEY = web.AppKey("fake_state", FakeState)


def recent_bodies(state: FakeState) -> list[Any]:
    out: list[Any] = []
    for raw in state.recent:
        try:
            out.append(json.loads(raw))
        except ValueError:
            out.append(raw.decode("utf-8", "replace"))
    return out
