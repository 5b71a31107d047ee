"""The reviewing writers: the second-answer judge (DistractorAudit) and the grader (SolutionGrade).

The judge finds a distractor that is *also* correct (a statement of the truth value the stem asks
for) and nothing else; the grader reads the rendered solution and scores what is actually there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from finmcq.fake import cues, pools
from finmcq.fake.replies.common import (
    Reply,
    ReplyContext,
    as_options,
    as_text,
    casefolded,
    distinct_quotes,
    option_code,
    particle,
    quote,
    stem_figures,
)
from finmcq.fake.replies.distractors import (
    correct_statements,
    is_negative_question,
    statement_truth,
)
from finmcq.fake.replies.relevance import keyword_score
from finmcq.quality.text import fold_text
from finmcq.records import LETTERS, Topic, normalize_text

# A review that reviews nothing ("생략", "위와 같음"): what the grader marks as not covered.
_SKIP_REVIEW = re.compile(r"생략|위와\s*같|같은\s*이유|마찬가지|상동")
_REVIEW_LINE = re.compile(r"^([A-G])\. (.*)$", re.MULTILINE)


# --------------------------------------------------------------------------------------------
# judge (second answer)
# --------------------------------------------------------------------------------------------


def _replacement(question: str, options: Mapping[str, str], answer: str,
                 taken: list[str]) -> str | None:
    """A clearly wrong distractor for a repair: the opposite truth value of a correct option."""
    key = options.get(answer, "")
    wrong_truth = is_negative_question(question)  # positive stems need false statements
    topic = keyword_score(question + " " + key).topic
    topic = topic if topic in pools.TOPIC_POOLS else Topic.STRATEGY
    figures = stem_figures(question) | {option_code(key)}
    bare = {fold_text(t) for t in taken}
    candidates = correct_statements(wrong_truth, topic)
    longer_first = sorted(candidates, key=lambda c: len(c) <= len(normalize_text(key)))
    for candidate in longer_first:
        if option_code(candidate) in figures or fold_text(candidate) in bare:
            continue
        return candidate
    return None


def build_judge(item: Mapping[str, Any], ctx: ReplyContext) -> Reply:
    """DistractorAudit: a distractor is defensible when it is a statement of the truth value the
    stem asks for; a replacement of the opposite truth value is proposed for it."""
    question = as_text(item.get("question"))
    options = as_options(item.get("options"), LETTERS)
    answer = as_text(item.get("answer")).strip().upper()
    wanted = not is_negative_question(question)
    key_truth = statement_truth(options.get(answer, ""))
    key_correct = key_truth is None or key_truth == wanted
    taken = list(options.values())
    snips = dict(zip(options, distinct_quotes(list(options.values())), strict=True))
    reviews = []
    for letter in LETTERS:
        if letter == answer or letter not in options:
            continue
        truth = statement_truth(options[letter])
        defensible = truth is not None and truth == wanted
        replacement = _replacement(question, options, answer, taken) if defensible else None
        if replacement:
            taken.append(replacement)
        snip = snips[letter]
        template = ctx.rng.choice(pools.JUDGE_DEFENSIBLE if defensible else pools.JUDGE_WRONG)
        reviews.append({"letter": letter, "defensible": defensible, "replacement": replacement,
                        "why_wrong": template.format(snip=snip, eun=particle(snip, "은", "는"))})
    key_snip = quote(options.get(answer, "") or "정답 선택지")
    eun = particle(key_snip, "은", "는")
    key_reason = (f"'{key_snip}'{eun} 문제의 조건과 관련 이론에 부합한다." if key_correct else
                  f"'{key_snip}'{eun} 문제가 묻는 내용과 반대되는 진술이어서 정답이 될 수 없다.")
    return {"key_correct": key_correct, "key_reason": key_reason, "distractor_reviews": reviews,
            "time_sensitive": cues.dated_rule(question)}


# --------------------------------------------------------------------------------------------
# grade (solution quality)
# --------------------------------------------------------------------------------------------


def _section(text: str, title: str) -> str:
    start = text.find(f"[{title}]")
    if start < 0:
        return ""
    body = text[start + len(title) + 2:]
    end = body.find("\n[")
    return body if end < 0 else body[:end]


def build_grade(item: Mapping[str, Any], ctx: ReplyContext) -> Reply:
    """SolutionGrade of the rendered solution: reviews present and real, conclusion, theory."""
    solution = as_text(item.get("solution"))
    answer = as_text(item.get("answer")).strip().upper()
    reviews = dict(_REVIEW_LINE.findall(_section(solution, "선택지 검토")))
    skipped = [letter for letter in LETTERS
               if len(casefolded(reviews.get(letter, "")).replace(" ", "")) < 6
               or (_SKIP_REVIEW.search(reviews.get(letter, "")) and len(reviews[letter]) <= 30)]
    coverage = max(1, 5 - len(skipped))
    concluded = re.search(r"정답은 ([A-G])입니다", solution)
    correctness = 5 if concluded and concluded.group(1) == answer else 1
    theory = _section(solution, "이론 및 실무 연계")
    grounded = keyword_score(theory).weight >= 2
    grounding = 5 if len(theory) >= 80 and grounded else (3 if len(theory) >= 30 else 2)
    if skipped:
        feedback = f"{', '.join(skipped)} 선택지의 검토가 비어 있거나 다른 검토를 가리키기만 한다."
    elif correctness < 5:
        feedback = "결론의 알파벳이 정답과 다르다. 검토 결과와 결론을 일치시켜야 한다."
    else:
        feedback = ctx.rng.choice(pools.GRADE_PRAISE)
    return {"correctness": correctness, "coverage": coverage, "grounding": grounding,
            "feedback": feedback}
