"""KMMLU extraction artefacts are repaired before an LLM reads a source; the source keeps them.

The strings here are written for the test in the style of the artefacts, not copied from KMMLU.
"""

from __future__ import annotations

from pathlib import Path

from finmcq.quality.artefacts import clean_text
from finmcq.records import Difficulty, Provenance, SourceQuestion, Topic
from finmcq.stages.generate import GenerateStage
from finmcq.stages.relevance import RelevanceStage
from finmcq.stages.rewrite import RewriteStage


def test_split_sentence_endings_are_joined() -> None:
    assert clean_text("수수료는 30원이 다 . 다음 중") == "수수료는 30원이다. 다음 중"
    assert clean_text("채권 가격은 하락한 다 .") == "채권 가격은 하락한다."
    assert clean_text("수요는 음의 값을 갖는 다 .") == "수요는 음의 값을 갖는다."
    assert clean_text("가정하자 . 시장은") == "가정하자. 시장은"


def test_lost_decimal_points_and_full_width_signs_are_repaired() -> None:
    assert clean_text("기준금리를 －0 1%로 내렸다") == "기준금리를 -0.1%로 내렸다"
    assert clean_text("탄력성은 0 7이고 1 4% 줄었다") == "탄력성은 0.7이고 1.4% 줄었다"
    assert clean_text("수요곡선 Q＝ 30－P") == "수요곡선 Q= 30-P"


def test_run_together_english_is_split_only_when_sure() -> None:
    assert clean_text("이자율평가(interestrateparitytheory)") == (
        "이자율평가(interest rate parity theory)")
    assert clean_text("규모의 경제(economiesofscope)") == "규모의 경제(economies of scope)"
    assert clean_text("differentiation 전략") == "differentiation 전략"  # a word already


def test_ordinary_text_is_left_alone() -> None:
    for text in ("투자자들은 모두 다 팔았다.", "2,000원과 1,500원", "A와 B 가운데 0.5%",
                 "VaR는 99% 신뢰수준에서 10영업일 기준이다.", "3 5개 종목"):
        assert clean_text(text) == text


def _source() -> SourceQuestion:
    prov = Provenance(dataset="mine", subject="Economics", split="train", row_index=0,
                      original_answer=1)
    return SourceQuestion(uid="Economics/train/0", question="환율은 1,300원이 다 . 옳은 것은?",
                          options=("－0 1%", "b", "c", "d"), answer="A", provenance=prov)


def test_prompts_get_the_cleaned_text_and_the_source_keeps_the_original() -> None:
    source = _source()
    for payload in (RelevanceStage.payload(source), RewriteStage.payload(source, Topic.FX)):
        assert payload["question"] == "환율은 1,300원이다. 옳은 것은?"
        assert payload["options"]["A"] == "-0.1%"  # type: ignore[index]
    payload = GenerateStage.payload(Topic.FX, "환율", Difficulty.MEDIUM, "g0", 0, [source])
    example = payload["examples"][0]  # type: ignore[index]
    assert example["question"] == "환율은 1,300원이다. 옳은 것은?"
    assert source.question == "환율은 1,300원이 다 . 옳은 것은?"
    assert source.options[0] == "－0 1%"


def test_english_splits_are_kept_so_later_builds_skip_loading_wordninja(
        tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    code = ("import sys; from finmcq.quality.artefacts import clean_text; "
            "print(clean_text('금리평가이론(interestrateparitytheory)은')); "
            "print('wordninja' in sys.modules)")
    env = {**os.environ, "FINMCQ_CACHE_DIR": str(tmp_path)}

    def run() -> list[str]:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, check=True).stdout.splitlines()

    first, again = run(), run()
    assert first == ["금리평가이론(interest rate parity theory)은", "True"]
    assert again == ["금리평가이론(interest rate parity theory)은", "False"]
    assert list((tmp_path / "wordsplit").glob("splits-*.json"))
