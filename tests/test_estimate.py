"""`finmcq estimate`: planned calls, tokens and USD per stage, without any LLM call."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from finmcq.build import run_build
from finmcq.config import BuildSettings
from finmcq.estimate import (
    Assumptions,
    StageAssumption,
    active_stages,
    approx_tokens,
    compare,
    estimate_build,
    latest_stats,
    measured_from_run_dir,
    messages_tokens,
    planned_calls,
    rates_from_stats,
)
from finmcq.fake.server import FakeConfig, FakeLLMServer
from finmcq.sources import load_source

STAGES = ("relevance", "rewrite", "generate", "verify", "solve")  # without judge and grade


@pytest.fixture(scope="module")
def sources() -> list[Any]:
    return load_source("sample", None, None)


def settings(**kw: Any) -> BuildSettings:
    values: dict[str, Any] = {"source": "sample", "questions": 1000, "model": "gpt-4o-mini",
                              "out": Path("unused"), "second_answer_judge": False,
                              "grade_solutions": False}
    values.update(kw)
    return BuildSettings(**values)


def with_rejects(**rates: float) -> Assumptions:
    base = Assumptions.load()
    stages = {name: StageAssumption(a.reply_tokens, rates.get(name, 0.0))
              for name, a in base.stages.items()}
    return dataclasses.replace(base, stages=stages, invalid_reply_rate=0.0)


def test_without_rejections_every_question_costs_one_draft_one_verify_one_solve() -> None:
    calls, delivered = planned_calls(40, settings(), with_rejects().stages)
    assert calls == {"relevance": 40, "rewrite": 40, "generate": 960, "verify": 1000,
                     "solve": 1000}
    assert delivered == pytest.approx(1000)


def test_optional_stages_and_blind_solves_add_their_calls() -> None:
    full = settings(second_answer_judge=True, grade_solutions=True, blind_solves=3)
    assert active_stages(full) == ("relevance", "rewrite", "generate", "verify", "judge",
                                   "solve", "grade")
    base = Assumptions.load().stages
    rates = {**with_rejects().stages,
             "judge": StageAssumption(base["judge"].reply_tokens, 0.0, again=0.2),
             "grade": StageAssumption(base["grade"].reply_tokens, 0.0, again=0.1)}
    calls, _ = planned_calls(40, full, rates)
    assert calls["verify"] == pytest.approx(3000)  # three blind solves per item
    assert calls["judge"] == pytest.approx(1200)  # a fifth audited again after a repair
    assert calls["grade"] == pytest.approx(1100)  # a tenth regraded after regeneration...
    assert calls["solve"] == pytest.approx(1100)  # ...with a new solution


def test_rejections_add_attempts_and_solve_retries() -> None:
    rejects = with_rejects(relevance=0.5, rewrite=0.1, generate=0.1, verify=0.2,
                           solve=0.1).stages
    calls, delivered = planned_calls(40, settings(solve_tries=3), rejects)
    assert calls["relevance"] == 40 and calls["rewrite"] == 20
    # a slot succeeds with p = 0.9 * 0.8 * (1 - 0.1^3) ≈ 0.719, so ≈ 1/p attempts per slot
    attempts = calls["rewrite"] + calls["generate"]
    assert 1000 / 0.72 * 0.98 < attempts < 1000 / 0.72 * 1.02
    assert calls["verify"] == pytest.approx(attempts * 0.9)
    assert calls["solve"] == pytest.approx(attempts * 0.9 * 0.8 * (1 + 0.1 + 0.01))
    assert 995 < delivered <= 1000  # six attempts nearly always suffice


def test_few_attempts_are_flagged_as_unlikely_to_fill_every_slot(sources: list[Any]) -> None:
    est = estimate_build(settings(max_attempts_per_question=1), sources,
                         assumptions=with_rejects(verify=0.5))
    assert est.expected_delivered == pytest.approx(500, rel=0.01)
    assert any("expected to fill only" in note for note in est.notes)


def test_tokens_follow_korean_character_counts() -> None:
    profile = Assumptions.load().profile_for("gpt-4o-mini")
    assert profile.name == "o200k"
    assert approx_tokens("금리 인상", profile) == pytest.approx(4 * 0.65 + 0.5)
    assert approx_tokens("ETF 10%", profile) == pytest.approx(6 * 0.4 + 0.5)
    messages = ({"role": "system", "content": "가" * 100}, {"role": "user", "content": "나" * 10})
    assert messages_tokens(messages, profile) == pytest.approx(110 * 0.65 + 2 * 4 + 3)
    # gpt-4 (cl100k) spends about twice as much on Korean; the longest prefix decides
    assert Assumptions.load().profile_for("gpt-4-turbo").name == "cl100k"
    assert Assumptions.load().profile_for("gpt-4o").name == "o200k"


def test_usd_follows_the_price_table_per_stage_model_and_batch_discount(
        sources: list[Any]) -> None:
    plain = estimate_build(settings(), sources)
    assert plain.usd is not None and plain.usd > 0
    assert set(plain.stages) == set(STAGES)
    batch = estimate_build(settings(batch=True), sources)
    assert batch.usd == pytest.approx(plain.usd * 0.5)
    assert batch.calls == pytest.approx(plain.calls)
    stronger = estimate_build(settings(stage_models={"solve": "gpt-4o"}), sources)
    assert stronger.stages["solve"].model == "gpt-4o"
    assert stronger.stages["verify"].usd == pytest.approx(plain.stages["verify"].usd)
    assert stronger.stages["solve"].usd > 10 * plain.stages["solve"].usd  # type: ignore[operator]
    unknown = estimate_build(settings(model="my-local-model"), sources)
    assert unknown.usd is None and any("no price" in note for note in unknown.notes)
    assert unknown.as_dict()["total"]["usd"] is None


def test_render_and_json_show_every_stage(sources: list[Any]) -> None:
    est = estimate_build(settings(), sources)
    console = Console(record=True, width=140)
    console.print(est.render())
    text = console.export_text()
    for stage in STAGES:
        assert stage in text
    assert "total" in text and "$" in text
    doc = json.loads(json.dumps(est.as_dict()))
    assert doc["total"]["calls"] == pytest.approx(est.calls, abs=0.1)
    assert "calls" in est.as_text().splitlines()[0]


def test_estimate_matches_a_real_build_and_compare_reports_the_ratios(
        tmp_path: Path, sources: list[Any]) -> None:
    out = tmp_path / "run"
    build_settings = BuildSettings(source="sample", questions=60, seed=5, out=out,
                                   model="fake-finance-1", grade_solutions=True)
    with FakeLLMServer(FakeConfig()) as fake:
        run_settings = build_settings.model_copy(update={"base_url": fake.base_url})
        result = run_build(run_settings, progress=False)
        calls_received = fake.stats()["requests"]
    stats = json.loads(result.stats.read_text("utf-8"))
    assert latest_stats(out) == stats
    # With the rejection rates and reply lengths this build measured, the estimate of the same
    # build must come out at what it really did.
    assumptions = rates_from_stats(stats, with_rejects())
    measured = measured_from_run_dir(out)
    assert set(measured) == set(active_stages(build_settings))
    est = estimate_build(build_settings, sources, measured=measured, assumptions=assumptions)
    assert est.calls == pytest.approx(calls_received, rel=0.05)
    report = compare(est, stats)
    total = report["total"]
    assert total["calls"]["ratio"] == pytest.approx(1.0, abs=0.05)
    # The fake counts two characters per token; the estimate models o200k_base: within 15 %.
    assert total["prompt_tokens"]["ratio"] == pytest.approx(1.0, abs=0.15)
    assert total["completion_tokens"]["ratio"] == pytest.approx(1.0, abs=0.05)
    assert total["usd"]["ratio"] == pytest.approx(1.0, abs=0.15)
    assert set(report) == {*active_stages(build_settings), "total"}
    # Without measurements the configured reply lengths are used, and said so.
    configured = estimate_build(build_settings, sources, assumptions=assumptions)
    assert {s.reply_tokens_from for s in configured.stages.values()} == {"configured"}
    assert {s.reply_tokens_from for s in est.stages.values()} == {"measured"}


def test_a_run_directory_with_history_gives_measured_figures(tmp_path: Path,
                                                             sources: list[Any]) -> None:
    from finmcq.estimate import estimate_with_history

    out = tmp_path / "run"
    build_settings = BuildSettings(source="sample", questions=40, seed=3, out=out,
                                   model="fake-finance-1")
    fresh = estimate_with_history(build_settings, sources)
    assert {s.reply_tokens_from for s in fresh.stages.values()} == {"configured"}
    with FakeLLMServer(FakeConfig()) as fake:
        run_build(build_settings.model_copy(update={"base_url": fake.base_url}), progress=False)
        calls = fake.stats()["requests"]
    again = estimate_with_history(build_settings, sources)
    assert any("measured by the last build" in n for n in again.notes)
    assert again.calls == pytest.approx(calls, rel=0.05)
