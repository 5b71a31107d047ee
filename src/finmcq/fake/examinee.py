"""The fake as an exam taker, for testing ``finmcq eval`` and lm-eval exports against it.

``finmcq fake-llm --answers SET --accuracy P [--unparseable Q]`` gives the fake the answer key of
an eval set (any ``--set`` finmcq eval accepts); with it the fake answers questions in the
training pairs' layout (``### 질문: … ### 선택지: … ### 정답:``) as a model of known skill would:

* which questions it gets right is drawn once per question from a hash of the seed and the
  question (right with probability ``P``), so the same question always gets the same answer, in
  every process, and the accuracy over a set is ``P`` up to sampling error;
* a step-1 prompt (no system message) gets a short reasoning that ends with
  ``따라서 정답은 X입니다.``; a step-2 prompt (the step-1 prompt followed by a reasoning) gets the
  letter that reasoning concludes with — so a two-step eval that loses the reasoning on the way
  gets a reasoning back instead of a letter, which parses as no answer;
* a request whose system message asks for the letter alone (the direct variant) gets a letter,
  drawn independently of the two-step one;
* a share ``Q`` of letter answers comes in a non-strict form (``정답은 X입니다.``), which a strict
  parser must count as unparseable.

The key comes only from the file the user names: the fake never sees finmcq's scoring, and the
eval never sees the fake's draws; the test compares the two. The fake counts what it answered
(``/_fake/stats`` ``by_task``: ``exam_right_*`` / ``exam_wrong_*`` per strict letter and per
reasoning), so an eval's correct count can be checked exactly, not only within an interval.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

_BLOCK = re.compile(r"### 질문:(?P<block>.*?)### 정답:(?P<rest>.*)", re.S)
_OPTION = re.compile(r"^([A-G])\. ", re.M)
_CONCLUSION = re.compile(r"정답은\s*([A-G])\s*입니다")
_LETTER_ONLY_CUES = ("알파벳 하나", "letter only", "only the letter")


@dataclass(frozen=True)
class ExamReply:
    text: str
    kind: str  # counted in the fake's by_task: exam_reason, exam_letter, exam_unparseable, ...
    # For a strict letter answer: exam_right_{variant} or exam_wrong_{variant}, also counted, so
    # a test can hold an eval's correct count against what the fake really answered.
    graded: str | None = None


def _fold(text: str) -> str:
    return " ".join(text.split())


def _unit(*parts: object) -> float:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@cache
def answer_key(spec: str) -> Mapping[str, str]:
    """Question block (folded) -> key letter, for every question of the set ``spec`` names."""
    from finmcq.evaluate.sets import load_eval_set  # the eval's reader; loaded once per spec

    key: dict[str, str] = {}
    for item in load_eval_set(spec).items:
        match = _BLOCK.search(item.prompt)
        if match:
            key[_fold(match["block"])] = item.answer
    return key


def exam_reply(answers: str, accuracy: float, unparseable: float, seed: int,
               messages: Sequence[Any]) -> ExamReply | None:
    """The fake examinee's reply to ``messages``, or ``None`` when they are not an exam question."""
    user = next((m.get("content") for m in reversed(messages)
                 if isinstance(m, dict) and m.get("role") == "user"), None)
    if not isinstance(user, str):
        return None
    match = _BLOCK.search(user)
    if match is None:
        return None
    block = _fold(match["block"])
    letters = _OPTION.findall(match["block"]) or list("ABCDEFG")
    key = answer_key(answers).get(block)
    system = " ".join(str(m.get("content")) for m in messages
                      if isinstance(m, dict) and m.get("role") in ("system", "developer"))
    direct = any(cue in system for cue in _LETTER_ONLY_CUES)
    reasoning = match["rest"].strip()
    if reasoning and not direct:  # step 2: read the letter the reasoning concludes with
        concluded = _CONCLUSION.findall(reasoning)
        letter = concluded[-1] if concluded else _choose(block, key, letters, accuracy, seed,
                                                         "two_step")
        return _letter_reply(letter, key, block, unparseable, seed, "two_step")
    if direct:
        letter = _choose(block, key, letters, accuracy, seed, "direct")
        return _letter_reply(letter, key, block, unparseable, seed, "direct")
    letter = _choose(block, key, letters, accuracy, seed, "two_step")
    others = ", ".join(x for x in letters if x != letter)
    text = (f"[문제 분석]\n질문이 묻는 개념을 확인하고 선택지 {len(letters)}개를 차례로 "
            f"검토합니다.\n\n[정답 도출]\n선택지 {others}는 조건에 맞지 않고, {letter}가 "
            f"조건을 모두 충족합니다.\n\n따라서 정답은 {letter}입니다.")
    if key is None:
        return ExamReply(text, "exam_reason_unknown")
    return ExamReply(text, "exam_reason", f"exam_{'right' if letter == key else 'wrong'}_reason")


def _choose(block: str, key: str | None, letters: Sequence[str], accuracy: float, seed: int,
            variant: str) -> str:
    """Right with probability ``accuracy`` (per question and variant), else a wrong letter."""
    if key is None:  # not in the answer file: a guess
        return letters[int(_unit(seed, "guess", variant, block) * len(letters))]
    if _unit(seed, "right", variant, block) < accuracy:
        return key
    wrong = [x for x in letters if x != key] or [key]
    return wrong[int(_unit(seed, "wrong", variant, block) * len(wrong))]


def _letter_reply(letter: str, key: str | None, block: str, unparseable: float, seed: int,
                  variant: str) -> ExamReply:
    if _unit(seed, "format", variant, block) < unparseable:
        return ExamReply(f"정답은 {letter}입니다.", f"exam_unparseable_{variant}")
    graded = f"exam_{'right' if letter == key else 'wrong'}_{variant}"
    return ExamReply(letter, f"exam_letter_{variant}", graded)
