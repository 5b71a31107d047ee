"""Per-task reply builders of the fake LLM, and the dispatch from a request's task to its builder.

One module per kind of writer: :mod:`~finmcq.fake.replies.relevance`,
:mod:`~finmcq.fake.replies.generate`, :mod:`~finmcq.fake.replies.rewrite`,
:mod:`~finmcq.fake.replies.answers` (verify, solve), :mod:`~finmcq.fake.replies.audits` (judge,
grade); what they share lives in :mod:`~finmcq.fake.replies.common` (the verification figure,
the request context, particles) and :mod:`~finmcq.fake.replies.distractors` (safe distractors,
which pooled statements are true). This module keeps the dispatch (:func:`build_reply`), the
replies to free-text requests and prose, and re-exports the names other modules import.

Each builder takes the item parsed from the request's ``<입력>`` block and a :class:`ReplyContext`
(a random generator seeded from the request) and returns a plain ``dict`` that validates against
the matching reply model in :mod:`finmcq.records`. Builders never look at shared state, so the
same request always gets the same reply, even across server restarts.

How ``verify`` agrees with the key without being told it: every stem the fake writes (rewrite or
generate) carries a natural-looking 4-digit figure equal to :func:`option_code` of the correct
option, and no other option's code appears among the stem's 4-digit figures. A blind solve then
answers the letter whose option's code is in the stem. Questions the fake did not write get a
deterministic pseudo-random letter, i.e. sometimes a wrong one, like a real model.

The judge and grader are consistent with what the fake writes: every pooled statement is known
to be true or false (:func:`statement_truth`), so the second-answer judge finds a distractor that
is *also* correct (a true statement in a "which is correct?" stem) and nothing else; the grader
reads the rendered solution and scores what is actually there.

Generated items come in the styles of :mod:`finmcq.fake.styles` (calculations whose options
differ mainly in a number, templates with swapped terms, pooled statements with some negative
stems) at about the rates strong models write them.

The fake follows its prompts where finmcq checks them: a generated or rewritten key is not the
longest option when a longer distractor can be had, a requested difficulty is honoured.

A generate reply depends on the topic, slot and attempt (and the request's sampling settings), not
on the rest of the prompt, so the fake can reproduce any slot's question statelessly; defect mode
(:mod:`finmcq.fake.defects`) uses that to write a near-duplicate of an earlier slot's question.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from finmcq.fake.replies.answers import blind_answer, build_solve, build_verify
from finmcq.fake.replies.audits import build_grade, build_judge
from finmcq.fake.replies.common import (
    Reply,
    ReplyContext,
    as_text,
    context_for,
    extract_item,
    is_positional,
    option_code,
    particle,
    semantic_context,
    stem_figures,
)
from finmcq.fake.replies.distractors import (
    correct_statements,
    is_negative_question,
    key_is_longest,
    statement_truth,
)
from finmcq.fake.replies.generate import (
    build_generate,
    draft_style,
    generate_draft,
    generate_for,
    generate_request,
    slot_number,
)
from finmcq.fake.replies.relevance import KeywordScore, build_relevance, judge_text, keyword_score
from finmcq.fake.replies.rewrite import build_rewrite

Builder = Callable[[Mapping[str, Any], "ReplyContext"], Reply]

# Which stage a reply schema name belongs to, for requests without a recognisable task.
SCHEMA_NAMES: tuple[str, ...] = ("RelevanceJudgment", "McqDraft", "BlindSolve", "SolutionDraft",
                                  "DistractorAudit", "SolutionGrade")

# --------------------------------------------------------------------------------------------
# Dispatch, unknown tasks, prose
# --------------------------------------------------------------------------------------------

TASK_BUILDERS: dict[str, Builder] = {
    "relevance": build_relevance,
    "rewrite": build_rewrite,
    "generate": build_generate,
    "verify": build_verify,
    "judge": build_judge,
    "solve": build_solve,
    "grade": build_grade,
}


def build_generic(schema_name: str | None, text: str, ctx: ReplyContext) -> Reply:
    """A valid reply for ``schema_name`` built from free ``text``; ``{"echo": text}`` otherwise."""
    if schema_name == "RelevanceJudgment":
        return judge_text(text, ctx)
    if schema_name == "McqDraft":
        topic = keyword_score(text).topic
        return generate_draft(topic, "", None, int(ctx.digest[:8], 16), 0, ctx)
    if schema_name == "BlindSolve":
        return build_verify({"question": text, "options": {}}, ctx)
    if schema_name == "SolutionDraft":
        return build_solve({"question": text, "options": {}}, ctx)
    if schema_name == "DistractorAudit":
        return build_judge({"question": text, "options": {}}, ctx)
    if schema_name == "SolutionGrade":
        return build_grade({"solution": text}, ctx)
    return {"echo": text}


def build_reply(item: Mapping[str, Any] | None, ctx: ReplyContext) -> tuple[str, Reply]:
    """``(task, reply)`` for a parsed ``<입력>`` item (or ``None`` when there was none)."""
    task = as_text(item.get("task")) if item is not None else ""
    builder = TASK_BUILDERS.get(task)
    if item is not None and builder is not None:
        return task, builder(item, ctx)
    return (task or "none"), build_generic(ctx.schema_name, ctx.last_user, ctx)


def to_prose(reply: Mapping[str, Any]) -> str:
    """The reply as a chatty Korean paragraph: what a model that ignores response_format says."""
    if "relevant" in reply:
        verdict = "금융 시장과 직접 관련된" if reply["relevant"] else "금융 시장과는 거리가 있는"
        return (f"검토해 보니 이 문제는 {verdict} 문제입니다. 분야는 {reply['topic']}, 관련도는 "
                f"{reply['score']}점으로 보았습니다. {reply['reason']}")
    if "correct_option" in reply:
        wrong = " / ".join(reply["distractors"])
        return (f"새 문제를 만들어 보았습니다. 문제: {reply['question']} 정답: "
                f"{reply['correct_option']} 오답: {wrong}")
    if "final_answer" in reply:
        return f"{reply['analysis']} {reply['derivation']} 최종 답은 {reply['final_answer']}입니다."
    if "answer" in reply:
        return f"{reply['reasoning']} 그래서 저는 {reply['answer']}를 고르겠습니다."
    return "말씀하신 내용을 잘 확인했습니다. 더 필요한 것이 있으면 알려 주세요."


__all__ = [
    "SCHEMA_NAMES",
    "TASK_BUILDERS",
    "Builder",
    "KeywordScore",
    "Reply",
    "ReplyContext",
    "blind_answer",
    "build_generate",
    "build_generic",
    "build_grade",
    "build_judge",
    "build_relevance",
    "build_reply",
    "build_rewrite",
    "build_solve",
    "build_verify",
    "context_for",
    "correct_statements",
    "draft_style",
    "extract_item",
    "generate_draft",
    "generate_for",
    "generate_request",
    "is_negative_question",
    "is_positional",
    "key_is_longest",
    "keyword_score",
    "option_code",
    "particle",
    "semantic_context",
    "slot_number",
    "statement_truth",
    "stem_figures",
    "to_prose",
]
