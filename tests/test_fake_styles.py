"""The fake LLM writes like a real exam author: numeric and parallel distractors, some negative
stems, varied option lengths, at rates close to what strong models write (../shared/calibration).
Such items must pass finmcq's deterministic checks, and a build must keep them."""

from __future__ import annotations

import difflib
import json
import re
import statistics
import subprocess
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from finmcq import checks
from finmcq.fake import FakeConfig, FakeLLMServer, option_code, stem_figures
from finmcq.fake.styles import NUMERIC, PARALLEL, numeric_item, parallel_item
from finmcq.records import LETTERS, MARKET_TOPICS, McqDraft

from .conftest import PYTHON, subprocess_env
from .test_fake_llm import chat_body, generate_payload, post_many, reply

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numeric_pair(options: Sequence[str]) -> bool:
    """Two options that are the same text apart from their numbers."""
    masked = [_NUMBER.sub("#", o) for o in options]
    return any(masked[i] == masked[j] and options[i] != options[j] and _NUMBER.search(options[i])
               for i in range(len(options)) for j in range(i + 1, len(options)))


def parallel_pair(options: Sequence[str]) -> bool:
    """Two options from one template: nearly the same string, not just another number."""
    masked = [_NUMBER.sub("#", o) for o in options]
    return any(masked[i] != masked[j]
               and difflib.SequenceMatcher(None, options[i], options[j]).ratio() >= 0.75
               for i in range(len(options)) for j in range(i + 1, len(options)))


def length_rank(options: Sequence[str], key: int) -> int:
    """1 = the key is the longest option."""
    longer = sum(len(o) > len(options[key]) for o in options)
    return longer + 1


def calibration_path() -> Path:
    return Path(__file__).resolve().parents[1].parent / "shared" / "calibration" / "items.jsonl"


def with_rank(payload: dict[str, Any], i: int) -> dict[str, Any]:
    """The key length rank the pipeline asks every generate request for, spread over 1..7."""
    longer = i % 7
    return {**payload, "key_length": {"longer_distractors": longer,
                                      "shorter_distractors": 6 - longer}}


@pytest.fixture(scope="module")
def drafts() -> list[McqDraft]:
    with FakeLLMServer(FakeConfig(seed=11)) as server:
        bodies = [chat_body(with_rank(generate_payload(i, topic), i), McqDraft)
                  for i in range(40) for topic in MARKET_TOPICS]
        return [reply(r, McqDraft) for r in post_many(server.base_url, bodies)]


def test_every_template_computes_a_distinct_key_and_six_distinct_wrong_options() -> None:
    import random
    for topic in MARKET_TOPICS:
        for seed in range(60):
            for drafted in (numeric_item(topic, random.Random(seed)),
                            parallel_item(topic, random.Random(seed))):
                options = [drafted.key, *drafted.wrong[:6]]
                assert len(drafted.wrong) >= 6, drafted
                assert checks.option_problems(options) is None, drafted
    assert set(NUMERIC) == set(PARALLEL) == set(MARKET_TOPICS)


def test_generated_drafts_pass_the_checks_and_keep_the_verify_code(
        drafts: list[McqDraft]) -> None:
    for draft in drafts:
        options = [draft.correct_option, *draft.distractors]
        assert checks.item_problems(draft.question, options, "A") is None, draft
        figures = stem_figures(draft.question)
        assert option_code(draft.correct_option) in figures
        assert not figures & {option_code(o) for o in draft.distractors}


def test_style_rates_are_close_to_real_exam_items(drafts: list[McqDraft]) -> None:
    """Calibration (85 exam items): numeric 26 %, parallel 31 %, negative 15 %; a strong model's
    own drafts: 16 %, 21 %, 5 %. The fake must be in that neighbourhood, not at 0 or 100 %."""
    n = len(drafts)
    options = [[d.correct_option, *d.distractors] for d in drafts]
    numeric = sum(map(numeric_pair, options)) / n
    parallel = sum(parallel_pair(o) and not numeric_pair(o) for o in options) / n
    negative = sum(checks.is_negative_stem(d.question) for d in drafts) / n
    assert 0.12 <= numeric <= 0.32, numeric
    assert 0.12 <= parallel <= 0.35, parallel
    assert 0.06 <= negative <= 0.22, negative
    # Option lengths vary within an item about as much as in exam items (CV 0.18 there).
    cv = statistics.mean(statistics.pstdev(map(len, o)) / statistics.mean(map(len, o))
                         for o in options)
    assert 0.08 <= cv <= 0.35, cv
    # The key is neither systematically the longest nor the shortest option.
    ranks = Counter(length_rank(o, 0) for o in options)
    assert ranks[1] / n < 0.3 and ranks[7] / n < 0.3, ranks


def test_calibration_rates_are_what_the_docstring_says() -> None:
    path = calibration_path()
    if not path.exists():
        pytest.skip("../shared/calibration is not here")
    items = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    options = [[it["options"][k] for k in LETTERS] for it in items]
    numeric = sum(map(numeric_pair, options)) / len(items)
    negative = sum(checks.is_negative_stem(it["question"]) for it in items) / len(items)
    assert 0.12 <= numeric <= 0.35 and 0.06 <= negative <= 0.25, (numeric, negative)


def test_a_build_keeps_numeric_and_parallel_items(tmp_path: Path) -> None:
    """With the fake LLM (no defects) a build drops none of its items on a shape check, and the
    delivered set carries calculation and template items."""
    out = tmp_path / "run"
    result = subprocess.run(
        [PYTHON, "-m", "finmcq.cli", "demo", "--out", str(out), "--questions", "200"],
        env=subprocess_env(), capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    stats: dict[str, Any] = json.loads(next(out.glob("processing_stats_*.json")).read_text())
    shape = stats["stages"]["shape"]["drop_reasons"]
    for reason in ("duplicate_option", "position_dependent_option", "answer_leaked_in_stem"):
        assert shape.get(reason, 0) == 0, shape
    pairs = json.loads(next(out.glob("final_training_data_*.json")).read_text())
    assert len(pairs) == 400
    items = [json.loads(line) for line in
             next(out.glob("items_*.jsonl")).read_text("utf-8").splitlines()]
    options = [list(it["options"].values()) if isinstance(it["options"], dict)
               else it["options"] for it in items]
    assert sum(map(numeric_pair, options)) >= 20
    assert sum(parallel_pair(o) and not numeric_pair(o) for o in options) >= 20
