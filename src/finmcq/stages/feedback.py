"""Why the previous attempt at a slot failed, in Korean, for the next draft request.

A rewrite that failed verification is told why (``--verify-repair``); a generate retry is told
the same way, so a model does not repeat the mistake the checks just caught. The note names the
check in plain words; the check's own detail follows, trimmed.
"""

from __future__ import annotations

from finmcq.stages.base import Dropped

DETAIL_CHARS = 200

_SOLVER = ("정답을 모르는 풀이자가 정답이 아닌 선택지를 골랐습니다. 정답의 근거를 문제 "
           "조건에 분명히 넣고, 해석에 따라 답이 될 수 있는 오답을 없애십시오.")
_SOLUTION = ("해설이 정답에 이르지 못했습니다. 문제 조건만으로 정답 하나가 분명히 도출되도록 "
             "쓰십시오.")
_DUPLICATE = "이미 나온 문제와 거의 같았습니다. 다른 상황, 다른 수치, 다른 개념으로 쓰십시오."
_SAME_OPTIONS = "뜻이 같은 선택지가 두 번 나왔습니다. 선택지 7개는 서로 분명히 달라야 합니다."

NOTES: dict[str, str] = {
    "blind_solve_mismatch": _SOLVER,
    "self_consistency_mismatch": _SOLVER,
    "difficulty_off_target": "풀이자가 느낀 난이도가 요청한 difficulty와 달랐습니다. "
                             "요청한 난이도에 맞게 상황과 추론 단계를 조절하십시오.",
    "distractor_defensible": "검수자가 정답으로도 볼 수 있는 오답을 찾았습니다. 오답은 각각 "
                             "개념·수치·방향·조건 가운데 하나가 분명히 틀려야 합니다.",
    "judge_key_incorrect": "검수자가 정답 선택지가 문제 조건에서 옳지 않다고 보았습니다.",
    "judge_incomplete_review": ("검수자가 선택지를 모두 검토하지 못했습니다. "
                                "선택지를 분명하게 쓰십시오."),
    "key_length_rank_off_target": "선택지 길이가 요청과 달랐습니다. key_length에 적힌 개수만큼 "
                                  "정답보다 긴 오답과 짧은 오답을 쓰십시오.",
    "key_much_longer": "정답 선택지만 유독 길었습니다. 정답과 오답의 길이와 구체성을 맞추십시오.",
    "answer_leaked_in_stem": "정답 선택지의 문장이 문제 본문에 그대로 들어 있었습니다.",
    "duplicate_option": _SAME_OPTIONS,
    "near_identical_options": _SAME_OPTIONS,
    "position_dependent_option": ("\"모두 옳다\", \"A와 B\"처럼 다른 선택지나 위치에 "
                                  "기대는 선택지가 있었습니다."),
    "format_marker_in_option": "선택지에 줄바꿈이나 A. 같은 기호가 들어 있었습니다.",
    "format_marker_in_question": "문제 본문에 \"### 질문:\" 같은 형식 표시가 들어 있었습니다.",
    "instruction_in_text": "문제에 모델에게 하는 지시문이 들어 있었습니다.",
    "solution_wrong_letter": _SOLUTION,
    "solution_skips_options": _SOLUTION,
    "solution_score_below_threshold": _SOLUTION,
    "contaminated": "공개 시험 문제와 겹쳤습니다. 기존 문제를 옮기지 말고 새로 쓰십시오.",
    "near_duplicate_question": _DUPLICATE,
    "duplicate_question": _DUPLICATE,
}


def retry_feedback(dropped: Dropped | None) -> str | None:
    """The note for the next draft after ``dropped``; None when there is nothing to learn from
    (no previous attempt, or a failed call rather than a rejected draft)."""
    if dropped is None:
        return None
    note = NOTES.get(dropped.reason)
    if note is None:
        return None
    detail = " ".join(dropped.detail.split())
    if len(detail) > DETAIL_CHARS:
        detail = detail[:DETAIL_CHARS - 1] + "…"
    return f"{note} (검사: {dropped.reason}{'; ' + detail if detail else ''})"
