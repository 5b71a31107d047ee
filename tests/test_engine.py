"""The LLM engine against the fake LLM over real HTTP: limits, retries, breaker, cache, secrets."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from finmcq.engine.client import (
    EngineConfig,
    LLMCallFailed,
    LLMEngine,
    LLMFatalError,
    LLMRequest,
)
from finmcq.engine.cost import PriceTable
from finmcq.engine.store import RunLockedError, RunStore
from finmcq.errors import ConfigError
from finmcq.fake import FakeConfig, create_app
from finmcq.records import BlindSolve

from .conftest import PYTHON, subprocess_env
from .fill_gate import FillGate


def verify_request(i: int, stage: str = "verify") -> LLMRequest[BlindSolve]:
    payload = {"task": "verify", "question": f"시험 문제 {i}: 금리가 오르면 채권 가격은?",
               "options": {ch: f"선택지 {ch}-{i}" for ch in "ABCDEFG"}}
    return LLMRequest(
        stage=stage,
        messages=({"role": "system", "content": "문제를 푸세요."},
                  {"role": "user",
                   "content": "<입력>\n" + json.dumps(payload, ensure_ascii=False) + "\n</입력>"}),
        schema=BlindSolve,
        item_id=f"item-{i}",
    )


def make_engine(tmp_path: Path, base_url: str, **overrides: Any) -> tuple[LLMEngine, RunStore]:
    store = RunStore(tmp_path / "run")
    settings: dict[str, Any] = {"base_url": base_url, "model": "fake-finance-1",
                                "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 10}
    settings.update(overrides)
    return LLMEngine(EngineConfig(**settings), store, PriceTable.load()), store


async def run_all(engine: LLMEngine, requests: list[LLMRequest[BlindSolve]]) -> list[Any]:
    try:
        return await asyncio.gather(*(engine.call(r) for r in requests))
    finally:
        await engine.aclose()


def test_concurrency_limit_is_respected_and_kept_full(tmp_path: Path) -> None:
    """At most ``concurrency`` requests in flight, and every freed slot refilled while the others
    are still busy. Checked by the order of events (tests/fill_gate.py), not by durations, so it
    holds on a loaded machine: the gate lets a request through only while the limit is full."""
    limit, total = 20, 100
    gate = FillGate(limit, total)

    async def main() -> tuple[list[Any], int]:
        app = create_app(FakeConfig())
        app.middlewares.append(gate.middleware)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        # timeout_s far above the gate's stall_s: a held request waits, it is never retried.
        engine, store = make_engine(tmp_path, f"http://127.0.0.1:{port}/v1", concurrency=limit,
                                    timeout_s=300)
        try:
            results = await run_all(engine, [verify_request(i) for i in range(total)])
            return results, engine.peak_in_flight
        finally:
            store.close()
            await runner.cleanup()

    results, engine_peak = asyncio.run(main())
    assert len(results) == total and all(isinstance(r.value, BlindSolve) for r in results)
    assert gate.stalls == 0, "the engine stopped sending while fewer than the limit were in flight"
    # The first `limit` arrive together; each later one finds the other limit-1 still in flight.
    assert gate.at_arrival == list(range(1, limit + 1)) + [limit] * (total - limit)
    assert gate.peak == engine_peak == limit


def test_retries_recover_from_429_and_500(tmp_path: Path, make_fake: Any) -> None:
    fake = make_fake(rate_429=0.25, rate_500=0.25, retry_after_s=0)
    engine, store = make_engine(tmp_path, fake.base_url, concurrency=50, max_attempts=20)
    results = asyncio.run(run_all(engine, [verify_request(i) for i in range(200)]))
    assert all(isinstance(r.value, BlindSolve) for r in results)
    retries = engine.meter.stage("verify").retries
    assert retries["rate_limit"] > 10
    assert retries["http_500"] > 10
    events = store.event_counts()
    assert events["retry:rate_limit"] == retries["rate_limit"]
    store.close()


def test_retry_after_is_honoured(tmp_path: Path, make_fake: Any) -> None:
    fake = make_fake(rate_429=0.5, retry_after_s=1)
    engine, store = make_engine(tmp_path, fake.base_url)
    durations: dict[str, float] = {}

    async def timed(req: LLMRequest[BlindSolve]) -> None:
        t0 = time.monotonic()
        await engine.call(req)
        durations[req.item_id or ""] = time.monotonic() - t0

    async def main() -> None:
        await asyncio.gather(*(timed(verify_request(i)) for i in range(20)))
        await engine.aclose()

    asyncio.run(main())
    retried = {row[0] for row in store._query(
        "SELECT DISTINCT item_id FROM events WHERE kind = 'retry:rate_limit'")}
    assert retried, "with a 50% 429 rate some request must have been throttled"
    # Our own backoff is capped at 0.05 s here, so only Retry-After explains a 1 s wait.
    assert all(durations[i] >= 1.0 for i in retried)
    assert all(durations[i] < 0.9 for i in durations if i not in retried)
    store.close()


def test_wrong_key_stops_at_once_with_a_clear_message(tmp_path: Path, make_fake: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake = make_fake(api_key="test-right-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-wrong-key-123456")
    engine, store = make_engine(tmp_path, fake.base_url, concurrency=10)
    with pytest.raises(LLMFatalError) as info:
        asyncio.run(run_all(engine, [verify_request(i) for i in range(500)]))
    message = str(info.value)
    assert "401" in message and "OPENAI_API_KEY" in message
    assert "test-wrong-key-123456" not in message
    assert fake.stats()["requests"] <= 20  # stopped at once, not 500 × retries
    store.close()


def test_unknown_model_stops_and_names_it(tmp_path: Path, fake_llm: Any) -> None:
    engine, store = make_engine(tmp_path, fake_llm.base_url, model="no-such-model")
    with pytest.raises(LLMFatalError, match=r"404.*no-such-model"):
        asyncio.run(run_all(engine, [verify_request(0)]))
    store.close()


def test_breaker_trips_on_a_dead_server(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine, store = make_engine(tmp_path, f"http://127.0.0.1:{port}/v1", concurrency=20,
                                breaker_window=20)
    started = time.monotonic()
    with pytest.raises(LLMFatalError, match=r"Cannot reach .* all failed"):
        asyncio.run(run_all(engine, [verify_request(i) for i in range(1000)]))
    assert time.monotonic() - started < 10
    store.close()


def test_invalid_and_truncated_replies_are_retried_never_returned(tmp_path: Path,
                                                                  make_fake: Any) -> None:
    fake = make_fake(rate_malformed=0.3, rate_length=0.2)
    # Half of all tries fail: with 8 tries one of 150 requests runs out 44 % of the time (which
    # depends on the request bytes); 16 tries make that 0.2 %.
    engine, store = make_engine(tmp_path, fake.base_url, max_invalid=16, max_attempts=16)
    results = asyncio.run(run_all(engine, [verify_request(i) for i in range(150)]))
    assert all(r.value.answer in "ABCDEFG" for r in results)
    retries = engine.meter.stage("verify").retries
    assert retries["invalid_json"] > 5
    assert retries["truncated"] > 5
    store.close()


def test_invalid_replies_give_up_after_the_limit(tmp_path: Path, make_fake: Any) -> None:
    fake = make_fake(rate_malformed=1.0)
    engine, store = make_engine(tmp_path, fake.base_url, max_invalid=3)
    with pytest.raises(LLMCallFailed) as info:
        asyncio.run(run_all(engine, [verify_request(0)]))
    assert info.value.cause == "invalid_json"
    assert fake.stats()["requests"] == 3
    # Nothing unusable is cached (a rerun asks again), but all three replies are paid for.
    key = engine.resolve(verify_request(0))[3]
    assert store.get_response(key) is None
    assert store._query("SELECT COUNT(*) FROM responses") == [(0,)]
    assert store._query("SELECT cause, COUNT(*) FROM unusable GROUP BY cause") == [
        ("invalid_json", 3)]
    store.close()


def test_timeouts_are_retried(tmp_path: Path, make_fake: Any) -> None:
    fake = make_fake(rate_hang=0.3, hang_seconds=30)
    engine, store = make_engine(tmp_path, fake.base_url, timeout_s=0.5)
    results = asyncio.run(run_all(engine, [verify_request(i) for i in range(30)]))
    assert len(results) == 30
    assert engine.meter.stage("verify").retries["timeout"] >= 1
    store.close()


def test_cache_hit_costs_no_request(tmp_path: Path, fake_llm: Any) -> None:
    engine, store = make_engine(tmp_path, fake_llm.base_url)
    first = asyncio.run(run_all(engine, [verify_request(7)]))[0]
    store.close()
    engine2, store2 = make_engine(tmp_path, fake_llm.base_url)
    second = asyncio.run(run_all(engine2, [verify_request(7)]))[0]
    assert fake_llm.stats()["requests"] == 1
    assert second.cached and not first.cached
    assert second.value == first.value
    assert second.cost_usd == 0 and first.cost_usd > 0
    assert engine2.meter.stage("verify").cache_hits == 1
    store2.close()


def test_json_schema_rejection_falls_back_to_json_mode(tmp_path: Path, make_fake: Any) -> None:
    fake = make_fake(reject_json_schema=True)
    engine, store = make_engine(tmp_path, fake.base_url)
    results = asyncio.run(run_all(engine, [verify_request(i) for i in range(5)]))
    assert all(r.value.answer in "ABCDEFG" for r in results)
    assert fake.stats()["by_status"].get("400", 0) >= 1
    store.close()


def test_audit_log_rows_hold_request_reply_tokens_and_stage(tmp_path: Path,
                                                            fake_llm: Any) -> None:
    engine, store = make_engine(tmp_path, fake_llm.base_url)
    asyncio.run(run_all(engine, [verify_request(1, stage="verify")]))
    row = store._query("SELECT stage, item_id, model, request_json, content, prompt_tokens, "
                       "completion_tokens, cost_usd, latency_s, created_at FROM responses")[0]
    stage, item_id, model, request_json, content, pt, ct, cost, latency, created = row
    assert (stage, item_id, model) == ("verify", "item-1", "fake-finance-1")
    audit = json.loads(request_json)
    assert audit["response_format"] == {"type": "json_schema", "schema": "BlindSolve"}
    assert BlindSolve.model_validate_json(content)
    assert pt > 0 and ct > 0 and cost > 0 and latency >= 0 and created > 0
    store.close()


def test_second_process_on_same_run_dir_is_refused(tmp_path: Path) -> None:
    first = RunStore(tmp_path / "run")
    with pytest.raises(RunLockedError, match="Another finmcq process"):
        RunStore(tmp_path / "run")
    first.close()
    RunStore(tmp_path / "run").close()  # free again once the first is closed


def test_missing_key_for_a_hosted_api_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"OPENAI_API_KEY is not set.*finmcq demo"):
        EngineConfig(base_url="https://api.openai.com/v1").resolve_api_key()
    assert EngineConfig(base_url="http://127.0.0.1:9/v1").resolve_api_key()


WORKER = r"""
import asyncio, json, sys
from pathlib import Path
from finmcq.engine.client import EngineConfig, LLMEngine, LLMRequest
from finmcq.engine.cost import PriceTable
from finmcq.engine.store import RunStore
from finmcq.records import BlindSolve

base, run_dir, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
store = RunStore(run_dir)
engine = LLMEngine(EngineConfig(base_url=base, model="fake-finance-1", concurrency=10),
                   store, PriceTable.load())
def req(i):
    payload = {"task": "verify", "question": f"재개 시험 {i}",
               "options": {ch: f"보기 {ch}{i}" for ch in "ABCDEFG"}}
    return LLMRequest(stage="verify", schema=BlindSolve, item_id=str(i), messages=(
        {"role": "user", "content": "<입력>\n" + json.dumps(payload, ensure_ascii=False)
         + "\n</입력>"},))
async def main():
    done = 0
    async def one(i):
        nonlocal done
        await engine.call(req(i))
        done += 1
        if done % 20 == 0:
            print("done", done, flush=True)
    await asyncio.gather(*(one(i) for i in range(n)))
    print("finished", flush=True)
asyncio.run(main())
"""


def test_killed_run_resumes_without_resending_succeeded_requests(tmp_path: Path,
                                                                  make_fake: Any) -> None:
    fake = make_fake(latency_ms=50)
    run_dir = tmp_path / "run"
    args = [PYTHON, "-c", WORKER, fake.base_url, str(run_dir), "200"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=subprocess_env())
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("done 60"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = RunStore(run_dir, lock=False)
    n_saved = len(saved._query("SELECT key FROM responses"))
    saved.close()
    assert 60 <= n_saved < 200
    # Requests the killed process had already written may still reach the fake's handlers:
    # count from when its request total has settled.
    before, deadline = fake.stats()["requests"], time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = fake.stats()
        if now["requests"] == before and now["in_flight"] == 0:
            break
        before = now["requests"]

    finished = subprocess.run(args, capture_output=True, text=True, env=subprocess_env(),
                              timeout=120)
    assert "finished" in finished.stdout, finished.stderr
    stats = fake.stats()
    resent = [count for count in stats["succeeded_bodies"].values() if count > 1]
    # Only requests in flight at the kill (at most the concurrency, 10) may be sent twice.
    assert len(resent) <= 10
    assert stats["requests"] - before == 200 - n_saved


def _files_containing(root: Path, secret: str) -> list[Path]:
    needle = secret.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_api_key_is_never_written(tmp_path: Path, make_fake: Any,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import logging
    import secrets

    from finmcq.engine.runlog import close_run_log, open_run_log

    key = f"sk-test-{secrets.token_hex(16)}"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    good = make_fake(api_key=key, rate_500=0.3)
    engine, store = make_engine(tmp_path, good.base_url)
    handler = open_run_log(tmp_path / "run", "t1")
    logging.getLogger("finmcq.test").info("the key is %s", key)  # even a careless log line
    asyncio.run(run_all(engine, [verify_request(i) for i in range(30)]))
    store.close()
    bad = make_fake(api_key="test-other-key")
    engine2, store2 = make_engine(tmp_path, bad.base_url)
    with pytest.raises(LLMFatalError) as info:
        asyncio.run(run_all(engine2, [verify_request(99)]))
    store2.close()
    close_run_log(handler)
    assert key not in str(info.value)
    assert (tmp_path / "run" / "processing_t1.log").stat().st_size > 0
    assert _files_containing(tmp_path, key) == []


def test_a_server_that_ignores_response_format_stops_the_run(tmp_path: Path,
                                                             make_fake: Any) -> None:
    fake = make_fake(ignore_response_format=True)
    engine, store = make_engine(tmp_path, fake.base_url, concurrency=10, breaker_window=20)
    with pytest.raises(LLMFatalError, match="response_format"):
        asyncio.run(run_all(engine, [verify_request(i) for i in range(300)]))
    assert fake.stats()["requests"] < 60  # not 300 requests × 6 tries
    store.close()


def test_unusable_replies_are_paid_for_and_counted_across_sessions(tmp_path: Path,
                                                                   make_fake: Any) -> None:
    fake = make_fake(rate_malformed=0.5)
    engine, store = make_engine(tmp_path, fake.base_url, max_invalid=10)
    asyncio.run(run_all(engine, [verify_request(i) for i in range(40)]))
    usage = engine.meter.stage("verify")
    assert usage.unusable_cost_usd > 0
    session_cost = engine.meter.session_cost
    store.close()
    reopened = RunStore(tmp_path / "run")
    # The next session's budget and totals start from everything paid, unusable replies too.
    assert reopened.total_cost() == pytest.approx(session_cost)
    reopened.close()
