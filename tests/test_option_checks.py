"""The deterministic option checks drop only what is certainly a defect.

Exam distractors are built from the key: one number changed, two terms swapped, the direction
reversed. Those options look nearly identical as strings and are all needed; whether two of them
*mean* the same is for the second-answer judge. A deterministic check drops only options that are
the same after folding (spacing, punctuation, case, Unicode form and width) and options that point
at other options ("위 보기 모두 옳다").
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from finmcq import checks
from finmcq.records import LETTERS

CALIBRATION = Path(__file__).resolve().parents[1].parent / "shared" / "calibration"

# Seven options that differ mainly in one number (a futures margin call; the key is B).
NUMERIC = [
    "위탁증거금 잔액이 900만원이 되어 1,100만원을 추가로 입금해야 한다",
    "위탁증거금 잔액이 900만원이 되어 600만원을 추가로 입금해야 한다",
    "위탁증거금 잔액이 900만원이 되어 300만원을 추가로 입금해야 한다",
    "위탁증거금 잔액이 900만원이 되어 추가로 입금할 금액이 없다",
    "위탁증거금 잔액이 1,200만원이 되어 추가로 입금할 금액이 없다",
    "위탁증거금 잔액이 600만원이 되어 1,400만원을 추가로 입금해야 한다",
    "위탁증거금 잔액이 900만원이 되어 1,500만원을 추가로 입금해야 한다",
]
# Decimal points, ranges and ratios are numbers too: none of these is another's duplicate.
DECIMALS = ["수익률은 1.5%이다", "수익률은 15%이다", "수익률은 0.15%이다", "수익률은 3~5%이다",
            "수익률은 35%이다", "헤지 비율은 1:2이다", "헤지 비율은 12이다"]
# One template, the terms swapped (interest-rate parity, in the style of a parallel item).
PARALLEL = [
    "원화 금리가 오르고 달러 금리가 그대로이면 선물환율은 오른다",
    "달러 금리가 오르고 원화 금리가 그대로이면 선물환율은 오른다",
    "원화 금리가 내리고 달러 금리가 그대로이면 선물환율은 오른다",
    "달러 금리가 내리고 원화 금리가 그대로이면 선물환율은 오른다",
    "원화 금리와 달러 금리가 함께 오르면 선물환율은 반드시 오른다",
    "원화 금리와 달러 금리가 함께 내리면 선물환율은 반드시 내린다",
    "두 나라 금리와 관계없이 선물환율은 현물환율과 같다",
]
# Opposite directions of one statement (option prices and volatility).
DIRECTIONS = [
    "변동성이 커지면 콜옵션 가격은 오르고 풋옵션 가격은 내린다",
    "변동성이 커지면 콜옵션 가격은 내리고 풋옵션 가격은 오른다",
    "변동성이 커지면 콜옵션과 풋옵션 가격이 모두 오른다",
    "변동성이 커지면 콜옵션과 풋옵션 가격이 모두 내린다",
    "변동성이 작아지면 콜옵션과 풋옵션 가격이 모두 오른다",
    "변동성은 옵션 가격에 영향을 주지 않는다",
    "변동성이 커지면 내가격 옵션만 가격이 오른다",
]
# Content that merely *says* 모두, 없다 or A/B: not a reference to other options.
CONTENT = [
    "파생결합증권 가운데 원금 손실 가능성이 있는 상품은 모두 해당한다",
    "코넥스 상장법인과 비상장법인 모두 공시 의무가 같다",
    "A사와 B사 모두 신용등급이 한 단계 내려간다",
    "투자자 A와 B가 같은 수익률을 얻는다",
    "매매 차익에는 세금이 없다",
    "지분 5% 이상 보유자는 모두 보고 의무를 진다",
    "둘 다 하락한다",
]
# Words that can point at options but here are content.
CONTENT_2 = [
    "① 현물을 매수하고 ② 선물을 매도해 베이시스 축소에 대비한다",
    "여러 투자 선택지 중 위험이 가장 낮은 국고채를 고른다",
    "위탁자에게 다른 선택지가 없으면 반대매매가 집행된다",
    "모두 오른다",
    "두 나라 금리가 모두 같다면 선물환율은 현물환율과 같다",
    "해당 종목은 투자경고 종목에 해당한다",
    "(가)형 펀드는 환매수수료가 없다",
]


@pytest.mark.parametrize("options", [NUMERIC, DECIMALS, PARALLEL, DIRECTIONS, CONTENT, CONTENT_2],
                         ids=["numeric", "decimals", "parallel", "directions", "content",
                              "content-2"])
def test_exam_style_variants_pass(options: list[str]) -> None:
    assert checks.option_problems(options) is None
    assert checks.item_problems("다음 중 옳은 것은?", options, "C") is None


def _nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@pytest.mark.parametrize("variant", [
    lambda s: s + ".",                       # trailing period
    lambda s: s.replace(" ", "", 2),         # spacing
    lambda s: s.replace(" ", "  "),          # doubled spaces
    lambda s: f"'{s}'",                      # quotes
    lambda s: s.replace("1,100", "1100"),    # thousands separator
    _nfd,                                    # decomposed Hangul
    _full_width,                             # full-width digits and signs
], ids=["period", "spacing", "double-space", "quotes", "thousands", "nfd", "full-width"])
def test_the_same_option_after_folding_is_a_duplicate(variant: object) -> None:
    options = list(NUMERIC)
    options[6] = variant(options[0])  # type: ignore[operator]
    assert options[6] != options[0]
    assert checks.option_problems(options) == "duplicate_option"


def test_case_is_folded() -> None:
    options = ["ETF는 장중에 거래된다", *PARALLEL[1:6], "etf는 장중에 거래된다"]
    assert checks.option_problems(options) == "duplicate_option"


@pytest.mark.parametrize("reference", [
    "위 보기 모두 옳다", "위의 것 모두", "모두 옳다", "모두 해당한다", "이상 모두 해당한다.",
    "둘 다 옳다", "A와 B 모두", "A, C", "B만 옳다", "A, B, D 모두 맞다", "ㄱ, ㄷ", "ㄴ과 ㄹ",
    "(가), (다)", "②, ④", "①과 ③이 옳다", "ㄴ이 옳다", "정답 없음", "옳은 것이 없다",
    "해당 없음", "나머지 선택지는 모두 틀리다",
    "보기 가운데 둘 이상이 옳다", "정답은 D이다", "All of the above", "none of the above",
])
def test_options_that_point_at_other_options_are_rejected(reference: str) -> None:
    options = [*PARALLEL[:6], reference]
    assert checks.option_problems(options) == "position_dependent_option"


def _calibration_items() -> list[dict[str, object]]:
    path = CALIBRATION / "items.jsonl"
    if not path.exists():
        pytest.skip("../shared/calibration is not here")
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def test_no_calibration_item_is_flagged() -> None:
    """Exam-grade items written by a strong model: no per-item deterministic check drops one.

    (Whether the key may be the longest option is a quota over the set, not a property of one
    item, so it is allowed here; a key *far* longer than every distractor is still checked.)
    """
    flagged = {}
    for item in _calibration_items():
        options = [item["options"][letter] for letter in LETTERS]  # type: ignore[index]
        problem = checks.shape_problems(str(item["question"]), options, str(item["answer"]),
                                        allow_key_longest=True)
        problem = problem or checks.instruction_problems([str(item["question"]), *options])
        if problem:
            flagged[item["id"]] = problem
    assert flagged == {}
