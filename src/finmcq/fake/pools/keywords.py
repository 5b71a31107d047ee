"""What marks a topic: relevance keywords and each topic's one-line focus.

The fake's relevance judge (:mod:`finmcq.fake.replies.relevance`) scores a question by these
keywords; the solve writer opens its analysis with the topic's focus.
"""

from __future__ import annotations

from finmcq.records import Topic

# --------------------------------------------------------------------------------------------
# Relevance keywords. Strong ones are unambiguous market vocabulary (weight 2); weak ones also
# occur in accounting, insurance or general economics questions (weight 1).
# --------------------------------------------------------------------------------------------

KEYWORDS: dict[Topic, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # topic: (strong, weak)
    Topic.STOCK_MARKET: (
        ("주식", "주가", "상장", "공매도", "한국거래소", "증권거래소", "유가증권시장", "코스피",
         "코스닥", "호가", "매매체결", "서킷브레이커", "기업공개", "유상증자", "시가총액"),
        ("증권", "거래소", "주주"),
    ),
    Topic.DERIVATIVES: (
        ("옵션", "선물", "스왑", "파생", "행사가격", "증거금", "베이시스", "델타", "감마",
         "선도계약", "워런트"),
        ("프리미엄", "헤지"),
    ),
    Topic.PRODUCT_ANALYSIS: (
        ("펀드", "ETF", "ELS", "ELW", "수익증권", "집합투자", "리츠", "신탁", "배당",
         "랩어카운트", "금융상품", "MMF"),
        ("예금", "보험", "상품"),
    ),
    Topic.RISK: (
        ("리스크", "VaR", "변동성", "표준편차", "베타", "신용위험", "시장위험", "스트레스 테스트",
         "기대손실", "부도확률"),
        ("위험", "손실", "유동성"),
    ),
    Topic.STRATEGY: (
        ("포트폴리오", "자산배분", "분산투자", "샤프", "CAPM", "효율적 투자", "리밸런싱", "알파",
         "모멘텀", "가치주", "성장주", "기대수익률"),
        ("투자", "수익률"),
    ),
    Topic.REGULATION: (
        ("자본시장법", "금융위원회", "금융감독원", "내부자거래", "불공정거래", "시세조종",
         "투자자 보호", "투자자보호", "적합성", "바젤", "자기자본비율", "금융투자업",
         "증권신고서"),
        ("공시", "규제", "감독"),
    ),
    Topic.BONDS: (
        ("채권", "금리", "듀레이션", "볼록성", "쿠폰", "국채", "회사채", "신용등급", "수익률곡선",
         "이자율", "할인채", "만기수익률"),
        ("만기", "신용", "이자"),
    ),
    Topic.FX: (
        ("환율", "외환", "환헤지", "선물환", "평가절하", "구매력평가", "이자율평형", "환리스크",
         "엔화", "원화", "달러"),
        ("통화", "수출", "수입"),
    ),
}

TOPIC_FOCUS: dict[Topic, str] = {
    Topic.STOCK_MARKET: "주식시장의 매매제도와 시장 운영 원리",
    Topic.DERIVATIVES: "파생상품의 손익 구조와 가격결정 원리",
    Topic.PRODUCT_ANALYSIS: "금융상품의 구조와 비용, 위험 특성",
    Topic.RISK: "위험의 측정과 관리 방법",
    Topic.STRATEGY: "위험과 수익의 균형을 고려한 투자 의사결정",
    Topic.REGULATION: "자본시장 규제와 투자자 보호 원칙",
    Topic.BONDS: "채권 가격과 금리의 관계",
    Topic.FX: "환율의 결정 요인과 환위험 관리",
    Topic.OTHER: "금융 시장의 기본 개념",
}
