"""Every record that flows through finmcq, as pydantic models.

Two kinds live here:

* *Pipeline records* (``SourceQuestion``, ``McqItem``, ``Verification``, ``Solution``,
  ``TrainingPair``) carry data from stage to stage and into the output files.
* *LLM reply schemas* (``RelevanceJudgment``, ``McqDraft``, ``BlindSolve``, ``DistractorAudit``,
  ``SolutionDraft``, ``SolutionGrade``) are what a stage asks the LLM to return. The engine turns
  them into the JSON schema sent as ``response_format``, so the prompt contract and the code that
  reads the reply cannot drift.

Invariants (7 distinct options, a key in A–G, ...) sit in validators so that an invalid record
cannot exist.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LETTERS: tuple[str, ...] = ("A", "B", "C", "D", "E", "F", "G")
SOURCE_LETTERS: tuple[str, ...] = ("A", "B", "C", "D")
Letter = Literal["A", "B", "C", "D", "E", "F", "G"]
SourceLetter = Literal["A", "B", "C", "D"]
KMMLU_LICENSE = "CC BY-ND 4.0"


class Topic(StrEnum):
    """The eight financial-market areas the dataset covers, plus 기타 for everything else."""

    STOCK_MARKET = "주식 시장 제도"
    DERIVATIVES = "파생상품 거래"
    PRODUCT_ANALYSIS = "금융상품 분석"
    RISK = "리스크 관리"
    STRATEGY = "투자 전략"
    REGULATION = "금융 규제"
    BONDS = "채권 시장"
    FX = "외환 시장"
    OTHER = "기타"


MARKET_TOPICS: tuple[Topic, ...] = tuple(t for t in Topic if t is not Topic.OTHER)


class Difficulty(StrEnum):
    EASY = "easy"
    MEDIUM = "medium"
    HARD = "hard"


# A build asks for an item's options and stem dozens of times while the item is in flight;
# 4,096 entries cover the ~100 items in flight. (65,536 held ~60 MB of texts at 100k questions.)
@lru_cache(maxsize=4096)
def normalize_text(text: str) -> str:
    """NFC-normalise and collapse whitespace: the form every comparison in finmcq uses."""
    return " ".join(unicodedata.normalize("NFC", text).split())


NonEmpty = Annotated[str, Field(min_length=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------------------------
# Pipeline records
# --------------------------------------------------------------------------------------------


class Provenance(_Frozen):
    """Where a source question came from, precisely enough to find the row again."""

    dataset: str = Field(description="hub id, local folder or file the row was read from")
    subject: str
    split: str
    row_index: int = Field(ge=0, description="0-based row within (subject, split)")
    original_answer: int = Field(ge=1, le=4, description="KMMLU's answer column, 1 = A")
    license: str = KMMLU_LICENSE


class SourceQuestion(_Frozen):
    """One 4-option question as read from KMMLU (or a file in its columns)."""

    uid: str = Field(description="stable id: subject/split/row")
    question: NonEmpty
    options: tuple[NonEmpty, NonEmpty, NonEmpty, NonEmpty]
    answer: SourceLetter
    category: str | None = None
    human_accuracy: float | None = None
    provenance: Provenance

    @property
    def answer_text(self) -> str:
        return self.options[SOURCE_LETTERS.index(self.answer)]


class McqItem(_Frozen):
    """A 7-option financial-market question with exactly one correct answer, in final order."""

    item_id: str
    question: NonEmpty
    options: tuple[NonEmpty, NonEmpty, NonEmpty, NonEmpty, NonEmpty, NonEmpty, NonEmpty]
    answer: Letter
    topic: Topic
    difficulty: Difficulty | None = None
    origin: Literal["rewrite", "generate"]
    source: SourceQuestion | None = None

    @model_validator(mode="after")
    def _distinct_options(self) -> McqItem:
        seen = {normalize_text(o).casefold() for o in self.options}
        if len(seen) != len(self.options):
            raise ValueError("the 7 options must be distinct")
        return self

    @property
    def answer_text(self) -> str:
        return self.options[LETTERS.index(self.answer)]


class Verification(_Frozen):
    """Outcome of the verify stage for one item, with the difficulty evidence it produced."""

    blind_answer: Letter | None
    passed: bool
    reasons: tuple[str, ...] = ()
    blind_answers: tuple[Letter, ...] = Field((), description="every blind solve (k >= 1)")
    generator_difficulty: Difficulty | None = None
    solver_difficulty: tuple[Difficulty, ...] = ()
    difficulty: Difficulty | None = Field(None, description="final label (generator + solver)")


class Solution(_Frozen):
    """The step-1 response: a rendered, step-by-step solution that ends with the key."""

    text: NonEmpty
    final_answer: Letter


class TrainingPair(_Frozen):
    prompt: NonEmpty
    response: NonEmpty


# --------------------------------------------------------------------------------------------
# LLM reply schemas (sent as response_format; keep descriptions in Korean, the model reads them)
#
# Field order is part of the contract: the wire schema keeps the declared order, and under strict
# decoding a model writes the fields in that order. So every schema declares its reasoning before
# the verdict it supports (reason → relevant, reasoning → answer, why_wrong → defensible,
# option reviews → derivation → final answer, feedback → scores); a verdict written first would
# be a guess that the reasoning after it can only rationalise. tests/test_schema_order.py holds
# every reply model to this.
# --------------------------------------------------------------------------------------------


class RelevanceJudgment(_Frozen):
    """관련성 판정: 이 문제가 금융 시장·투자·거래에 관한 문제인가."""

    reason: NonEmpty = Field(description="판단 근거 한 문장: 문제가 무엇을 묻는지")
    topic: Topic = Field(description="가장 가까운 분야 (해당 없으면 기타)")
    score: int = Field(ge=1, le=5, description="관련도 1(무관)~5(핵심)")
    relevant: bool = Field(description="금융 시장, 투자 또는 거래에 관한 문제이면 true")


class McqDraft(_Frozen):
    """7지선다 문항 초안: 정답 1개와 오답 6개. 선택지 순서는 finmcq가 정한다."""

    question: NonEmpty = Field(description="문제 본문 (시장 상황 포함, 선택지 제외)")
    correct_option: NonEmpty = Field(description="유일한 정답 선택지의 내용")
    distractors: list[NonEmpty] = Field(
        min_length=6, max_length=6, description="그럴듯하지만 명백히 틀린 오답 6개"
    )
    difficulty: Difficulty = Field(description="예상 난이도")

    @field_validator("distractors")
    @classmethod
    def _six_distinct(cls, value: list[str]) -> list[str]:
        if len({normalize_text(v).casefold() for v in value}) != len(value):
            raise ValueError("distractors must be distinct")
        return value


class BlindSolve(_Frozen):
    """정답을 모르는 상태에서 푼 결과."""

    reasoning: NonEmpty = Field(description="핵심 근거 1~3문장")
    answer: Letter = Field(description="가장 알맞은 선택지의 알파벳")
    difficulty: Difficulty = Field(
        description="풀어 본 체감 난이도: 필요한 지식과 추론 단계 기준 (easy/medium/hard)"
    )


class DistractorReview(_Frozen):
    letter: Letter
    why_wrong: NonEmpty = Field(description="이 선택지가 정답이 아닌 구체적인 이유")
    defensible: bool = Field(
        description="해석에 따라 이 선택지도 정답으로 볼 여지가 있거나 틀린 이유를 분명히 댈 수 "
        "없으면 true"
    )
    replacement: str | None = Field(
        description="defensible이 true일 때만: 같은 문제에서 분명히 틀린 새 오답. 아니면 null"
    )


class DistractorAudit(_Frozen):
    """정답 외 선택지 검수: 정답이 옳은지, 오답 6개가 각각 왜 틀렸는지."""

    key_reason: NonEmpty = Field(description="정답이 옳은(또는 옳지 않은) 이유 한두 문장")
    key_correct: bool = Field(description="출제자가 정한 정답이 문제 조건에서 옳으면 true")
    distractor_reviews: list[DistractorReview] = Field(
        description="정답을 뺀 선택지 6개 각각의 검토, 알파벳 순서대로"
    )
    # After the reasoning above: whether the key rests on a rule that can change (--as-of).
    time_sensitive: bool = Field(
        description="정답이 기준 시점의 제도·규제·한도·세율 등에 기대어 그 규정이 바뀌면 정답도 "
        "바뀔 수 있으면 true"
    )


class OptionReview(_Frozen):
    letter: Letter
    review: NonEmpty = Field(description="이 선택지가 옳은지/틀린지와 그 이유")


class SolutionDraft(_Frozen):
    """단계별 해설. finmcq가 이 구조를 정해진 형식의 해설 글로 조립한다."""

    analysis: NonEmpty = Field(description="문제 분석: 무엇을 묻는지, 핵심 개념")
    option_reviews: list[OptionReview] = Field(
        min_length=7, max_length=7, description="A부터 G까지 각 선택지 검토, 순서대로"
    )
    derivation: NonEmpty = Field(description="정답 도출 과정")
    theory: NonEmpty = Field(description="관련 금융 이론 및 실무 연계")
    final_answer: Letter = Field(description="최종 정답 알파벳")

    @field_validator("option_reviews")
    @classmethod
    def _reviews_in_order(cls, value: list[OptionReview]) -> list[OptionReview]:
        if [r.letter for r in value] != list(LETTERS):
            raise ValueError("option_reviews must cover A..G once each, in order")
        return value


Score = Annotated[int, Field(ge=1, le=5)]


class SolutionGrade(_Frozen):
    """해설 채점: 추론의 정확성, 7개 선택지 검토의 충실도, 금융 이론·실무 근거를 각각 1~5점."""

    feedback: NonEmpty = Field(
        description="채점 근거: 해설의 가장 중요한 결함이나 개선점 한두 문장 (점수보다 먼저)")
    correctness: Score = Field(description="추론이 정확하고 정답에 논리적으로 도달하는가 (1~5)")
    coverage: Score = Field(description="A~G 일곱 선택지를 모두 실제로 검토했는가 (1~5)")
    grounding: Score = Field(description="금융 이론과 실무에 근거해 설명하는가 (1~5)")

    @property
    def lowest(self) -> int:
        return min(self.correctness, self.coverage, self.grounding)
