"""A reviewer's edit, re-checked by the same deterministic checks the build applies.

An edit is refused (with the check's name and what it means) when the build would have dropped
the item for it: 7 distinct, non-empty, single-line options without position-dependent wording,
a key in A–G that does not leak into the stem, no prompt layout markers or instructions to the
model, and no key far longer than every distractor. A reviewer may choose a key that is merely
the longest option (the build allows that in a share of items). An edited solution must conclude
with the key and pass the solution checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from finmcq import checks
from finmcq.records import LETTERS, normalize_text
from finmcq.review.decisions import ItemEdit

# What each check's name means, for the refusal message.
MEANINGS: dict[str, str] = {
    "key_not_in_A_to_G": "the key must be one of the letters A to G",
    "wrong_option_count": "an item has exactly 7 options (A–G)",
    "empty_option": "every option needs text",
    "format_marker_in_option": "an option may not span lines or contain the prompt's layout "
    "markers (### 질문/선택지/정답, 'A. ' at a line start)",
    "duplicate_option": "two options say the same thing (ignoring spacing and punctuation)",
    "position_dependent_option": "an option refers to other options or their position "
    "(e.g. '모두 옳다', '위의 보기', 'A와 B')",
    "empty_question": "the question needs text",
    "format_marker_in_question": "the question contains the prompt's layout markers",
    "instruction_in_text": "the text contains instructions to the model (prompt injection)",
    "answer_leaked_in_stem": "the key's text appears in the question itself",
    "key_much_longer": "the key is far longer than every other option, a cue a model learns",
    "solution_wrong_letter": "the solution must conclude with the key "
    "('따라서 정답은 X입니다.' with the key's letter)",
    "solution_admits_given_key": "the solution says it was given the key",
    "format_marker_in_solution": "the solution contains the prompt's layout markers",
}

_CONCLUSION = re.compile(r"정답은\s*([A-G])\s*(입니다|이다)?\s*[.。]?\s*\Z")


class EditRefused(ValueError):
    """An edit that fails a deterministic check; ``reason`` is the check's name."""

    def __init__(self, reason: str, where: str) -> None:
        self.reason = reason
        self.where = where
        meaning = MEANINGS.get(reason, reason)
        super().__init__(f"Refused by the check {reason} ({where}): {meaning}.")


def parse_edit(data: Mapping[str, Any]) -> ItemEdit:
    """An :class:`ItemEdit` from a submitted form; ``EditRefused`` if its shape is wrong."""
    options = data.get("options")
    if isinstance(options, Mapping):
        options = [options.get(ch, "") for ch in LETTERS]
    if not isinstance(options, Sequence) or isinstance(options, str):
        raise EditRefused("wrong_option_count", "options")
    solution = data.get("solution")
    return ItemEdit(
        question=str(data.get("question") or "").strip(),
        options=tuple(str(o).strip() for o in options),
        answer=str(data.get("answer") or "").strip().upper(),
        solution=str(solution).strip() if solution else None,
    )


def check_edit(edit: ItemEdit) -> None:
    """Raise ``EditRefused`` with the first failed check, in the build's order."""
    if edit.answer not in LETTERS:
        raise EditRefused("key_not_in_A_to_G", "key")
    if len(edit.options) != len(LETTERS):
        raise EditRefused("wrong_option_count", "options")
    if not normalize_text(edit.question):
        raise EditRefused("empty_question", "question")
    problem = checks.option_problems(edit.options)
    if problem:
        raise EditRefused(problem, "options")
    problem = checks.stem_problems(edit.question, edit.options[LETTERS.index(edit.answer)])
    if problem:
        raise EditRefused(problem, "question")
    problem = checks.instruction_problems(edit.options)
    if problem:
        raise EditRefused(problem, "options")
    problem = checks.answer_length_cue(edit.options, edit.answer, allow_longest=True)
    if problem:
        raise EditRefused(problem, "options")
    if edit.solution is not None:
        match = _CONCLUSION.search(edit.solution.strip())
        final = match.group(1) if match else ""
        problem = (checks.solution_problems(final, edit.answer, [edit.solution])
                   or checks.instruction_problems([edit.solution]))
        if problem:
            raise EditRefused(problem, "solution")


def changed_fields(before: Mapping[str, Any], edit: ItemEdit) -> list[str]:
    """Which of question/options/answer/solution the edit changes against an items-file record."""
    options = before.get("options") or {}
    old_options = [options.get(ch) for ch in LETTERS] if isinstance(options, Mapping) else list(
        options)
    changed = []
    if before.get("question") != edit.question:
        changed.append("question")
    if old_options != list(edit.options):
        changed.append("options")
    if before.get("answer") != edit.answer:
        changed.append("answer")
    if edit.solution is not None and before.get("solution") != edit.solution:
        changed.append("solution")
    return changed
