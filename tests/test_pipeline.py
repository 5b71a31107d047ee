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
from finmcq.config import BuildSettings, topic_quotas
from finmcq.quality.length_rank import key_length_rank
from finmcq.records import LETTERS, MARKET_TOPICS, Topic, normalize_text

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


def test_key_length_ranks_are_balanced_like_the_letters(full_build: Any) -> None:
    _, (_pairs, items, stats), _ = full_build
    ranks = Counter()
    for item in items:
        options = [item["options"][ch] for ch in LETTERS]
        # Measured from the options again, with the same seeded tie-break as the build.
        rank = key_length_rank(options, LETTERS.index(item["answer"]), item["item_id"])
        assert rank == item["quality"]["key_length_rank"]
        assert 1 <= item["quality"]["target_key_length_rank"] <= 7
        ranks[rank] += 1
    assert set(ranks) == set(range(1, 8))
    for rank in range(1, 8):
        assert abs(ranks[rank] / 1000 - 1 / 7) <= 0.05, ranks
    assert stats["key_length_ranks"]["counts"] == {str(r): ranks[r] for r in range(1, 8)}
    assert stats["key_length_ranks"]["within_band"]
    assert stats["negative_stems"]["count"] == sum(i["quality"]["negation_stem"] for i in items)


def _inputs(run_dir: Path, stage: str) -> dict[str, dict[str, Any]]:
    """The ``<입력>`` payload of every request of ``stage``, by item id."""
    import sqlite3

    with sqlite3.connect(run_dir / "finmcq.sqlite") as db:
        rows = db.execute("SELECT item_id, request_json FROM responses WHERE stage = ?",
                          (stage,)).fetchall()
    out = {}
    for item_id, request in rows:
        user = json.loads(request)["messages"][-1]["content"]
        block = user.split("<입력>\n", 1)[1].rsplit("\n</입력>", 1)[0]
        out[item_id] = json.loads(block)
    return out


def test_a_generate_retry_is_told_why_the_attempt_before_was_dropped(full_build: Any) -> None:
    import sqlite3

    result = full_build[0]
    with sqlite3.connect(result.run_dir / "finmcq.sqlite") as db:
        drops = dict(db.execute("SELECT item_id, reason FROM outcomes WHERE status = 'dropped' "
                                "AND stage NOT IN ('dedupe', 'rebalance')").fetchall())
    told = 0
    for item_id, payload in _inputs(result.run_dir, "generate").items():
        assert set(payload["key_length"]) == {"longer_distractors", "shorter_distractors"}
        slot, attempt = item_id.rsplit(".", 1)
        before = f"{slot}.{int(attempt) - 1}"
        if before in drops:
            assert f"검사: {drops[before]}" in payload["feedback"], (item_id, payload)
            told += 1
        elif int(attempt) == 0 or before not in drops:
            assert "feedback" not in payload or f"{slot}.{int(attempt) - 1}r" in drops
    assert told > 0


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
            stats["stages"]["relevance"]["out"] + stats["slots"]["verify_repairs"]
            + stats["slots"].get("length_repairs", 0))
    else:
        assert not repaired and "verify_repairs" not in stats["slots"]


def test_seats_left_by_rounding_go_to_topics_with_relevant_sources() -> None:
    equal = dict.fromkeys(MARKET_TOPICS, 1.0)
    # Without relevance results the last topics get nothing; with them, the ones that have
    # relevant source questions come first (ties in topic order).
    assert [t for t, n in topic_quotas(6, equal).items() if n] == list(MARKET_TOPICS[:6])
    found = {Topic.BONDS: 2, Topic.FX: 1, Topic.RISK: 3}
    quotas = topic_quotas(6, equal, found)
    assert sum(quotas.values()) == 6
    assert quotas[Topic.BONDS] == quotas[Topic.FX] == quotas[Topic.RISK] == 1
    assert topic_quotas(6, equal, found) == quotas  # deterministic
    assert topic_quotas(1000, equal, found) == topic_quotas(1000, equal)  # nothing to round


def _write_source(path: Path, rows: list[tuple[str, str, str, str, str]]) -> Path:
    import csv

    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "answer", "A", "B", "C", "D", "Category", "Human Accuracy"])
        for question, *options in rows:
            writer.writerow([question, 1, *options, "Economics", 0.5])
    return path


# Questions written for this test: relevant ones only about bonds and foreign exchange, the two
# topics that come last in topic order.
BOND_FX = [
    ("국고채 금리가 오르면 듀레이션이 긴 채권의 가격은 어떻게 되는가?",
     "더 크게 하락한다", "상승한다", "변하지 않는다", "만기에만 변한다"),
    ("채권의 만기수익률과 채권 가격의 관계로 옳은 것은?",
     "반대로 움직인다", "같이 움직인다", "관계가 없다", "만기에만 관계가 있다"),
    ("원/달러 환율이 오르면 수출 기업의 외환 환산 이익은?",
     "늘어난다", "줄어든다", "변하지 않는다", "환율과 무관하다"),
    ("선물환 매도로 환율 하락 위험을 헤지하는 외환 시장 참가자는?",
     "달러를 받을 수출 기업", "달러를 갚을 수입 기업", "원화 예금자", "국내 채권 발행자"),
]


def test_a_small_build_keeps_relevant_sources_when_quotas_round_to_zero(tmp_path: Path) -> None:
    from finmcq.fake.server import FakeConfig, FakeLLMServer

    source = _write_source(tmp_path / "bond_fx.csv", BOND_FX)
    with FakeLLMServer(FakeConfig()) as fake:
        result = run_build(settings_for(fake.base_url, tmp_path / "run", questions=6,
                                        source=str(source), contamination_check=False),
                           progress=False)
    _pairs, items, stats = load_outputs(result.run_dir)
    assert len(items) == 6
    quotas = {t: row["quota"] for t, row in stats["topics"].items()}
    assert quotas[Topic.BONDS.value] >= 1 and quotas[Topic.FX.value] >= 1
    rewritten = [i for i in items if i["origin"] == "rewrite"]
    assert {i["topic"] for i in rewritten} == {Topic.BONDS.value, Topic.FX.value}
    assert stats["stages"]["relevance"]["out"] == len(rewritten)  # every kept source is used


def test_a_writer_biased_to_one_rank_is_rebalanced_at_the_set_level(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every slot asks for rank 2 (what a writer that always makes the key the second-longest
    delivers); the set-level balancing then redrafts the excess for the other ranks."""
    import finmcq.pipeline.plan as pipeline
    from finmcq.balance import balance_bounds
    from finmcq.fake.server import FakeConfig, FakeLLMServer

    monkeypatch.setattr(pipeline, "balanced_ranks", lambda n, _seed: [2] * n)
    monkeypatch.setattr(pipeline, "rank_targets", lambda n, _seed: {2: n})
    with FakeLLMServer(FakeConfig()) as fake:
        result = run_build(settings_for(fake.base_url, tmp_path / "run", questions=70),
                           progress=False)
    _pairs, items, stats = load_outputs(result.run_dir)
    ranks = Counter(item["quality"]["key_length_rank"] for item in items)
    low, high = balance_bounds(70)
    assert all(low <= ranks[r] <= high for r in range(1, 8)), ranks
    cue = stats["quality"]["key_length_rank"]
    assert cue["rebalanced"] > 0 and cue["rebalanced"] == sum(
        item["quality"]["target_key_length_rank"] != 2 for item in items)
    letters = Counter(item["answer"] for item in items)
    assert all(abs(n - 10) <= 1 for n in letters.values())  # the letters stay balanced
