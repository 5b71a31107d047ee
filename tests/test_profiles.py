"""Every README backend, as the fake's server profiles: doctor and a small build over real HTTP."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from finmcq.build import run_build
from finmcq.config import BuildSettings
from finmcq.doctor import run_doctor
from finmcq.estimate import estimate_with_history
from finmcq.fake.server import FakeConfig, FakeLLMServer
from finmcq.sources import load_source
from tests.conftest import PYTHON, subprocess_env

# A user's capability rule for a server the packaged table cannot recognise by its URL (here the
# fake on 127.0.0.1 standing in for https://api.anthropic.com/v1/, which the table does know).
ANTHROPIC_RULE = """
[[rule]]
name = "Anthropic stand-in"
base_url = "http://127.0.0.1:*"
token_limit = "max_tokens"
temperature_max = 1.0
seed = false
response_format = "ignored"
reasoning_effort = []
"""

BACKENDS = [  # profile, model, path of the OpenAI-compatible root, needs ANTHROPIC_RULE
    ("openai-reasoning", "gpt-5-mini", "/v1", False),
    ("azure", "finmcq-gpt5-mini", "/openai/v1", False),
    ("vllm", "Qwen/Qwen2.5-14B-Instruct", "/v1", False),
    ("ollama", "qwen2.5:14b", "/v1", False),
    ("llamacpp", "whatever-name", "/v1", False),
    ("anthropic", "claude-haiku-4-5", "/v1", True),
    ("gemini", "gemini-2.5-flash", "/v1beta/openai", False),
]


def _settings(fake: FakeLLMServer, prefix: str, model: str, out: Path, caps: Path | None,
              **extra: Any) -> BuildSettings:
    return BuildSettings(source="sample", questions=extra.pop("questions", 6), model=model,
                         base_url=fake.url + prefix, out=out, capabilities=caps, **extra)


@pytest.mark.parametrize(("profile", "model", "prefix", "rule"), BACKENDS,
                         ids=[b[0] for b in BACKENDS])
def test_doctor_and_build_against_each_backend(tmp_path: Path, profile: str, model: str,
                                               prefix: str, rule: bool) -> None:
    caps: Path | None = None
    if rule:
        caps = tmp_path / "caps.toml"
        caps.write_text(ANTHROPIC_RULE, "utf-8")
    with FakeLLMServer(FakeConfig(profile=profile)) as fake:
        settings = _settings(fake, prefix, model, tmp_path / "run", caps)
        checks = run_doctor(settings)
        assert not [c for c in checks if c.failed], checks
        shape = next(c for c in checks if c.name == "request_shape")
        fake.reset()
        result = run_build(settings, progress=False)
        served = fake.stats()
    assert result.pairs == 12
    stats = json.loads(result.stats.read_text("utf-8"))
    # No invalid-reply retries burnt on any backend, the one ignoring response_format included.
    assert stats["retries_by_cause"] == {}
    assert all(u["failed_calls"] == 0 for u in stats["usage_this_session"].values())
    assert stats["request_shapes"][model] == shape.detail.split(" (adapted")[0]
    if profile == "azure":  # a deployment name the table cannot know: adapted on the first 400s
        assert "max_completion_tokens" in shape.detail
        assert "temperature fixed" in shape.detail
        assert served["by_status"].get("400", 0) > 0
    else:  # the table got the shape right: the server never had to say no
        assert "400" not in served["by_status"]
    reasoning = stats["reasoning_tokens"]["all_sessions"]
    assert (reasoning > 0) == (profile in ("openai-reasoning", "azure", "gemini"))
    if profile == "anthropic":
        assert "schema in the prompt" in shape.detail
        db = sqlite3.connect(tmp_path / "run" / "finmcq.sqlite")
        contents = [row[0] for row in db.execute("SELECT content FROM responses")]
        db.close()
        wrapped = [c for c in contents if not c.lstrip().startswith("{")]
        assert wrapped and len(wrapped) < len(contents)  # fenced or after a sentence, and plain


def test_anthropic_without_the_rule_is_caught_by_doctor(tmp_path: Path) -> None:
    with FakeLLMServer(FakeConfig(profile="anthropic")) as fake:
        checks = run_doctor(_settings(fake, "/v1", "claude-haiku-4-5", tmp_path, None))
    structured = next(c for c in checks if c.name == "structured_output")
    assert structured.failed and "ignores response_format" in structured.detail
    assert "--capabilities" in structured.fix


def test_adapted_shape_is_remembered_by_a_resumed_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with FakeLLMServer(FakeConfig(profile="azure")) as fake:
        first = run_build(_settings(fake, "/openai/v1", "prod-reasoning", out, None),
                          progress=False)
        assert first.pairs == 12 and fake.stats()["by_status"].get("400", 0) > 0
        fake.reset()
        # The same run, asked for more: the 6 done are cached, the rest use the remembered shape.
        second = run_build(_settings(fake, "/openai/v1", "prod-reasoning", out, None,
                                     questions=10), progress=False)
        served = fake.stats()
    assert second.pairs == 20
    assert "400" not in served["by_status"] and served["by_status"]["200"] > 0
    stats = json.loads(second.stats.read_text("utf-8"))
    assert any(u["cache_hits"] for u in stats["usage_this_session"].values())


def test_blind_solves_without_temperature_are_independent(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    caplog.set_level(logging.INFO, logger="finmcq")
    with FakeLLMServer(FakeConfig(profile="openai-reasoning")) as fake:
        result = run_build(_settings(fake, "/v1", "gpt-5-nano", tmp_path, None, blind_solves=3,
                                     reasoning_effort="minimal"), progress=False)
        served = fake.stats()
    assert result.pairs == 12
    stats = json.loads(result.stats.read_text("utf-8"))
    verify = stats["usage_this_session"]["verify"]
    assert verify["requests"] >= 3 * 6  # k distinct requests per item, none a cache hit
    assert served["distinct_bodies"] == served["requests"]  # no two payloads alike
    assert "runs at its default temperature only" in caplog.text
    assert "reasoning_effort minimal" in stats["request_shapes"]["gpt-5-nano"]


def test_estimate_assumes_reasoning_then_measures_it(tmp_path: Path) -> None:
    sources = load_source("sample", None, None)
    with FakeLLMServer(FakeConfig(profile="openai-reasoning")) as fake:
        settings = _settings(fake, "/v1", "gpt-5-mini", tmp_path, None, questions=20)
        before = estimate_with_history(settings, sources)
        assert before.stages["solve"].reasoning_from == "assumed"
        assert before.stages["solve"].reasoning_tokens > 0
        assert before.usd is not None and before.usd > 0  # gpt-5-mini is priced
        run_build(settings, progress=False)
    after = estimate_with_history(settings, sources)
    assert after.stages["solve"].reasoning_from == "measured"
    assert after.as_dict()["total"]["reasoning_tokens"] > 0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "finmcq.cli", *args], capture_output=True, text=True,
                          env=subprocess_env(), timeout=300)


def test_gpt5_mini_done_when_through_the_cli(tmp_path: Path) -> None:
    """The issue's check: doctor passes and a 20-question build gives 40 valid pairs with
    reasoning tokens in the stats, against an endpoint that validates like the GPT-5 family."""
    with FakeLLMServer(FakeConfig(profile="openai-reasoning")) as fake:
        doctor = _cli("doctor", "--base-url", fake.base_url, "--model", "gpt-5-mini",
                      "--reasoning-effort", "low")
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert ("uses max_completion_tokens; temperature fixed at the model default; "
                "reasoning_effort low") in doctor.stdout
        build = _cli("build", "--source", "sample", "--questions", "20", "--model",
                     "gpt-5-mini", "--base-url", fake.base_url, "--out", str(tmp_path),
                     "--stage-reasoning-effort", "solve=medium", "--reasoning-effort", "low")
        assert build.returncode == 0, build.stdout + build.stderr
        assert "400" not in fake.stats()["by_status"]
    stats_file = next(tmp_path.glob("processing_stats_*.json"))
    stats = json.loads(stats_file.read_text("utf-8"))
    pairs = json.loads(next(tmp_path.glob("final_training_data_*.json")).read_text("utf-8"))
    assert len(pairs) == 40 and stats["pairs"] == 40
    assert stats["retries_by_cause"] == {}
    assert stats["reasoning_tokens"]["all_sessions"] > 0
    assert all(u["reasoning_tokens"] > 0 for u in stats["usage_this_session"].values()
               if u["requests"])
    assert stats["cost_usd"]["total"] > 0  # billed at gpt-5-mini's list price
    assumed_vs_measured = stats["estimate_vs_actual"]["total"]["reasoning_tokens"]
    assert assumed_vs_measured["estimate"] > 0 and assumed_vs_measured["actual"] > 0
    log = next(tmp_path.glob("processing_*.log")).read_text("utf-8")
    assert "reasoning" in log
    report = next(tmp_path.glob("report_*.html")).read_text("utf-8")
    assert "of which reasoning" in report  # the report's cost table shows them


def test_gemini_effort_the_model_lacks_is_adapted_from_googles_error(tmp_path: Path) -> None:
    # The table lists "none" for every Gemini 2.5 model; 2.5 Pro cannot turn thinking off.
    with FakeLLMServer(FakeConfig(profile="gemini")) as fake:
        result = run_build(_settings(fake, "/v1beta/openai", "gemini-2.5-pro", tmp_path, None,
                                     reasoning_effort="none"), progress=False)
        assert fake.stats()["by_status"].get("400", 0) > 0
    stats = json.loads(result.stats.read_text("utf-8"))
    assert result.pairs == 12 and stats["retries_by_cause"] == {}
    assert "reasoning_effort minimal" in stats["request_shapes"]["gemini-2.5-pro"]
    assert stats["request_shape_changes"]["gemini-2.5-pro"]
