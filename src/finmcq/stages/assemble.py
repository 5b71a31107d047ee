"""Assemble: each delivered item becomes two training pairs in the KRX-style layout."""

from __future__ import annotations

from dataclasses import dataclass

from finmcq.records import LETTERS, McqItem, Solution, TrainingPair

DEFAULT_INSTRUCTION = "다음 문제를 읽고 정답으로 가장 알맞은 것을 고르시요."
DEFAULT_LAYOUT = "{instruction}\n### 질문: {question}\n### 선택지:\n{options}\n### 정답:"


@dataclass(frozen=True)
class PromptTemplate:
    """The step-1 prompt layout. Users may change the instruction line (e.g. 고르시오)."""

    instruction: str = DEFAULT_INSTRUCTION
    layout: str = DEFAULT_LAYOUT

    def step1(self, item: McqItem) -> str:
        options = "\n".join(f"{letter}. {text}" for letter, text in
                            zip(LETTERS, item.options, strict=True))
        return self.layout.format(instruction=self.instruction, question=item.question,
                                  options=options)


def training_pairs(item: McqItem, solution: Solution,
                   template: PromptTemplate | None = None) -> tuple[TrainingPair, TrainingPair]:
    """Step 1: question → solution. Step 2: question + solution → the letter alone."""
    if solution.final_answer != item.answer:
        raise ValueError(f"{item.item_id}: solution concludes {solution.final_answer}, "
                         f"key is {item.answer}")
    prompt1 = (template or PromptTemplate()).step1(item)
    return (
        TrainingPair(prompt=prompt1, response=solution.text),
        TrainingPair(prompt=f"{prompt1}\n{solution.text}", response=item.answer),
    )
