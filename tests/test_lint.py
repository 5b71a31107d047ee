"""`finmcq lint FILE [--json]` through the real command line, on each kind of input."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from finmcq.records import LETTERS, McqItem, Solution, Topic
from finmcq.stages.assemble import training_pairs

from .conftest import PYTHON, REPO, subprocess_env

CALIBRATION = REPO.parent / "shared" / "calibration" / "items.jsonl"

# Items written for these tests: one clean, one with the key in the stem, one with two
# options that are the same text, one with an option that points at other options.
CLEAN = {"id": "ok1", "question": "다른 조건이 같을 때 시장 금리가 오르면 기존 고정금리 채권의 "
         "가격은 어떻게 되는가?",
         "options": {"A": "하락한다", "B": "상승한다", "C": "변하지 않는다",
                     "D": "만기에만 상승한다", "E": "표면이자만큼 오른다",
                     "F": "신용등급에 따라 반드시 오른다", "G": "거래가 정지된다"},
         "answer": "A"}
LEAK = {"id": "leak1", "question": "콜옵션 매수자의 최대 손실은 지급한 프리미엄으로 한정된다. "
        "콜옵션 매수자의 최대 손실로 옳은 것은?",
        "options": ["지급한 프리미엄으로 한정된다", "무한대이다", "행사가격 전액이다",
                    "기초자산 가격 전액이다", "증거금의 두 배이다", "0원이다",
                    "만기까지 알 수 없다"],
        "answer": "A"}
SAME = {"id": "same1", "question": "선물 거래의 일일정산에 관한 설명으로 옳은 것은?",
        "options": {"A": "매일의 손익이 증거금 계좌에 반영된다", "B": "만기에만 손익을 정산한다",
                    "C": "만기에만 손익을 정산한다.", "D": "현물 거래에만 적용된다",
                    "E": "손실이 나면 계약이 자동 해지된다", "F": "거래소가 손실을 보전한다",
                    "G": "옵션 거래에만 적용된다"},
        "answer": "A"}
POSITIONAL = {"id": "pos1", "question": "VaR에 관한 설명으로 옳은 것은?",
              "options": {"A": "일정 신뢰수준에서의 최대 예상 손실이다", "B": "위 보기 모두 옳다",
                          "C": "최대 가능 수익이다", "D": "평균 수익률이다",
                          "E": "표준편차와 항상 같다", "F": "신용등급이다",
                          "G": "배당수익률이다"},
              "answer": "A"}


def lint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "finmcq.cli", "lint", *args], capture_output=True,
                          text=True, env=subprocess_env(), timeout=120, check=False)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_items_jsonl_flags_each_defect_with_its_check_and_detail(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "items.jsonl", [CLEAN, LEAK, SAME, POSITIONAL])
    run = lint(str(path))
    assert run.returncode == 1, run.stderr
    out = run.stdout
    assert "leak1" in out and "answer_leaked_in_stem" in out
    assert "same1" in out and "duplicate_option: options B and C" in out
    assert "pos1" in out and "position_dependent_option: option B" in out
    assert "ok1" not in out
    assert "3 of 4 items flagged" in out
    assert "letters:" in out and "key length rank" in out and "negative stems" in out


def test_json_output_has_items_and_stats(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "items.jsonl", [CLEAN, LEAK, SAME, POSITIONAL])
    run = lint(str(path), "--json")
    assert run.returncode == 1
    report = json.loads(run.stdout)
    assert [(row["index"], row["id"]) for row in report["items"]] == [
        (1, "leak1"), (2, "same1"), (3, "pos1")]
    assert report["items"][0]["problems"] == [
        {"check": "answer_leaked_in_stem", "detail": "the key (A) is written in the stem"}]
    stats = report["stats"]
    assert stats["items"] == 4 and stats["flagged_items"] == 3
    assert stats["letters"]["counts"] == {"A": 4, **dict.fromkeys("BCDEFG", 0)}
    assert sum(stats["key_length_ranks"]["counts"].values()) == 4
    assert stats["negative_stems"] == {"count": 0, "share": 0.0}
    assert stats["duplicates"] == {"exact": 0, "near": 0, "threshold": 0.6}


def test_a_clean_set_exits_0(tmp_path: Path) -> None:
    run = lint(str(write_jsonl(tmp_path / "clean.jsonl", [CLEAN])))
    assert run.returncode == 0, run.stdout
    assert "0 of 1 items flagged" in run.stdout


def test_repeated_questions_are_flagged_as_duplicates(tmp_path: Path) -> None:
    again = {**CLEAN, "id": "ok2"}
    run = lint(str(write_jsonl(tmp_path / "dup.jsonl", [CLEAN, again])), "--json")
    assert run.returncode == 1
    report = json.loads(run.stdout)
    assert report["items"] == [{"index": 1, "id": "ok2", "problems": [
        {"check": "duplicate_question", "detail": "the same question as ok1"}]}]
    assert report["stats"]["duplicates"]["exact"] == 1


def _item(row: dict[str, Any], n: int) -> McqItem:
    options = row["options"]
    texts = [options[x] for x in LETTERS] if isinstance(options, dict) else options
    return McqItem(item_id=f"g{n}", question=row["question"], options=tuple(texts),
                   answer=row["answer"], topic=Topic.BONDS, origin="generate")


def test_training_data_is_parsed_back_from_its_prompts(tmp_path: Path) -> None:
    pairs = []
    for n, row in enumerate([CLEAN, LEAK]):
        item = _item(row, n)
        solution = Solution(text=f"[문제 분석]\n풀이.\n\n따라서 정답은 {item.answer}입니다.",
                            final_answer=item.answer)
        pairs += [p.model_dump() for p in training_pairs(item, solution)]
    path = tmp_path / "final_training_data_20260101_000000.json"
    path.write_text(json.dumps(pairs, ensure_ascii=False), "utf-8")
    run = lint(str(path), "--json")
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    assert report["stats"]["items"] == 2
    assert report["stats"]["letters"]["counts"]["A"] == 2  # the answer came from step 2
    assert [row["index"] for row in report["items"]] == [1]
    assert report["items"][0]["problems"][0]["check"] == "answer_leaked_in_stem"


def test_kmmlu_csv_is_checked_as_four_option_items(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "answer", "A", "B", "C", "D", "Category",
                         "Human Accuracy"])
        writer.writerow(["채권 가격과 금리의 관계로 옳은 것은?", 1, "반대로 움직인다",
                         "같이 움직인다", "관계가 없다", "만기에만 관계가 있다", "Economics", 0.5])
        writer.writerow(["옳은 것을 모두 고르면?", 4, "ㄱ", "ㄴ", "ㄷ", "ㄱ, ㄴ", "Economics", 0.5])
        writer.writerow(["듀레이션에 관한 설명으로 옳은 것은?", 2, "만기와 무관하다",
                         "금리 민감도를 나타낸다", "항상 0이다", "위 보기 모두 옳다", "Economics",
                         0.5])
    run = lint(str(path), "--json")
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    assert report["stats"]["items"] == 3
    assert report["stats"]["letters"]["counts"] == {"A": 1, "B": 1, "C": 0, "D": 1}
    assert list(report["stats"]["key_length_ranks"]["counts"]) == ["1", "2", "3", "4"]
    assert [(row["index"], row["id"]) for row in report["items"]] == [(1, "row 2"), (2, "row 3")]
    assert report["items"][1]["problems"] == [
        {"check": "position_dependent_option",
         "detail": "option D depends on other options or its position"}]


@pytest.mark.parametrize("content,why", [
    ("not json at all {", "line 1 is not JSON"),
    ('{"question": "q"}\n', "line 1 has no question and options"),
    ("", "the file is empty"),
    ('[{"a": 1}]', "not prompt/response pairs"),
])
def test_unreadable_input_exits_2_with_a_clear_message(tmp_path: Path, content: str,
                                                       why: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, "utf-8")
    run = lint(str(path))
    assert run.returncode == 2
    assert why in run.stderr and "Traceback" not in run.stderr


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    run = lint(str(tmp_path / "nowhere.jsonl"))
    assert run.returncode == 2 and "no such file" in run.stderr


@pytest.mark.skipif(not CALIBRATION.exists(), reason="../shared/calibration is not here")
def test_every_exam_grade_calibration_item_passes() -> None:
    run = lint(str(CALIBRATION), "--json")
    assert run.returncode == 0, run.stdout[:2000]
    report = json.loads(run.stdout)
    assert report["items"] == [] and report["stats"]["items"] >= 85
    assert report["stats"]["negative_stems"]["count"] > 0
