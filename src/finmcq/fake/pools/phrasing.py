"""How the fake words its checks and what a careless model writes.

Verify reasons, solution reviews, the second-answer judge and the grader's feedback, and the
phrases defect mode (:mod:`finmcq.fake.defects`) plants.
"""

from __future__ import annotations

# Verify and solve phrasing.
VERIFY_REASONS: tuple[str, ...] = (
    "지문의 조건을 정리하면 {letter}의 '{snip}' 설명이 가장 부합한다. 나머지 선택지는 핵심 개념을 "
    "잘못 적용하고 있다.",
    "제시된 시장 상황과 개념을 대조해 보면 {letter}만이 논리적으로 성립한다. 다른 선택지는 조건의 "
    "일부를 빠뜨리거나 방향을 거꾸로 서술한다.",
    "각 선택지를 검토한 결과 {letter}의 '{snip}' 내용이 이론과 실무 모두에 맞는다.",
    "문제의 요구 사항을 기준으로 보면 {letter}가 가장 알맞다. 나머지는 개념의 정의나 방향이 "
    "틀렸다.",
)
REVIEW_RIGHT: tuple[str, ...] = (
    "옳다. '{snip}'{eun} 문제의 조건과 관련 이론에 정확히 부합한다.",
    "적절하다. '{snip}'{eun} 지문에서 요구하는 핵심 개념을 올바르게 적용한 설명이다.",
    "맞는 설명이다. '{snip}'{eun} 시장 상황과 이론적 근거가 모두 일치한다.",
)
REVIEW_WRONG: tuple[str, ...] = (
    "틀리다. '{snip}'{eun} 개념의 방향을 거꾸로 이해한 설명이다.",
    "옳지 않다. '{snip}'{eun} 문제의 조건 가운데 일부를 빠뜨리고 판단했다.",
    "부적절하다. '{snip}'{eun} 이론적 근거가 없거나 실무 관행과 맞지 않는다.",
    "틀린 설명이다. '{snip}'{eun} 핵심 정의를 잘못 적용했다.",
    "맞지 않는다. '{snip}'{eun} 지나치게 단정적이어서 일반적으로 성립하지 않는다.",
)

# Second-answer judge phrasing ({snip}: the option, {eun}: its 은/는).
JUDGE_WRONG: tuple[str, ...] = (
    "'{snip}'{eun} 핵심 개념의 방향을 거꾸로 서술하고 있어 정답이 될 수 없다.",
    "'{snip}'{eun} 문제의 조건과 맞지 않는 진술이어서 답이 아니다.",
    "'{snip}'{eun} 관련 이론이나 제도의 내용과 어긋나므로 정답으로 볼 여지가 없다.",
    "'{snip}'{eun} 일반적으로 성립하지 않는 단정이어서 분명히 답이 아니다.",
)
JUDGE_DEFENSIBLE: tuple[str, ...] = (
    "'{snip}'{eun} 그 자체로 옳은 진술이어서 정답과 함께 답으로 볼 수 있다.",
    "'{snip}'{eun} 문제가 묻는 내용에 해당하므로 틀렸다고 보기 어렵다.",
)
GRADE_PRAISE: tuple[str, ...] = (
    "각 선택지의 오류를 조금 더 구체적인 수치나 사례로 보여 주면 좋겠다.",
    "정답 도출 과정에서 핵심 개념의 정의를 한 문장 더 밝히면 더 명확하다.",
    "실무 연계 부분에 실제 시장 사례를 하나 덧붙이면 좋겠다.",
)

# Defect mode (finmcq.fake.defects): what a careless model writes.
POSITIONAL_DISTRACTORS: tuple[str, ...] = (
    "위의 보기 모두 옳다",
    "정답 없음",
    "위 선택지 중 둘 이상이 옳다",
    "이상 모두 해당한다",
    "A와 C 모두 옳다",
)
SKIPPED_REVIEWS: tuple[str, ...] = (
    "생략한다.",
    "위와 같다.",
    "앞 선택지와 같은 이유로 틀리다.",
)
LEAK_SENTENCES: tuple[str, ...] = (
    "일부 전문가는 '{key}'라고 설명한다.",
    "회의에서는 {key}는 점이 먼저 언급되었다.",
    "참고 자료에는 '{key}'라는 문장이 적혀 있다.",
)
