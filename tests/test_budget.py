"""--budget-usd: a build stops cleanly before passing its budget, and a rerun resumes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from finmcq.build import run_build
from finmcq.config import BuildSettings
from finmcq.engine.budget import Budget, BudgetExceeded, prompt_token_bound, worst_case_usd
from finmcq.engine.cost import PriceTable
from finmcq.engine.store import RunStore
from finmcq.fake.server import FakeConfig, FakeLLMServer


def settings_for(base_url: str, out: Path, **kw: Any) -> BuildSettings:
    values: dict[str, Any] = {"source": "sample", "questions": 100, "seed": 11, "out": out,
                              "model": "fake-finance-1", "base_url": base_url,
                              "concurrency": 20}
    values.update(kw)
    return BuildSettings(**values)


def test_small_budget_stops_cleanly_and_a_larger_one_resumes_without_resending(
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    budget = 0.02  # a 100-question build against the fake costs about $0.085
    with FakeLLMServer(FakeConfig()) as fake:
        with pytest.raises(BudgetExceeded) as stopped:
            run_build(settings_for(fake.base_url, out, budget_usd=budget), progress=False)
        message = str(stopped.value)
        assert "Budget reached" in message and "--budget-usd" in message
        assert "Delivered" in message and "of 100 questions" in message
        with RunStore(out) as store:
            spent = store.total_cost()
            replies_saved = sum(v["responses"] for v in store.usage_by_stage().values())
        assert 0.5 * budget < spent <= budget  # it got far, and never past the limit
        assert fake.stats()["in_flight"] == 0
        assert replies_saved == fake.stats()["by_status"]["200"]  # every paid reply was kept
        assert not list(out.glob("final_training_data_*"))

        result = run_build(settings_for(fake.base_url, out, budget_usd=1.0), progress=False)
        assert result.pairs == 200
        assert fake.stats()["duplicate_successes"] == 0  # nothing was paid for twice
    with RunStore(out) as store:
        assert store.total_cost() <= 1.0


def test_a_finished_run_rebuilds_from_cache_under_any_budget(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with FakeLLMServer(FakeConfig()) as fake:
        run_build(settings_for(fake.base_url, out, questions=30), progress=False)
        before = fake.stats()["requests"]
        again = run_build(settings_for(fake.base_url, out, questions=30, budget_usd=0.0001),
                          progress=False)
        assert again.pairs == 60 and fake.stats()["requests"] == before  # cache hits are free


def test_budget_waits_for_requests_in_flight_before_giving_up() -> None:
    spent = [0.0]
    budget = Budget(1.0, lambda: spent[0])

    async def scenario() -> list[str]:
        events: list[str] = []
        await budget.acquire(0.6)  # in flight: 0.6 reserved

        async def second() -> None:
            await budget.acquire(0.6)  # does not fit yet: waits for the first to settle
            events.append("second admitted")

        task = asyncio.create_task(second())
        await asyncio.sleep(0.01)
        assert budget.waits == 1 and not events
        spent[0] = 0.3  # the first one really cost 0.3
        budget.release(0.6)
        await task
        spent[0] = 0.9
        budget.release(0.6)
        with pytest.raises(BudgetExceeded):  # nothing in flight and 0.9 + 0.6 > 1.0
            await budget.acquire(0.6)
        with pytest.raises(BudgetExceeded):  # and every later request stops at once
            await budget.acquire(0.01)
        return events

    assert asyncio.run(scenario()) == ["second admitted"]


def test_worst_case_bounds_prompt_by_utf8_bytes_and_output_by_max_tokens() -> None:
    body = {"model": "gpt-4o-mini", "max_tokens": 1000,
            "messages": [{"role": "system", "content": "금리"}, {"role": "user", "content": "ab"}]}
    assert prompt_token_bound(body) == 6 + 2 + 2 * 8
    prices = PriceTable.load()
    assert worst_case_usd(prices, "gpt-4o-mini", body) == pytest.approx(
        (24 * 0.15 + 1000 * 0.60) / 1e6)
    unlimited = Budget(None, lambda: 1e9)
    asyncio.run(unlimited.acquire(1e9))  # no limit: never waits, never raises
