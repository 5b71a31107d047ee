"""Issue 12: every broken reply is a retried, counted invalid reply; long waits are visible.

Each fault kind is sent by the fake over real HTTP (``FakeConfig.faults`` = ``--faults``).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from finmcq.engine.client import LLMCallFailed, LLMFatalError
from finmcq.engine.transport import BrokenBody, decode_json_body, retry_after_s
from finmcq.fake.config import BODY_FAULTS, ENVELOPE_FAULTS

from .conftest import PYTHON, subprocess_env
from .test_engine import make_engine, run_all, verify_request

# fault the fake sends -> cause the engine records
CAUSES = {
    "cut_body": "cut_body",
    "not_json": "not_json",
    "not_utf8": "not_utf8",
    "empty_body": "empty_body",
    "html_body": "html_body",
    "no_choices": "no_choices",
    "empty_choices": "empty_choices",
    "null_message": "no_message",
    "content_filter": "content_filter",
    "refusal": "refusal",
}


def test_every_fault_kind_has_a_cause() -> None:
    assert set(CAUSES) == set(BODY_FAULTS) | set(ENVELOPE_FAULTS)


@pytest.mark.parametrize("kind", sorted(CAUSES))
def test_broken_reply_is_retried_and_counted(kind: str, tmp_path: Path, make_fake: Any) -> None:
    fake = make_fake(faults={kind: 0.5})
    engine, store = make_engine(tmp_path, fake.base_url, max_invalid=30, concurrency=10)
    results = asyncio.run(run_all(engine, [verify_request(i) for i in range(16)]))
    assert all(r.value.answer in "ABCDEFG" for r in results)
    served = fake.stats()["faults"]
    assert served.get(kind, 0) >= 3, served
    retries = engine.meter.stage("verify").retries
    # every broken reply served became one retry with its own cause, and nothing else did
    assert dict(retries) == {CAUSES[kind]: served[kind]}
    assert store.event_counts()[f"retry:{CAUSES[kind]}"] == served[kind]
    store.close()


def test_cut_body_inside_a_multibyte_character(tmp_path: Path, make_fake: Any) -> None:
    """The crash of issue 12: a 200 body cut inside a Korean character (0xeb...)."""
    fake = make_fake(faults={"cut_body": 1.0})
    engine, store = make_engine(tmp_path, fake.base_url, max_invalid=4)
    with pytest.raises(LLMCallFailed) as info:
        asyncio.run(run_all(engine, [verify_request(3)]))
    assert info.value.cause == "cut_body"
    assert fake.stats()["requests"] == 4
    store.close()


def test_body_decoding_names_each_way_a_body_is_broken() -> None:
    whole = '{"choices": [{"message": {"content": "금리"}}]}'.encode()
    mid_char = whole[: whole.index("금".encode()) + 1]
    cases = {
        b"": "empty_body",
        b"  \n": "empty_body",
        mid_char: "cut_body",
        whole[:20]: "cut_body",
        whole.decode().encode("cp949"): "not_utf8",
        b"<html><body>502 Bad Gateway</body></html>": "html_body",
        b"upstream connect error": "not_json",
    }
    for body, cause in cases.items():
        with pytest.raises(BrokenBody) as info:
            decode_json_body(body)
        assert info.value.cause == cause, (body, info.value)
    assert decode_json_body(whole)["choices"][0]["message"]["content"] == "금리"


def test_broken_bodies_in_a_build_give_the_clean_result(tmp_path: Path, make_fake: Any) -> None:
    """A CLI build under every broken-reply kind ends with all its pairs and no traceback."""
    fake = make_fake(faults={"broken_body": 0.1, **dict.fromkeys(ENVELOPE_FAULTS, 0.02)},
                     seed=2)
    out = tmp_path / "run"
    result = subprocess.run(
        [PYTHON, "-m", "finmcq.cli", "build", "--source", "sample", "--questions", "40",
         "--model", "fake-finance-1", "--base-url", fake.base_url, "--concurrency", "20",
         "--out", str(out), "--no-contamination-check"],
        env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    import json

    stats = json.loads(next(out.glob("processing_stats_*.json")).read_text("utf-8"))
    assert stats["pairs"] == 80
    served = fake.stats()["faults"]
    retried = stats["retries_by_cause"]
    for kind, n in served.items():
        assert retried.get(CAUSES[kind], 0) >= 1, (kind, n, retried)
    assert sum(served.values()) == sum(retried.values())


# --------------------------------------------------------------------------------------------
# Retry-After
# --------------------------------------------------------------------------------------------


def test_retry_after_forms() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_s({"retry-after": "600"}) == 600.0
    in_90_s = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert 85 <= (retry_after_s({"retry-after": in_90_s}) or 0) <= 90
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # past
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None


def test_long_retry_after_is_shown_and_capped(tmp_path: Path, make_fake: Any) -> None:
    fake = make_fake(faults={"503": 0.3}, retry_after_s=600)
    engine, store = make_engine(tmp_path, fake.base_url, max_retry_wait_s=0.5, max_attempts=20)
    notices: list[str] = []
    engine.notify = notices.append
    started = time.monotonic()
    results = asyncio.run(run_all(engine, [verify_request(i) for i in range(8)]))
    assert len(results) == 8
    assert time.monotonic() - started < 30  # 600 s asked, 0.5 s waited
    assert engine.meter.stage("verify").retries["http_503"] >= 1
    store.close()
    # 0.5 s is below the notice threshold: nothing shown for short waits
    assert notices == []


def test_wait_above_a_few_seconds_is_announced(tmp_path: Path, make_fake: Any,
                                              caplog: pytest.LogCaptureFixture) -> None:
    fake = make_fake(faults={"429": 0.5}, retry_after_s=6)
    engine, store = make_engine(tmp_path, fake.base_url, max_attempts=20)
    notices: list[str] = []
    engine.notify = notices.append
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="finmcq.engine"):
        asyncio.run(run_all(engine, [verify_request(i) for i in range(6)]))
    assert time.monotonic() - started >= 6  # honoured: below the cap
    assert notices and notices[0].startswith("server asked to wait 6 s")
    assert "retrying at " in notices[0]
    assert any("server asked to wait 6 s" in r.getMessage() for r in caplog.records)
    store.close()


def test_every_request_told_to_wait_stops_the_run(tmp_path: Path, make_fake: Any) -> None:
    fake = make_fake(faults={"503": 1.0}, retry_after_s=600)
    engine, store = make_engine(tmp_path, fake.base_url, concurrency=4)
    started = time.monotonic()
    with pytest.raises(LLMFatalError, match="wait 600 s"):
        asyncio.run(run_all(engine, [verify_request(i) for i in range(20)]))
    assert time.monotonic() - started < 10
    store.close()


def test_build_against_a_server_that_says_wait_600_s_stops_quickly(tmp_path: Path,
                                                                    make_fake: Any) -> None:
    """`finmcq build` against 503 + retry-after: 600 on everything: message, exit 1, quickly."""
    fake = make_fake(faults={"503": 1.0}, retry_after_s=600)
    started = time.monotonic()
    result = subprocess.run(
        [PYTHON, "-m", "finmcq.cli", "build", "--source", "sample", "--questions", "20",
         "--model", "fake-finance-1", "--base-url", fake.base_url, "--concurrency", "4",
         "--out", str(tmp_path / "run"), "--no-contamination-check"],
        env=subprocess_env(), capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert "server asked to wait 600 s" in result.stderr
    assert "--max-retry-wait" in result.stderr and "error:" in result.stderr
    assert elapsed < 60
