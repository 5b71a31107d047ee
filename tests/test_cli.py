"""The command line: fast help, config file + flags, clear errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from finmcq.fake.server import FakeLLMServer

from .conftest import PYTHON, subprocess_env


def finmcq(*args: str, env: dict[str, str] | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "finmcq.cli", *args], capture_output=True, text=True,
                          env=env or subprocess_env(), timeout=timeout)


def test_help_is_fast_and_lists_the_commands() -> None:
    started = time.monotonic()
    result = finmcq("--help")
    assert result.returncode == 0
    for command in ("build", "demo", "fake-llm"):
        assert command in result.stdout
    assert time.monotonic() - started < 5  # generous here; the bench of record is `time`


def test_config_file_is_read_and_flags_win(tmp_path: Path, fake_llm: FakeLLMServer) -> None:
    config = tmp_path / "build.toml"
    config.write_text(
        f'source = "sample"\nquestions = 9\nseed = 5\nmodel = "fake-finance-1"\n'
        f'base_url = "{fake_llm.base_url}"\nconcurrency = 4\n'
        f'instruction = "다음 문제를 읽고 정답으로 가장 알맞은 것을 고르시오."\n',
        encoding="utf-8")
    out = tmp_path / "run"
    result = finmcq("build", "--config", str(config), "--questions", "14", "--out", str(out))
    assert result.returncode == 0, result.stderr
    pairs = json.loads(next(out.glob("final_training_data_*.json")).read_text("utf-8"))
    assert len(pairs) == 28  # the flag (14) won over the file (9)
    assert pairs[0]["prompt"].startswith("다음 문제를 읽고 정답으로 가장 알맞은 것을 고르시오.\n")
    stats = json.loads(next(out.glob("processing_stats_*.json")).read_text("utf-8"))
    assert stats["seed"] == 5 and stats["settings"]["concurrency"] == 4


def test_bad_config_value_is_a_one_paragraph_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("questions = -3\n", encoding="utf-8")
    result = finmcq("build", "--config", str(config), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "questions" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_missing_key_for_a_hosted_api_stops_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = finmcq("build", "--source", "sample", "--out", str(out))
    assert result.returncode == 2
    assert "OPENAI_API_KEY" in result.stderr and "finmcq demo" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_bad_source_stops_before_any_call(tmp_path: Path, fake_llm: FakeLLMServer) -> None:
    bad = tmp_path / "questions.csv"
    bad.write_text("question,answer,A,B,C,D\n금리가 오르면?,7,a,b,c,d\n", encoding="utf-8")
    out = tmp_path / "run"
    result = finmcq("build", "--source", str(bad), "--base-url", fake_llm.base_url,
                    "--model", "fake-finance-1", "--out", str(out))
    assert result.returncode == 2
    assert "questions.csv" in result.stderr and "line 2" in result.stderr
    assert "Traceback" not in result.stderr
    assert fake_llm.stats()["requests"] == 0
    assert not out.exists()


def test_unknown_model_stops_with_a_message_naming_it(tmp_path: Path,
                                                      fake_llm: FakeLLMServer) -> None:
    result = finmcq("build", "--source", "sample", "--questions", "5", "--base-url",
                    fake_llm.base_url, "--model", "gpt-9-imaginary", "--out",
                    str(tmp_path / "run"))
    assert result.returncode == 1
    assert "gpt-9-imaginary" in result.stderr and "404" in result.stderr
    assert "Traceback" not in result.stderr
