"""The store's key filter: lookups of keys never stored skip SQLite; stored keys are found."""

from __future__ import annotations

import hashlib
from pathlib import Path

from finmcq.engine.keyfilter import KeyFilter
from finmcq.engine.store import RunStore


def _key(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def test_no_added_key_is_ever_missed_and_false_maybes_are_rare() -> None:
    keys = KeyFilter()
    for i in range(50_000):
        keys.add(_key(i))
    assert all(_key(i) in keys for i in range(50_000))
    false = sum(_key(i) in keys for i in range(50_000, 150_000))
    assert false < 100, false  # ~0 expected at this fill; 4 probes in 2**23 bits


def _put(store: RunStore, key: str) -> None:
    store.put_response(key=key, stage="verify", item_id="i1", model="m", request={"x": 1},
                       content="{}", parsed_json="{}", prompt_tokens=1, completion_tokens=2,
                       cached_tokens=0, cost_usd=0.1, latency_s=0.2, attempts=1)


def test_lookups_of_unknown_keys_send_no_query_and_stored_keys_survive_reopening(
        tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    assert store.get_response(_key(1)) is None
    assert not [s for s in statements if "FROM responses" in s]
    _put(store, _key(1))
    cached = store.get_response(_key(1))
    assert cached is not None and cached.completion_tokens == 2
    store.close()
    reopened = RunStore(tmp_path)  # a resumed run: the filter is filled from the stored rows
    cached = reopened.get_response(_key(1))
    assert cached is not None and cached.prompt_tokens == 1
    assert reopened.get_response(_key(2)) is None
    reopened.close()
