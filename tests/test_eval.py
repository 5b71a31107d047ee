"""``finmcq eval`` and ``build --holdout`` against the fake LLM in exam mode (real HTTP, SQLite).

The fake's accuracy is known by construction: it answers a question right with probability P
(drawn once per question), so a correct eval must report P within its 95 % interval, count the
answers the fake sent in a non-strict form as unparseable, and carry each step-1 reasoning into
step 2 (the fake answers step 2 with the letter its reasoning concluded with).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from finmcq.build import run_build
from finmcq.config import BuildSettings
from finmcq.errors import ConfigError, InputError
from finmcq.evaluate import EvalSettings, load_eval_set, run_eval
from finmcq.evaluate.scoring import parse_letter, wilson_interval
from finmcq.evaluate.sets import EvalItem, EvalSet
from finmcq.fake.server import FakeConfig, FakeLLMServer
from finmcq.holdout import choose_holdout
from finmcq.rundir import load_run

from .conftest import PYTHON, SHARED_KMMLU, STEP1, subprocess_env

QUESTIONS, HOLDOUT = 280, 0.25


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "run"
    with FakeLLMServer(FakeConfig()) as fake:
        run_build(BuildSettings(source="sample", questions=QUESTIONS, seed=3, out=out,
                                model="fake-finance-1", base_url=fake.base_url,
                                holdout=HOLDOUT), progress=False)
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def heldout_file(run_dir: Path) -> Path:
    return next(run_dir.glob("heldout_*.jsonl"))


def evaluate(run_dir: Path, set_spec: str, out: Path, **fake: Any) -> tuple[dict[str, Any],
                                                                           dict[str, Any]]:
    """Eval ``set_spec`` against a fake in exam mode; the document and the fake's counters."""
    with FakeLLMServer(FakeConfig(answers=str(set_spec), seed=11, **fake)) as server:
        settings = EvalSettings(model="fake-finance-1", base_url=server.base_url, concurrency=16)
        result = run_eval(settings, load_eval_set(set_spec), out, progress=False)
        stats = server.stats()
    assert result.json_path.is_file() and result.html_path.is_file()
    assert json.loads(result.json_path.read_text("utf-8")) == result.document
    return result.document, stats


# --------------------------------------------------------------------------------------------
# --holdout
# --------------------------------------------------------------------------------------------


def test_holdout_keeps_a_balanced_share_out_of_the_training_file(run_dir: Path) -> None:
    run = load_run(run_dir)
    held = read_jsonl(heldout_file(run_dir))
    n_held = round(HOLDOUT * QUESTIONS)
    assert len(held) == n_held and len(run.items) == QUESTIONS - n_held
    assert len(run.pairs) == 2 * (QUESTIONS - n_held)
    assert not {h["item_id"] for h in held} & {i["item_id"] for i in run.items}
    training_prompts = {p["prompt"] for p in run.pairs[::2]}
    for row in held:  # each with its step-1 prompt, exactly as a training pair would have it
        match = STEP1.match(row["prompt"])
        assert match and match["question"] == row["question"]
        assert match[row["answer"]] == row["options"][row["answer"]]
        assert row["prompt"] not in training_prompts
    # Balanced: every topic gives its share of the whole set, letters within one of each other.
    all_topics = Counter(r["topic"] for r in [*held, *run.items])
    held_topics = Counter(r["topic"] for r in held)
    for topic, count in all_topics.items():
        assert abs(held_topics[topic] - n_held * count / QUESTIONS) < 1
    letters = Counter(r["answer"] for r in held)
    assert len(letters) == 7 and max(letters.values()) - min(letters.values()) <= 1
    stats = run.stats
    assert stats["pairs"] == 2 * (QUESTIONS - n_held)
    assert stats["questions"]["delivered"] == QUESTIONS
    assert stats["holdout"]["questions"] == n_held
    assert stats["holdout"]["training_questions"] == QUESTIONS - n_held
    assert stats["holdout"]["by_letter"] == dict(sorted(letters.items()))


def test_holdout_choice_is_deterministic_in_the_seed() -> None:
    items = [(f"q{i}", "abc"[i % 3], "ABCDEFG"[i % 7]) for i in range(700)]
    first = choose_holdout(items, 0.1, seed=1)
    assert first == choose_holdout(list(reversed(items)), 0.1, seed=1)
    assert first != choose_holdout(items, 0.1, seed=2)
    assert len(first) == 70
    assert choose_holdout(items, 0.0, seed=1) == frozenset()


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reply", "letter"), [
    ("B", "B"), (" B\n", "B"), ("B.", "B"), ("G", "G"), ("\nA.\n", "A"),
    ("b", None), ("정답: B", None), ("B입니다", None), ("(B)", None), ("**B**", None),
    ("B. 이유는", None), ("H", None), ("", None), ("AB", None), ("B..", None), (None, None),
])
def test_answers_are_parsed_strictly(reply: str | None, letter: str | None) -> None:
    assert parse_letter(reply) == letter


def test_wilson_interval_matches_published_values() -> None:
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775
    low, high = wilson_interval(10, 10)
    assert round(low, 4) == 0.7225 and high == 1.0


# --------------------------------------------------------------------------------------------
# finmcq eval against the fake
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("accuracy", [0.7, 0.35])
def test_eval_reports_the_fakes_accuracy_within_its_interval(
        run_dir: Path, tmp_path: Path, accuracy: float) -> None:
    items_file = next(run_dir.glob("items_*.jsonl"))  # the larger part: narrower intervals
    doc, fake = evaluate(run_dir, str(items_file), tmp_path / "eval", accuracy=accuracy)
    for variant in ("two_step", "direct"):
        overall = doc["variants"][variant]["overall"]
        low, high = overall["ci95"]
        assert overall["n"] == QUESTIONS - round(HOLDOUT * QUESTIONS)
        # Exactly what the fake answered right (it counts its own right and wrong letters).
        assert overall["correct"] == fake["by_task"].get(f"exam_right_{variant}", 0)
        assert overall["n"] - overall["correct"] == fake["by_task"][f"exam_wrong_{variant}"]
        wilson = wilson_interval(overall["correct"], overall["n"])
        assert low == pytest.approx(wilson[0], abs=1e-6) and high == pytest.approx(wilson[1],
                                                                                   abs=1e-6)
        # The fake's per-question draws are seeded by the question text, so any change to what a
        # build writes redraws them: a 95 % interval misses the true rate for 1 in 20 sets (4
        # checks here). Within 3.5 standard errors fails by chance 1 in 2,000.
        spread = 3.5 * (accuracy * (1 - accuracy) / overall["n"]) ** 0.5
        assert abs(overall["accuracy"] - accuracy) <= spread, (variant, overall)
        assert overall["unparseable"] == 0 and overall["failed"] == 0
        by_topic = doc["variants"][variant]["by_topic"]
        assert sum(t["n"] for t in by_topic.values()) == overall["n"]
        assert sum(t["correct"] for t in by_topic.values()) == overall["correct"]
        assert set(doc["variants"][variant]["by_difficulty"]) <= {"easy", "medium", "hard"}
    # Step 2 saw step 1's reasoning: the fake answered with the letter that reasoning concluded.
    for item in doc["items"]:
        concluded = re.findall(r"정답은 ([A-G])입니다", item["two_step"]["reasoning"])
        assert item["two_step"]["letter"] == concluded[-1]
        assert item["two_step"]["correct"] == (item["two_step"]["letter"] == item["answer"])
    assert fake["by_task"]["exam_reason"] == fake["by_task"]["exam_letter_two_step"] == len(
        doc["items"])


def test_unparseable_answers_are_counted_and_scored_wrong(run_dir: Path, tmp_path: Path) -> None:
    doc, fake = evaluate(run_dir, str(run_dir), tmp_path / "eval", accuracy=0.8,
                         unparseable=0.3)
    assert doc["set"]["kind"] == "heldout"  # a run with --holdout is measured on its held out
    assert doc["set"]["questions"] == round(HOLDOUT * QUESTIONS)
    for variant in ("two_step", "direct"):
        overall = doc["variants"][variant]["overall"]
        served = fake["by_task"].get(f"exam_unparseable_{variant}", 0)
        assert served > 0 and overall["unparseable"] == served
        flagged = [i for i in doc["items"] if i[variant]["unparseable"]]
        assert len(flagged) == served
        assert all(not i[variant]["correct"] and i[variant]["letter"] is None for i in flagged)
        assert all(i[variant]["reply"].startswith("정답은") for i in flagged)


def test_failed_and_cut_off_replies_are_counted(run_dir: Path, tmp_path: Path) -> None:
    """A request that fails every try is *failed* and wrong; a cut-off reply is kept, counted."""
    held = str(heldout_file(run_dir))
    with FakeLLMServer(FakeConfig(answers=held, accuracy=1.0, seed=4, rate_500=0.25,
                                  rate_length=0.15)) as server:
        settings = EvalSettings(model="fake-finance-1", base_url=server.base_url,
                                concurrency=16, max_retries=1)
        doc = run_eval(settings, load_eval_set(held), tmp_path / "eval", progress=False).document
    for variant in ("two_step", "direct"):
        overall = doc["variants"][variant]["overall"]
        assert overall["n"] == round(HOLDOUT * QUESTIONS)
        assert overall["failed"] > 0
        # The fake knows every key (accuracy 1.0): only failed questions are wrong.
        assert overall["correct"] == overall["n"] - overall["failed"]
        failed = [i for i in doc["items"] if i[variant]["failed"]]
        assert len(failed) == overall["failed"]
        assert all(i[variant]["reply"] is None and not i[variant]["correct"] for i in failed)
    assert doc["variants"]["two_step"]["overall"]["truncated"] > 0


def test_a_second_eval_with_the_same_out_is_answered_from_the_cache(
        run_dir: Path, tmp_path: Path) -> None:
    first, _ = evaluate(run_dir, str(heldout_file(run_dir)), tmp_path / "eval", accuracy=0.6)
    second, fake = evaluate(run_dir, str(heldout_file(run_dir)), tmp_path / "eval",
                            accuracy=0.6)
    assert first["usage"]["cost_usd"]["this_session"] > 0
    assert second["usage"]["cost_usd"]["this_session"] == 0 and fake["requests"] == 0
    assert second["variants"] == first["variants"]


def test_the_wire_requests_are_plain_text_in_the_pairs_format(run_dir: Path,
                                                              tmp_path: Path) -> None:
    """Two-step sends the step-1 prompt, then step1 + "\\n" + reasoning; no response_format."""
    import sqlite3

    evaluate(run_dir, str(heldout_file(run_dir)), tmp_path / "eval", accuracy=1.0)
    held = {r["item_id"]: r for r in read_jsonl(heldout_file(run_dir))}
    db = sqlite3.connect(tmp_path / "eval" / "finmcq.sqlite")
    rows = db.execute("SELECT stage, item_id, request_json, parsed_json FROM responses").fetchall()
    by_stage: dict[str, dict[str, tuple[dict[str, Any], dict[str, Any]]]] = {}
    for stage, item_id, request, parsed in rows:
        by_stage.setdefault(stage, {})[item_id] = (json.loads(request), json.loads(parsed))
    assert {s: len(v) for s, v in by_stage.items()} == {s: len(held) for s in (
        "eval_reason", "eval_answer", "eval_direct")}
    for item_id, row in held.items():
        reason_req, reason = by_stage["eval_reason"][item_id]
        answer_req, answer = by_stage["eval_answer"][item_id]
        direct_req, _ = by_stage["eval_direct"][item_id]
        assert "response_format" not in reason_req and "response_format" not in answer_req
        assert reason_req["messages"] == [{"role": "user", "content": row["prompt"]}]
        assert answer_req["messages"] == [
            {"role": "user", "content": f"{row['prompt']}\n{reason['text']}"}]
        assert answer["text"] == row["answer"]  # accuracy 1.0
        assert direct_req["messages"][0]["role"] == "system"
        assert direct_req["messages"][1] == {"role": "user", "content": row["prompt"]}


@pytest.mark.skipif(not SHARED_KMMLU.is_dir(), reason="../shared/kmmlu not present")
def test_kmmlu_itself_is_a_set_with_four_options(tmp_path: Path) -> None:
    eval_set = load_eval_set(str(SHARED_KMMLU), limit=120, seed=1)
    assert eval_set.kind == "kmmlu" and len(eval_set.items) == 120
    assert {i.topic for i in eval_set.items} <= {"Economics", "Management", "Accounting",
                                                 "Taxation", "Marketing", "Real-Estate"}
    assert len({i.topic for i in eval_set.items}) >= 4  # the sample spreads over subjects
    for item in eval_set.items:
        assert item.letters == ("A", "B", "C", "D") and item.answer in item.letters
        assert "\nD. " in item.prompt and "\nE. " not in item.prompt
        assert item.prompt.endswith("\n### 정답:")
    with FakeLLMServer(FakeConfig(answers=str(SHARED_KMMLU), accuracy=0.5, seed=2)) as server:
        settings = EvalSettings(model="fake-finance-1", base_url=server.base_url,
                                variants=("direct",))
        doc = run_eval(settings, eval_set, tmp_path / "eval", progress=False).document
    overall = doc["variants"]["direct"]["overall"]
    assert overall["ci95"][0] <= 0.5 <= overall["ci95"][1]
    assert sum(s["n"] for s in doc["variants"]["direct"]["by_topic"].values()) == 120


@pytest.mark.parametrize("change", [{"concurrency": 0}, {"answer_max_tokens": 0},
                                    {"temperature": 3.0}, {"variants": ("both",)}])
def test_bad_settings_are_config_errors_before_any_file(tmp_path: Path,
                                                         change: dict[str, Any]) -> None:
    settings = EvalSettings(**{"model": "m", "base_url": "http://127.0.0.1:9/v1", **change})
    one = EvalSet(name="x", kind="items", items=(EvalItem("q1", "p", "A", ("A", "B")),))
    with pytest.raises(ConfigError):
        run_eval(settings, one, tmp_path / "eval", progress=False)
    assert not (tmp_path / "eval").exists()


def test_bad_sets_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_eval_set(str(tmp_path / "nope"))
    bad = tmp_path / "items_x.jsonl"
    bad.write_text('{"question": "q", "options": {"A": "a"}, "answer": "B"}\n', "utf-8")
    with pytest.raises(InputError, match="line 1"):
        load_eval_set(str(bad))


def test_the_cli_prints_the_accuracy_and_writes_json_and_html(run_dir: Path,
                                                              tmp_path: Path) -> None:
    import subprocess

    key = "eval-test-key-0123456789"
    with FakeLLMServer(FakeConfig(answers=str(run_dir), accuracy=0.9, api_key=key)) as server:
        result = subprocess.run(
            [PYTHON, "-m", "finmcq.cli", "eval", "--model", "fake-finance-1", "--base-url",
             server.base_url, "--set", str(run_dir), "--limit", "30", "--out",
             str(tmp_path / "ev"), "--api-key-env", "EVAL_KEY"], capture_output=True,
            text=True, env=subprocess_env(EVAL_KEY=key), timeout=300)
    assert result.returncode == 0, result.stderr
    written = [p for p in (tmp_path / "ev").iterdir() if p.is_file()]
    assert {p.suffix for p in written} >= {".json", ".html", ".log", ".sqlite"}
    assert not any(key.encode() in p.read_bytes() for p in written)  # the key is never written
    assert re.search(r"two_step\s+accuracy\s+\d+\.\d %", result.stdout)
    assert re.search(r"direct\s+accuracy\s+\d+\.\d %", result.stdout)
    doc = json.loads(next((tmp_path / "ev").glob("eval_*.json")).read_text("utf-8"))
    assert doc["set"]["questions"] == 30
    page = next((tmp_path / "ev").glob("eval_*.html")).read_text("utf-8")
    assert "95 % CI" in page and "by topic" in page
    bad = subprocess.run([PYTHON, "-m", "finmcq.cli", "eval", "--model", "m", "--set",
                          str(tmp_path / "missing")], capture_output=True, text=True,
                         env=subprocess_env(), timeout=120)
    assert bad.returncode == 2 and "does not exist" in bad.stderr
    assert "Traceback" not in bad.stderr
