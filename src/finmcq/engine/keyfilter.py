"""A Bloom filter of the cache keys in a run's store: which lookups can skip SQLite.

Every LLM call first asks the store for a cached reply under its key; in a fresh run nearly
every answer is "none", and that query cost ~50 µs per call (issue 12). The filter says "surely
not stored" for a key it has never seen, so only possible hits reach SQLite. Its size is fixed
(1 MiB, 4 bit positions per key): memory stays flat however long the run, and at 420,000 keys
(a 100,000-question build) a false "maybe" (an extra query, never a wrong answer) comes up for
about one lookup in a thousand.

Positions come from Python's ``hash`` of the key string: randomised per process, which is fine,
as the filter lives and dies with the process (the store fills it from its rows at open).
"""

from __future__ import annotations

BITS = 1 << 23  # 1 MiB of bits
PROBES = 4
_MASK = BITS - 1


class KeyFilter:
    """Keys added so far; ``key in filter`` is False only for a key never added."""

    def __init__(self) -> None:
        self._bits = bytearray(BITS >> 3)
        self.added = 0

    @staticmethod
    def _positions(key: str) -> list[int]:
        h = hash(key) & 0xFFFFFFFFFFFFFFFF
        step = (h >> 32) | 1  # odd: the probes differ (double hashing)
        return [(h + i * step) & _MASK for i in range(PROBES)]

    def add(self, key: str) -> None:
        bits = self._bits
        for p in self._positions(key):
            bits[p >> 3] |= 1 << (p & 7)
        self.added += 1

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        bits = self._bits
        return all(bits[p >> 3] & (1 << (p & 7)) for p in self._positions(key))
