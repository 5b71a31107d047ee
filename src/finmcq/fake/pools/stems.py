"""Stem and option pools: scenario components, question frames, bridges, generic wrong options.

The generate-stem component pools (``OPENINGS``, ``ACTORS``, ``CODE_CLAUSES``, ``MACROS``,
``TASKS`` and each topic's ``details`` in :mod:`finmcq.fake.pools.topics`) have *prime* sizes
(11, 13, 17, 19, 23 and 7) on purpose: a slot number ``s`` picks entry ``(a*s + b) mod p`` of each
pool, so two slots share an entry of a pool only when their difference is a multiple of that
pool's prime. Sharing three components needs a difference divisible by at least 7·11·13 = 1,001,
so any two slots less than 1,001 apart share at most two of the six components, which keeps
generated stems far apart. Changing a pool's size to a non-prime silently weakens that
guarantee; a test pins the sizes.
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------------
# Generate-stem components (prime sizes: see the module docstring).
# --------------------------------------------------------------------------------------------

OPENINGS: tuple[str, ...] = (  # 11
    "올해 상반기 들어",
    "최근 몇 주 사이",
    "지난 분기 말을 전후해",
    "연초 이후 줄곧",
    "주요국 중앙은행의 통화정책 회의를 앞두고",
    "분기 실적 발표 시즌이 시작되면서",
    "연말 결산을 한 달가량 앞둔 시점에",
    "해외 증시가 큰 폭으로 조정받은 직후",
    "신규 상장 종목이 잇따르던 시기에",
    "외국인 자금의 유출입이 눈에 띄게 커지자",
    "변동성이 모처럼 잦아든 장세 속에서",
)

ACTORS: tuple[str, ...] = (  # 13
    "중형 자산운용사의 주식 운용역",
    "한 증권사의 파생상품 트레이딩 데스크",
    "어느 연기금의 위탁운용 담당자",
    "개인 투자자 김 씨",
    "보험사 자산운용본부의 채권 매니저",
    "시중은행 자금부의 외환 딜러",
    "독립 투자자문사의 포트폴리오 매니저",
    "대형 증권사 리서치센터의 연구원",
    "중견 수출기업의 재무팀장",
    "한 헤지펀드의 리스크 관리 책임자",
    "금융투자회사의 준법감시인",
    "퇴직연금 사업자의 상품 개발 담당자",
    "사모펀드 운용사의 투자심사역",
)

# Each clause carries the {code} figure that tells the fake's verify which option is correct.
CODE_CLAUSES: tuple[str, ...] = (  # 17
    "약 {code}억 원 규모의 포트폴리오를 다시 점검하기 시작했다",
    "일평균 {code}억 원 안팎의 거래를 처리하며 시장 흐름을 살피고 있다",
    "새로 배정받은 {code}억 원의 자금으로 운용 계획을 짜고 있다",
    "{code}억 원어치 보유 자산의 평가손익을 날마다 보고하고 있다",
    "고객 자산 {code}억 원을 어떻게 재배분할지 검토하고 있다",
    "미결제약정 {code}계약에 이르는 포지션의 위험을 다시 계산하고 있다",
    "{code}억 원 한도의 신규 투자 안건을 심사하고 있다",
    "순자산 {code}억 원짜리 펀드의 운용 전략을 손보려 한다",
    "{code}만 주에 달하는 보유 물량의 처분 방안을 고민하고 있다",
    "외화 자산 {code}만 달러의 환위험 관리 방안을 마련하고 있다",
    "만기가 돌아오는 {code}억 원 자금의 재투자처를 찾고 있다",
    "{code}억 원 규모의 기관 자금 위탁을 앞두고 제안서를 준비하고 있다",
    "지난 한 달 동안 {code}억 원을 순매수한 배경을 설명해야 하는 처지이다",
    "{code}억 원 상당의 담보 자산 가치를 재평가하고 있다",
    "고객 {code}명에게 보낼 투자 안내 자료를 만들고 있다",
    "연간 {code}억 원의 운용 수익 목표를 달성할 방안을 찾고 있다",
    "{code}억 원 규모의 신상품 출시를 앞두고 내부 검토를 진행하고 있다",
)

MACROS: tuple[str, ...] = (  # 19
    "시장에서는 기준금리가 연 {rate}% 수준에서 당분간 유지될 것이라는 전망이 우세하다.",
    "원/달러 환율은 {fx}원 부근에서 좁은 폭으로 오르내리고 있다.",
    "코스피 지수는 {idx}선 언저리에서 방향을 탐색하는 모습이다.",
    "국고채 3년물 금리는 연 {rate}% 안팎에서 움직이고 있다.",
    "회사채 신용스프레드가 최근 {bp}bp가량 확대되었다.",
    "주요 기관들은 올해 경제성장률 전망치를 {gdp}%로 낮춰 잡았다.",
    "변동성 지수가 {vix} 수준까지 올라 투자심리가 움츠러들었다.",
    "외국인 투자자는 {days}거래일 연속 순매도를 이어 갔다.",
    "소비자물가 상승률이 {cpi}%로 발표되자 금리 경로에 관심이 쏠렸다.",
    "미국 연방준비제도의 금리 인하가 예상보다 늦어질 수 있다는 관측이 힘을 얻고 있다.",
    "국제 유가가 배럴당 {oil}달러 선으로 반등하며 물가 우려가 다시 고개를 들었다.",
    "달러 강세가 이어지며 신흥국 통화 전반이 약세 압력을 받고 있다.",
    "증시 대기 자금인 투자자예탁금이 {deposit}조 원 수준으로 줄었다.",
    "장단기 금리차가 {bp}bp로 좁혀지면서 경기 둔화 우려가 제기되었다.",
    "상장지수펀드로 들어오는 자금이 {weeks}주째 이어지고 있다.",
    "신용거래융자 잔고가 {credit}조 원을 넘어서며 과도한 레버리지에 대한 경계감이 커졌다.",
    "주요 반도체 기업의 실적 발표를 계기로 업종 간 순환매가 나타나고 있다.",
    "엔화 약세가 길어지면서 수출 기업들의 환헤지 수요가 늘었다.",
    "금융당국은 시장 안정 조치를 연장할지 조만간 결정할 예정이다.",
)

TASKS: tuple[str, ...] = (  # 23
    "그는 다음 주 투자위원회 보고를 앞두고 관련 개념을 다시 정리하려 한다.",
    "팀 내부 교육에서 신입 직원에게 이 상황을 사례로 설명하기로 했다.",
    "고객 설명회에서 나올 질문에 대비해 핵심 쟁점을 점검하고 있다.",
    "감사 부서로부터 현재 판단의 근거를 문서로 내라는 요청을 받았다.",
    "상사는 결정을 내리기 전에 이론적 근거부터 분명히 하라고 지시했다.",
    "사내 자격 평가를 준비하면서 이 사례를 복습하고 있다.",
    "리스크 위원회는 이번 주 안에 검토 의견을 달라고 요청했다.",
    "외부 자문사와의 회의를 앞두고 쟁점을 미리 정리해 두려 한다.",
    "고객 민원에 답하려고 관련 제도와 원리를 확인하는 중이다.",
    "새로 도입할 내부 지침 초안에 이 내용을 반영해야 한다.",
    "동료와 의견이 갈려 어느 쪽 판단이 타당한지 따져 보기로 했다.",
    "월간 운용 보고서의 시장 해설 부분을 쓰고 있다.",
    "이사회 보고 자료에 들어갈 설명 문구를 다듬고 있다.",
    "투자자 교육 자료에 오류가 없는지 마지막으로 확인하고 있다.",
    "거래 전략을 바꾸기 전에 기본 원리를 점검해 보기로 했다.",
    "감독 당국의 현장 점검에 대비해 업무 처리 기준을 다시 읽고 있다.",
    "새로 온 고객의 질문에 답하면서 개념을 정확히 짚어 주려 한다.",
    "경쟁사 보고서의 주장이 맞는지 검증해 달라는 부탁을 받았다.",
    "과거의 비슷한 사례와 견주어 지금 상황을 해석하려 한다.",
    "시뮬레이션 결과를 해석하기 전에 전제 조건부터 확인하고 있다.",
    "연수 과정 과제로 이 사례의 분석 보고서를 제출해야 한다.",
    "언론 인터뷰에서 받을 질문을 예상해 답변을 준비하고 있다.",
    "내부 통제 점검표의 해당 항목을 채우려고 관련 내용을 살펴보고 있다.",
)

# Question frames; "positive" asks for the true statement, "negative" for the false one.
POSITIVE_FRAMES: tuple[str, ...] = (
    "이 상황에서 {subtopic_e} 관한 설명으로 가장 적절한 것은?",
    "{subtopic_eul} 검토하는 과정에서 나온 다음 설명 가운데 옳은 것은?",
    "다음 중 {topic} 측면에서 가장 타당한 설명은?",
    "{subtopic_wa} 관련하여 그가 참고할 만한 올바른 진술은 무엇인가?",
    "위 사례와 관련해 {topic}에 대한 이해로 가장 정확한 것은?",
    "{subtopic}의 관점에서 볼 때 옳은 설명은 무엇인가?",
)
NEGATIVE_FRAMES: tuple[str, ...] = (
    "이 상황에서 {subtopic_e} 관한 설명으로 옳지 않은 것은?",
    "{subtopic_eul} 검토하는 과정에서 나온 다음 설명 가운데 틀린 것은?",
    "다음 중 {topic} 측면에서 가장 거리가 먼 설명은?",
    "{subtopic_wa} 관련하여 그가 바로잡아야 할 잘못된 진술은 무엇인가?",
    "위 사례와 관련해 {topic}에 대한 이해로 적절하지 않은 것은?",
    "{subtopic}의 관점에서 볼 때 잘못된 설명은 무엇인가?",
)

# Rewrite: how the market context leads into the original question.
REWRITE_BRIDGES: tuple[str, ...] = (
    "이와 관련하여 다음 물음에 답하시오.",
    "그가 검토하고 있는 다음 문제에 답하시오.",
    "이 과정에서 다음과 같은 질문이 제기되었다.",
    "다음은 그 검토 과정에서 확인해야 할 내용이다.",
    "이 상황을 염두에 두고 다음 물음에 답하시오.",
)

# Rewrite: plausible wrong options when a source question has too few usable ones and no topic
# pool fits (statement-style options).
GENERIC_FALSE: tuple[str, ...] = (
    "시장 상황과 관계없이 항상 같은 결론이 나온다",
    "위험이 커질수록 기대수익률은 반드시 낮아진다",
    "거래 비용은 투자 성과에 아무런 영향을 주지 않는다",
    "가격 변동은 오직 발행 기관의 의사에 따라서만 결정된다",
    "투자 기간이 길수록 모든 위험이 완전히 사라진다",
    "정보가 공개되어도 시장 가격은 전혀 반응하지 않는다",
    "분산투자를 하면 손실 가능성이 0이 된다",
    "금리 변화는 자산 가격에 어떤 영향도 미치지 않는다",
)

# Suffixes that adapt a distractor whose verification figure would collide (1 in 9,000).
ADAPT_SUFFIXES: tuple[str, ...] = (
    " (일반적인 경우)",
    " (원칙적으로)",
    " (통상적인 시장 상황)",
    " (이론상)",
    " (다른 조건이 같다면)",
    " (시장 관행상)",
    " (단기적으로)",
    " (장기적으로)",
)
