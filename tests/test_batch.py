"""Batch API mode against the fake Batch API over HTTP: exact pairs, resume, resubmission, price."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from finmcq.build import run_build
from finmcq.config import BuildSettings
from finmcq.engine.batch import BatchEngine, BatchLedger, BatchOptions
from finmcq.engine.client import EngineConfig, LLMFatalError, LLMRequest, LLMResult
from finmcq.engine.cost import PriceTable
from finmcq.engine.store import RunStore
from finmcq.fake.batch import batch_stats, configure_batch
from finmcq.fake.server import FakeConfig, FakeLLMServer
from finmcq.records import BlindSolve

from .conftest import PYTHON, subprocess_env

QUESTIONS = 150


@pytest.fixture(autouse=True)
def _fast_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINMCQ_BATCH_POLL_S", "0.05")
    monkeypatch.setenv("FINMCQ_BATCH_COLLECT_S", "0.05")


def settings_for(base_url: str, out: Path, **kw: Any) -> BuildSettings:
    # In batch mode the whole wave of a stage must be able to wait at once: concurrency covers
    # every slot and source question.
    values: dict[str, Any] = {"source": "sample", "questions": QUESTIONS, "seed": 13, "out": out,
                              "model": "fake-finance-1", "base_url": base_url, "batch": True,
                              "concurrency": 2 * QUESTIONS + 100}
    values.update(kw)
    return BuildSettings(**values)


def ledger(run_dir: Path) -> list[tuple[str, int, str]]:
    """(input file id, requests, status) of every batch the run recorded."""
    db = sqlite3.connect(run_dir / "finmcq.sqlite")
    try:
        return list(db.execute("SELECT input_file_id, n_requests, status FROM batches"))
    finally:
        db.close()


def test_batch_build_delivers_exact_pairs_resubmits_failures_and_pays_half(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINMCQ_BATCH_MAX_REQUESTS", "60")  # forces several files per wave
    out = tmp_path / "run"
    with FakeLLMServer(FakeConfig()) as fake:
        configure_batch(fake.url, delay_s=0.05, rate_failed=0.05, rate_expired=0.05,
                        fail_batches=1)
        result = run_build(settings_for(fake.base_url, out), progress=False)
        served = batch_stats(fake.url)
        chat = fake.stats()
    assert result.pairs == 2 * QUESTIONS
    pairs = json.loads(result.training_data.read_text("utf-8"))
    assert len(pairs) == 2 * QUESTIONS
    assert chat["requests"] == 0  # nothing went through the synchronous endpoint
    assert served["batches_failed"] == 1 and served["lines_expired"] > 0
    assert served["lines_failed"] > 0
    rows = ledger(out)
    assert rows and all(n <= 60 for _, n, _ in rows)
    assert {status for _, _, status in rows} == {"ingested"}
    stats = json.loads(result.stats.read_text("utf-8"))
    retries = stats["retries_by_cause"]
    assert retries.get("batch_expired", 0) > 0 and retries.get("http_500", 0) > 0
    assert retries.get("batch_failed", 0) > 0  # the whole failed batch was sent again
    # Price: every stored reply costs half the synchronous price of its tokens.
    prices = PriceTable.load()
    for stage, usage in stats["usage_all_sessions"].items():
        full = prices.cost("fake-finance-1", usage["prompt_tokens"], usage["completion_tokens"],
                           usage["cached_tokens"])
        assert usage["cost_usd"] == pytest.approx(full * 0.5, rel=1e-6), stage


def test_cli_build_with_batch_sends_nothing_to_chat_completions(tmp_path: Path) -> None:
    """`finmcq build --batch` as a user runs it: every request goes through the Batch API."""
    out = tmp_path / "run"
    with FakeLLMServer(FakeConfig()) as fake:
        configure_batch(fake.url, delay_s=0.05)
        result = subprocess.run(
            [PYTHON, "-m", "finmcq.cli", "build", "--batch", "--source", "sample",
             "--questions", "40", "--seed", "13", "--model", "fake-finance-1",
             "--base-url", fake.base_url, "--out", str(out), "--no-contamination-check"],
            env=subprocess_env(FINMCQ_BATCH_POLL_S="0.05", FINMCQ_BATCH_COLLECT_S="0.05"),
            capture_output=True, text=True, timeout=300)
        chat = fake.stats()
        served = batch_stats(fake.url)
    assert result.returncode == 0, result.stderr[-3000:]
    assert chat["requests"] == 0, chat  # not one POST /v1/chat/completions
    assert served["batches_created"] >= 4  # relevance, drafts, verify/judge, solve waves
    pairs = json.loads(max(out.glob("final_training_data_*.json")).read_text("utf-8"))
    assert len(pairs) == 80
    stats = json.loads(max(out.glob("processing_stats_*.json")).read_text("utf-8"))
    assert stats["batch"]["batches_submitted"] >= 4


CHILD = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import finmcq.build
    from finmcq.config import BuildSettings
    base_url, out, questions = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    finmcq.build.run_build(BuildSettings(
        source="sample", questions=questions, seed=13, out=out, model="fake-finance-1",
        base_url=base_url, batch=True, concurrency=2 * questions + 100), progress=False)
""")


def test_killed_batch_build_reattaches_to_its_batches_and_never_pays_twice(
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    script = tmp_path / "child.py"
    script.write_text(CHILD, "utf-8")
    with FakeLLMServer(FakeConfig()) as fake:
        configure_batch(fake.url, delay_s=1.0)
        env = subprocess_env(FINMCQ_BATCH_POLL_S="0.05", FINMCQ_BATCH_COLLECT_S="0.05")
        proc = subprocess.Popen([PYTHON, str(script), fake.base_url, str(out), str(QUESTIONS)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        # Kill while the second wave (rewrite/generate) is still being processed.
        while batch_stats(fake.url).get("batches_created", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        pending = [row for row in ledger(out) if row[2] != "ingested"]
        assert pending, "the kill should leave a batch in flight"
        created_before = batch_stats(fake.url)["batches_created"]

        result = run_build(settings_for(fake.base_url, out), progress=False)
        served = batch_stats(fake.url)
        chat = fake.stats()
    assert result.pairs == 2 * QUESTIONS
    # Every request body was run exactly once by the Batch API, across both sessions.
    assert served["lines_processed"] == served["lines_succeeded"] == chat["distinct_bodies"]
    assert chat["duplicate_successes"] == 0
    assert served["batches_created"] > created_before  # later waves were submitted afresh...
    rows = {file_id for file_id, _, _ in ledger(out)}
    assert {file_id for file_id, _, _ in pending} <= rows  # ...the pending ones were not
    assert {status for _, _, status in ledger(out)} == {"ingested"}


def verify_request(i: int) -> LLMRequest[BlindSolve]:
    payload = {"task": "verify", "question": f"시험 문제 {i}: 금리가 오르면 채권 가격은?",
               "options": {ch: f"선택지 {ch}-{i}" for ch in "ABCDEFG"}}
    return LLMRequest(stage="verify", schema=BlindSolve, item_id=f"item-{i}", messages=(
        {"role": "system", "content": "문제를 푸세요."},
        {"role": "user", "content": "<입력>\n" + json.dumps(payload, ensure_ascii=False)
         + "\n</입력>"}))


def test_upload_whose_batch_id_was_never_recorded_is_found_and_not_resubmitted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between "create batch" and "record its id": the next session finds the batch."""
    options = BatchOptions(poll_interval_s=0.05, collect_s=0.05)

    async def session(base_url: str) -> tuple[list[Any], dict[str, int]]:
        store = RunStore(tmp_path / "run")
        engine = BatchEngine(EngineConfig(base_url=base_url, model="fake-finance-1"), store,
                             PriceTable.load(), options)
        try:
            results = await asyncio.gather(*(engine.call(verify_request(i)) for i in range(20)),
                                           return_exceptions=True)
            return results, dict(engine.counters)
        finally:
            await engine.aclose()
            store.close()

    def crash(*args: Any) -> None:
        raise RuntimeError("stands in for kill -9 right after the batch was created")

    with FakeLLMServer(FakeConfig()) as fake:
        configure_batch(fake.url, delay_s=0.2)
        with monkeypatch.context() as patch:
            patch.setattr(BatchLedger, "record_batch", crash)
            failed, _ = asyncio.run(session(fake.base_url))
        assert all(isinstance(r, LLMFatalError) for r in failed)
        assert batch_stats(fake.url)["batches_created"] == 1
        results, counters = asyncio.run(session(fake.base_url))
        assert all(isinstance(r, LLMResult) and isinstance(r.value, BlindSolve) for r in results)
        assert counters["reattached_batches"] == 1 and counters["batches_submitted"] == 0
        assert batch_stats(fake.url)["batches_created"] == 1
        assert fake.stats()["duplicate_successes"] == 0


def test_fake_batch_api_speaks_the_sdk(tmp_path: Path) -> None:
    with FakeLLMServer(FakeConfig()) as fake:
        configure_batch(fake.url, delay_s=0.0)
        client = openai.OpenAI(base_url=fake.base_url, api_key="x")
        line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "fake-finance-1", "messages": [{"role": "user",
                                                                  "content": "안녕"}]}}
        uploaded = client.files.create(file=("in.jsonl", json.dumps(line).encode() + b"\n"),
                                       purpose="batch")
        assert client.files.retrieve(uploaded.id).bytes == uploaded.bytes
        batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                      completion_window="24h")
        for _ in range(100):
            batch = client.batches.retrieve(batch.id)
            if batch.status == "completed":
                break
            time.sleep(0.02)
        assert batch.status == "completed" and batch.output_file_id
        assert batch.request_counts is not None and batch.request_counts.completed == 1
        out_line = json.loads(client.files.content(batch.output_file_id).text)
        assert out_line["custom_id"] == "a" and out_line["response"]["status_code"] == 200
        assert [b.id for b in client.batches.list()] == [batch.id]
        cancelled = client.batches.cancel(batch.id)
        assert cancelled.status == "completed"  # a finished batch cannot be cancelled
        client.close()


def test_batch_build_respects_the_budget_and_resumes(tmp_path: Path) -> None:
    from finmcq.engine.budget import BudgetExceeded

    out = tmp_path / "run"
    with FakeLLMServer(FakeConfig()) as fake:
        configure_batch(fake.url, delay_s=0.05)
        with pytest.raises(BudgetExceeded):
            run_build(settings_for(fake.base_url, out, budget_usd=0.01), progress=False)
        with RunStore(out) as store:
            assert 0 < store.total_cost() <= 0.01
        result = run_build(settings_for(fake.base_url, out), progress=False)
        assert result.pairs == 2 * QUESTIONS
        assert fake.stats()["duplicate_successes"] == 0
        served = batch_stats(fake.url)
        assert served["lines_processed"] == served["lines_succeeded"]
