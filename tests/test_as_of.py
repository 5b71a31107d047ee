"""`--as-of YYYY-MM`: the reference month reaches every prompt, the stats, card and report."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from finmcq.asof import as_of_label, current_month, parse_as_of
from finmcq.build import run_build
from finmcq.card import dataset_card
from finmcq.config import BuildSettings
from finmcq.errors import ConfigError
from finmcq.fake.server import FakeConfig, FakeLLMServer
from finmcq.stages.base import load_prompt

from .conftest import PYTHON, subprocess_env

STAGES = ("relevance", "rewrite", "generate", "verify", "judge", "solve", "grade")


def test_months_are_validated() -> None:
    assert parse_as_of("2025-03") == "2025-03"
    assert as_of_label("2025-03") == "2025년 3월"
    assert re.fullmatch(r"\d{4}-\d{2}", current_month())
    for bad in ("2025-13", "2025-3", "25-03", "March 2025", "2025-00", "1800-01"):
        with pytest.raises(ValueError):
            parse_as_of(bad)
    with pytest.raises(ConfigError, match="as_of"):
        BuildSettings.from_sources(None, {"as_of": "2025/03"})


def test_no_prompt_hard_codes_a_year() -> None:
    for stage in STAGES:
        prompt = load_prompt(stage)
        assert "{as_of}" in prompt.system, stage
        assert not re.search(r"20\d\d년", prompt.system + prompt.user), stage
        system = prompt.messages({}, "2023-07")[0]["content"]
        assert "2023년 7월" in system and "{as_of}" not in system


def test_a_bad_month_on_the_command_line_is_a_clear_error(tmp_path: Path) -> None:
    run = subprocess.run([PYTHON, "-m", "finmcq.cli", "build", "--source", "sample",
                          "--as-of", "2025-13", "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, env=subprocess_env(), timeout=120,
                         check=False)
    assert run.returncode == 2
    assert "as_of" in run.stderr and "month must be 01 to 12" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "run").exists()


def _requests(out: Path) -> list[tuple[str, list[dict[str, str]]]]:
    with sqlite3.connect(out / "finmcq.sqlite") as db:
        rows = db.execute("SELECT stage, request_json FROM responses").fetchall()
    return [(stage, json.loads(request)["messages"]) for stage, request in rows]


@pytest.fixture(scope="module")
def dated_build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("asof") / "run"
    with FakeLLMServer(FakeConfig()) as fake:
        settings = BuildSettings(source="sample", questions=21, seed=3, out=out,
                                 model="fake-finance-1", base_url=fake.base_url,
                                 grade_solutions=True, as_of="2025-03")
        result = run_build(settings, progress=False)
        stats = json.loads(result.stats.read_text("utf-8"))
        # A rerun in the same folder without --as-of keeps the month: every reply is cached.
        again = run_build(settings.model_copy(update={"as_of": None}), progress=False)
    items = [json.loads(line) for line in result.items.read_text("utf-8").splitlines()]
    return {"out": out, "stats": stats, "items": items,
            "again": json.loads(again.stats.read_text("utf-8"))}


def test_every_request_of_every_stage_states_the_month(dated_build: dict[str, Any]) -> None:
    requests = _requests(dated_build["out"])
    assert {stage for stage, _ in requests} == set(STAGES)
    for stage, messages in requests:
        assert "2025년 3월" in messages[0]["content"], stage
        assert "{as_of}" not in json.dumps(messages, ensure_ascii=False)


def test_stats_and_card_record_the_month_and_time_sensitive_items(
        dated_build: dict[str, Any]) -> None:
    stats, items = dated_build["stats"], dated_build["items"]
    assert stats["as_of"] == "2025-03" and stats["settings"]["as_of"] == "2025-03"
    marked = [i["item_id"] for i in items if i["quality"]["time_sensitive"]]
    assert all(isinstance(i["quality"]["time_sensitive"], bool) for i in items)
    ts = stats["time_sensitive"]
    assert ts["judged"] == 21 and ts["count"] == len(marked) and ts["items"] == marked
    card = dataset_card(dated_build["out"])
    assert "## Reference date" in card and "**2025-03**" in card
    assert f"**{len(marked)} of 21**" in card
    # The answer cues sit next to the letters: the rank counts are the stats' own.
    assert "## Answer cues" in card and "Negative stems" in card
    for rank, count in stats["key_length_ranks"]["counts"].items():
        assert f"| {rank} | {count} |" in card


def test_a_rerun_keeps_the_month_and_pays_nothing(dated_build: dict[str, Any]) -> None:
    again = dated_build["again"]
    assert again["as_of"] == "2025-03"
    usage = again["usage_this_session"]
    assert sum(u["requests"] for u in usage.values()) == 0
    assert sum(u["cache_hits"] for u in usage.values()) > 0


def test_the_report_shows_the_month_and_the_answer_cues(dated_build: dict[str, Any]) -> None:
    from finmcq.report import write_report

    page = write_report(dated_build["out"]).read_text("utf-8")
    assert "rules as of" in page and "2025-03" in page
    assert "time-sensitive keys" in page and "negative stems" in page
    assert "Key&#x27;s length rank" in page or "Key's length rank" in page
