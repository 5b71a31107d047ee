"""End to end: `finmcq build` against the fake LLM over HTTP gives exactly the promised pairs."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from finmcq.build import run_build
from finmcq.config import BuildSettings
from finmcq.records import LETTERS, normalize_text

from .conftest import PYTHON, STEP1, subprocess_env


def settings_for(base_url: str, out: Path, **kw: Any) -> BuildSettings:
    values: dict[str, Any] = {"source": "sample", "questions": 1000, "seed": 7, "out": out,
                              "model": "fake-finance-1", "base_url": base_url}
    values.update(kw)
    return BuildSettings(**values)


Outputs = tuple[list[dict[str, str]], list[dict[str, Any]], dict[str, Any]]


def load_outputs(run_dir: Path) -> Outputs:
    data = json.loads(max(run_dir.glob("final_training_data_*.json")).read_text("utf-8"))
    items = [json.loads(line) for line in
             max(run_dir.glob("items_*.jsonl")).read_text("utf-8").splitlines()]
    stats = json.loads(max(run_dir.glob("processing_stats_*.json")).read_text("utf-8"))
    return data, items, stats


@pytest.fixture(scope="module")
def full_build(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from finmcq.fake.server import FakeConfig, FakeLLMServer

    out = tmp_path_factory.mktemp("build") / "run"
    with FakeLLMServer(FakeConfig()) as fake:
        result = run_build(settings_for(fake.base_url, out), progress=False)
        server_stats = fake.stats()
    return result, load_outputs(out), server_stats


def test_exactly_2000_pairs_in_the_promised_format(full_build: Any) -> None:
    result, (pairs, items, _stats), _ = full_build
    assert result.pairs == 2000 and len(pairs) == 2000 and len(items) == 1000
    assert all(set(p) == {"prompt", "response"} for p in pairs)
    for item, step1, step2 in zip(items, pairs[0::2], pairs[1::2], strict=True):
        match = STEP1.match(step1["prompt"])
        assert match, step1["prompt"][:300]
        assert match["question"] == item["question"]
        assert [match[ch] for ch in LETTERS] == [item["options"][ch] for ch in LETTERS]
        assert step1["response"] == item["solution"]
        assert step2["prompt"] == step1["prompt"] + "\n" + step1["response"]
        assert step2["response"] == item["answer"] and step2["response"] in LETTERS


def test_solutions_review_every_option_and_conclude_with_the_key(full_build: Any) -> None:
    _, (_pairs, items, _stats), _ = full_build
    for item in items:
        solution = item["solution"]
        for section in ("[문제 분석]", "[선택지 검토]", "[정답 도출]", "[이론 및 실무 연계]"):
            assert section in solution
        for letter in LETTERS:
            assert re.search(rf"^{letter}\. \S", solution, re.M), (item["item_id"], letter)
        assert solution.rstrip().endswith(f"정답은 {item['answer']}입니다.")


def test_letters_are_balanced_and_questions_unique(full_build: Any) -> None:
    _, (_pairs, items, stats), _ = full_build
    letters = Counter(item["answer"] for item in items)
    assert set(letters) == set(LETTERS)
    assert all(abs(n - 1000 / 7) <= 2 for n in letters.values()), letters
    assert stats["letters"] == dict(sorted(letters.items()))
    stems = [normalize_text(item["question"]).casefold() for item in items]
    assert len(set(stems)) == len(stems)
    for item in items:
        assert len(set(item["options"].values())) == 7


def test_topics_meet_their_quotas_and_sources_keep_provenance(full_build: Any) -> None:
    _, (_pairs, items, stats), _ = full_build
    topics = Counter(item["topic"] for item in items)
    assert sum(topics.values()) == 1000
    for topic, row in stats["topics"].items():
        assert row["quota"] == 125 and topics[topic] == 125
    rewritten = [item for item in items if item["origin"] == "rewrite"]
    assert rewritten, "relevant sample questions must be rewritten, not only generated"
    for item in rewritten:
        prov = item["provenance"]
        fields = {"dataset", "subject", "split", "row_index", "original_answer", "license"}
        assert fields <= set(prov)


def test_stats_add_up_per_stage(full_build: Any) -> None:
    _, (_pairs, _items, stats), server = full_build
    for name, stage in stats["stages"].items():
        assert stage["in"] - stage["dropped"] == stage["out"], name
        assert stage["dropped"] == sum(stage["drop_reasons"].values()), name
    assert stats["stages"]["relevance"]["in"] == stats["sources"]
    assert stats["stages"]["solve"]["out"] == 1000
    usage = stats["usage_this_session"]
    assert sum(u["requests"] for u in usage.values()) == server["by_status"].get("200", 0)
    assert stats["cost_usd"]["total"] > 0
    assert set(stats["models"]) == {"relevance", "rewrite", "generate", "verify", "solve"}
    assert stats["source"]["splits"] and stats["seed"] == 7


def test_rerun_on_a_finished_run_costs_nothing(full_build: Any, tmp_path: Path) -> None:
    from finmcq.fake.server import FakeConfig, FakeLLMServer

    result, (pairs, _items, _stats), _ = full_build
    with FakeLLMServer(FakeConfig()) as fake:
        again = run_build(settings_for(fake.base_url, result.run_dir), progress=False)
        assert fake.stats()["requests"] == 0
    assert json.loads(again.training_data.read_text("utf-8")) == pairs


def test_killed_build_resumes_to_the_same_result_without_paying_twice(tmp_path: Path) -> None:
    from finmcq.fake.server import FakeConfig, FakeLLMServer

    with FakeLLMServer(FakeConfig(latency_ms=20)) as fake:
        cmd = [PYTHON, "-m", "finmcq.cli", "build", "--source", "sample", "--questions", "200",
               "--seed", "3", "--model", "fake-finance-1", "--base-url", fake.base_url,
               "--concurrency", "20"]
        killed_dir = tmp_path / "killed"
        proc = subprocess.Popen([*cmd, "--out", str(killed_dir)], env=subprocess_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while fake.stats()["by_status"].get("200", 0) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not list(killed_dir.glob("final_training_data_*"))
        resumed = subprocess.run([*cmd, "--out", str(killed_dir)], env=subprocess_env(),
                                 capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        resent = [n for n in fake.stats()["succeeded_bodies"].values() if n > 1]
        assert len(resent) <= 20  # only what was in flight at the kill
        fresh_dir = tmp_path / "fresh"
        fresh = subprocess.run([*cmd, "--out", str(fresh_dir)], env=subprocess_env(),
                               capture_output=True, text=True, timeout=300)
        assert fresh.returncode == 0, fresh.stderr
    killed_pairs, killed_items, _ = load_outputs(killed_dir)
    fresh_pairs, fresh_items, _ = load_outputs(fresh_dir)
    assert killed_pairs == fresh_pairs
    strip = ("cost_usd", "tokens")
    assert [{k: v for k, v in i.items() if k not in strip} for i in killed_items] == [
        {k: v for k, v in i.items() if k not in strip} for i in fresh_items]


@pytest.mark.parametrize("repair", [False, True])
def test_verify_repair_rewrites_a_failed_source_question_once(tmp_path: Path, repair: bool) -> None:
    from finmcq.fake.server import FakeConfig, FakeLLMServer

    # Only wrong keys, often: the blind solve rejects those drafts.
    with FakeLLMServer(FakeConfig(defect_rates={"wrong_key": 0.25})) as fake:
        result = run_build(settings_for(fake.base_url, tmp_path / "run", questions=40,
                                        verify_repair=repair, max_attempts_per_question=12),
                           progress=False)
    _pairs, items, stats = load_outputs(result.run_dir)
    assert len(items) == 40
    repaired = [i for i in items if i["item_id"].endswith("r")]
    mismatches = stats["stages"]["verify"]["drop_reasons"].get("blind_solve_mismatch", 0)
    assert mismatches > 0
    if repair:
        assert stats["slots"]["verify_repairs"] > 0
        assert repaired and all(i["origin"] == "rewrite" and i["provenance"] for i in repaired)
        # every repair is one more rewrite request for the same source question
        assert stats["stages"]["rewrite"]["in"] == (
            stats["stages"]["relevance"]["out"] + stats["slots"]["verify_repairs"])
    else:
        assert not repaired and "verify_repairs" not in stats["slots"]
