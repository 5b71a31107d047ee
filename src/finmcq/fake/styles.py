"""Exam item styles the fake LLM writes besides pooled statements: calculations and templates.

Real exam authors build distractors from the key. ``numeric`` items are calculations whose seven
options differ mainly in a number: the key, the classic wrong calculations (forgetting a step,
inverting a ratio, the wrong sign), then near misses. ``parallel`` items fill one sentence
template with swapped terms or opposite directions; every slot has one right filling, so exactly
one combination is true and the other seven are each wrong for a stated reason. Both look nearly
identical as strings, which is the point: finmcq's deterministic checks must keep them (only the
second-answer judge may decide that two options mean the same).

Rates, measured on ``../shared/calibration`` (85 exam-grade items, 7 options each): a numeric
pair in 26 % of items, a parallel pair in 31 %, negative stems 15 %; in a strong model's own
drafts (19) 16 %, 21 % and 5 %. The fake writes about 20 % numeric, 20 % parallel and a negative
stem in 12 % of generated items (see :data:`STYLE_WEIGHTS`).

Every calculation is computed, never typed in: the key is the right answer to the stem's figures.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product

from finmcq.records import Topic

# Shares of generated items by style; "statement" items are negative ("옳지 않은 것은?") in
# NEGATIVE_SHARE of cases. A calculation or template draft that cannot meet an asked-for key
# length rank becomes a statement draft (their options are close in length), so the drawn shares
# are higher than the delivered ones: about 17 % numeric, 17 % parallel and 12 % negative stems
# delivered when every request asks for a rank (see NOTES.md for measured figures).
STYLE_WEIGHTS: tuple[tuple[str, float], ...] = (("numeric", 0.4), ("parallel", 0.35),
                                                  ("statement", 0.25))
NEGATIVE_SHARE = 0.2


@dataclass(frozen=True)
class Drafted:
    """A calculation or template item: the stem's own part, the key and wrong options."""

    setting: str  # sentences with the figures (empty for parallel items)
    ask: str  # the question sentence
    key: str
    wrong: tuple[str, ...]  # at least six, the most plausible first


def pick_style(rng: random.Random) -> str:
    """``numeric``, ``parallel`` or ``statement``, by :data:`STYLE_WEIGHTS`."""
    roll = rng.random()
    for style, weight in STYLE_WEIGHTS:
        roll -= weight
        if roll < 0:
            return style
    return STYLE_WEIGHTS[-1][0]


def _won(value: float) -> str:
    return f"{round(value):,}"


def _distinct(key: str, candidates: Sequence[str], near: Callable[[int], str],
              need: int = 6) -> tuple[str, ...]:
    """``candidates`` without repeats or the key, topped up with ``near(1)``, ``near(2)``, ..."""
    out: list[str] = []
    for text in candidates:
        if text != key and text not in out:
            out.append(text)
    step = 1
    while len(out) < need and step < 40:
        text = near(step)
        if text != key and text not in out:
            out.append(text)
        step += 1
    return tuple(out)


# --------------------------------------------------------------------------------------------
# numeric: one calculation per topic family, figures drawn per item
# --------------------------------------------------------------------------------------------


def _margin_call(rng: random.Random) -> Drafted:
    contracts = rng.choice((1, 2, 3))
    initial = rng.choice((900, 1000, 1200, 1350, 1500))  # 만원 per contract
    maintenance = initial * 2 // 3 // 50 * 50
    entry = rng.randrange(320, 390, 5)
    long = rng.random() < 0.5
    needs_call = rng.random() < 0.8
    if needs_call:
        move = -(-(initial - maintenance) // 25) + rng.randint(1, 10)
    else:
        move = rng.randint(2, (initial - maintenance) // 25 - 1)
    settle = entry - move if long else entry + move
    loss = contracts * 25 * move
    balance = contracts * initial - loss
    side = "매수" if long else "매도"
    setting = (f"코스피200 선물 {contracts}계약을 {entry:.2f}포인트에 {side}하면서 계약당 "
               f"위탁증거금 {_won(initial)}만원을 예탁했다. 계약당 유지증거금은 "
               f"{_won(maintenance)}만원이고 "
               f"거래승수는 25만원이며, 당일 정산가격은 {settle:.2f}포인트이다.")
    ask = "다른 거래와 비용이 없다고 할 때, 이 투자자의 증거금 상황으로 옳은 것은?"
    no_call = "예탁금이 유지증거금 이상이므로 추가로 낼 금액이 없다"

    def call(amount: float) -> str:
        return f"추가증거금 {_won(amount)}만원을 납부해야 한다"

    to_maintenance = contracts * maintenance - balance
    if needs_call:
        key = call(loss)
        wrong = [call(to_maintenance), no_call, call(loss / contracts),
                 call(contracts * (initial - maintenance)), call(balance),
                 call(2 * loss), f"이익 {_won(loss)}만원을 인출할 수 있다"]
    else:
        key = no_call
        wrong = [call(loss), call(contracts * (initial - maintenance)), call(loss / contracts),
                 call(contracts * maintenance), call(2 * loss),
                 f"이익 {_won(loss)}만원을 인출할 수 있다"]
    return Drafted(setting, ask, key, _distinct(key, wrong, lambda k: call(loss + 50 * k)))


def _duration(rng: random.Random) -> Drafted:
    modified = rng.choice((3.2, 4.5, 5.8, 6.4, 7.5))
    ytm = rng.choice((3.0, 4.0, 5.0))
    price = rng.choice((50, 80, 100, 120, 200))  # 억원
    shift = rng.choice((0.25, 0.4, 0.5, 0.75, 1.0))
    up = rng.random() < 0.6
    macaulay = modified * (1 + ytm / 100)
    change = modified * shift / 100 * price
    setting = (f"한 연기금이 시가 {price}억원어치 보유한 국고채의 수정듀레이션은 {modified}년"
               f"(맥컬리 듀레이션 {macaulay:.2f}년), 만기수익률은 연 {ytm:.1f}%이다.")
    ask = (f"만기수익률이 {shift:.2f}%p {'상승' if up else '하락'}할 때 듀레이션으로 근사한 "
           f"이 채권의 가격 변화로 가장 알맞은 것은?")
    right, other = ("하락", "상승") if up else ("상승", "하락")
    short = rng.random() < 0.5

    def says(amount: float, direction: str) -> str:
        return (f"약 {amount:.2f}억원 {direction}" if short
                else f"가격이 약 {amount:.2f}억원 {direction}한다")

    key = says(change, right)
    wrong = [says(change, other), says(macaulay * shift / 100 * price, right),
             says(change / 2, right),
             "국고채는 신용위험이 없으므로 금리가 변해도 가격은 거의 변하지 않는다",
             says(change * 2, right), says(macaulay * shift / 100 * price, other),
             says(change * 10, right)]
    return Drafted(setting, ask, key,
                   _distinct(key, wrong, lambda k: says(change * (1 + 0.15 * k), right)))


def _var_scaling(rng: random.Random) -> Drafted:
    daily = rng.choice((4.0, 6.5, 8.0, 12.0, 15.5))  # 억원
    days = rng.choice((4, 9, 10, 16, 25))
    setting = (f"한 증권사 트레이딩 부서의 1일 보유기간 99% VaR는 {daily:.1f}억원이다. "
               f"일별 수익률은 서로 독립이고 같은 정규분포를 따른다고 가정한다.")
    ask = f"보유기간을 {days}영업일로 늘렸을 때의 99% VaR로 가장 가까운 것은?"
    key_value = daily * math.sqrt(days)

    def says(amount: float) -> str:
        return f"약 {amount:.1f}억원"

    key = says(key_value)
    wrong = [says(daily * days), "보유기간과 관계없이 1일 VaR와 같은 금액이다",
             says(daily / math.sqrt(days)),
             says(daily * days / 2), says(key_value * 2.33 / 1.65),
             says(daily * math.sqrt(days / 2))]
    return Drafted(setting, ask, key, _distinct(key, wrong, lambda k: says(key_value + 1.5 * k)))


def _capm(rng: random.Random) -> Drafted:
    free = rng.choice((2.5, 3.0, 3.5))
    market = rng.choice((7.0, 8.0, 9.0, 10.0))
    beta = rng.choice((0.8, 1.2, 1.4, 1.5))
    setting = (f"무위험수익률은 연 {free:.1f}%, 시장포트폴리오의 기대수익률은 연 "
               f"{market:.1f}%이다. 한 자산운용사가 편입을 검토하는 주식의 베타는 {beta:.1f}이다.")
    ask = "CAPM에 따른 이 주식의 요구수익률은?"
    key_value = free + beta * (market - free)

    def says(value: float) -> str:
        return f"연 {value:.2f}%"

    key = says(key_value)
    wrong = [says(beta * market), says(free + beta * market), says(beta * (market - free)),
             f"베타와 관계없이 시장포트폴리오의 기대수익률인 연 {market:.2f}%와 같다",
             says(free + (market - free) / beta), says(market + beta * free)]
    return Drafted(setting, ask, key, _distinct(key, wrong, lambda k: says(key_value + 0.35 * k)))


def _forward_rate(rng: random.Random) -> Drafted:
    spot = rng.randrange(1250, 1460, 10)
    domestic = rng.choice((2.5, 2.75, 3.0, 3.5))
    foreign = rng.choice((4.0, 4.5, 5.0, 5.25))
    months = rng.choice((3, 6, 12))
    t = months / 12
    forward = spot * (1 + domestic / 100 * t) / (1 + foreign / 100 * t)
    horizon = "1년" if months == 12 else f"{months}개월"
    setting = (f"원/달러 현물환율은 {spot:,}원, 원화 금리는 연 {domestic}%, 달러 금리는 연 "
               f"{foreign}%이다(단리, 거래비용 없음).")
    ask = f"무위험 이자율평형이 성립할 때 {horizon} 만기 원/달러 선물환율에 가장 가까운 것은?"

    def says(value: float) -> str:
        return f"약 {value:,.1f}원"

    key = says(forward)
    inverted = spot * (1 + foreign / 100 * t) / (1 + domestic / 100 * t)
    wrong = [says(inverted), f"두 나라 금리와 관계없이 현물환율과 같은 {spot:,}원이다",
             says(spot * (1 + domestic / 100) / (1 + foreign / 100)),
             says(spot * (1 + foreign / 100) / (1 + domestic / 100)),
             says(spot * (1 + domestic / 100 * t)), says(spot / (1 + foreign / 100 * t))]
    gap = max(abs(spot - forward), 4.0)
    return Drafted(setting, ask, key, _distinct(key, wrong, lambda k: says(forward - gap * k)))


def _split(rng: random.Random) -> Drafted:
    ratio = rng.choice((2, 5, 10))
    price = rng.choice((84000, 126000, 252000, 410000, 95000))
    shares = rng.choice((120, 360, 800, 1500))  # 만 주
    setting = (f"한 유가증권시장 상장법인이 1주를 {ratio}주로 나누는 액면분할을 했다. 분할 전 "
               f"마지막 거래일 종가는 {price:,}원, 발행주식 수는 {shares:,}만 주였다.")
    ask = "분할 후 첫 거래일의 기준가격과 발행주식 수로 옳은 것은? (다른 자본 변동은 없다)"

    def says(p: float, n: float) -> str:
        return f"기준가격 {_won(p)}원, 발행주식 수 {_won(n)}만 주"

    key = says(price / ratio, shares * ratio)
    wrong = [says(price, shares * ratio), says(price / ratio, shares),
             says(price * ratio, shares / ratio),
             f"액면분할은 기업가치와 무관하므로 기준가격 {price:,}원과 주식 수가 그대로 유지된다",
             says(price * ratio, shares * ratio), says(price / ratio, shares / ratio)]

    def near(k: int) -> str:
        return says(price / ratio * (1 + 0.1 * k), shares * ratio)

    return Drafted(setting, ask, key, _distinct(key, wrong, near))


def _etf_gap(rng: random.Random) -> Drafted:
    nav = rng.choice((10250, 24800, 31500, 48200))
    gap_pct = rng.choice((-1.6, -0.8, 0.6, 1.2, 2.4))
    market = round(nav * (1 + gap_pct / 100) / 5) * 5
    gap = (market - nav) / nav * 100
    setting = (f"한 국내 주식형 ETF의 장 마감 시점 주당 순자산가치(NAV)는 {nav:,}원, 시장가격은 "
               f"{market:,}원이었다.")
    ask = "이 ETF의 괴리율과 그 의미로 옳은 것은?"

    def says(value: float, premium: bool) -> str:
        where = "높게" if premium else "낮게"
        return f"괴리율은 약 {abs(value):.2f}%로, 시장가격이 NAV보다 {where} 거래되었다"

    key = says(gap, gap > 0)
    wrong = [says(gap, gap < 0), says(gap * 10, gap > 0),
             "ETF는 NAV로만 거래되므로 괴리율은 0%이다", says(gap / 10, gap > 0),
             says(gap * 10, gap < 0), says(gap * 2, gap > 0), says(gap / 2, gap > 0)]
    return Drafted(setting, ask, key,
                   _distinct(key, wrong, lambda k: says(gap * (1 + 0.3 * k), gap > 0)))


def _short_swing(rng: random.Random) -> Drafted:
    shares = rng.choice((2000, 3000, 5000, 8000))
    bought = rng.choice((18000, 24500, 31000, 42000))
    sold = bought + rng.choice((2500, 4000, 6500, 9000))
    months = rng.choice((2, 3, 4, 5))
    setting = (f"상장법인 C사의 임원이 자사 주식 {shares:,}주를 주당 {bought:,}원에 사들이고 "
               f"{months}개월 뒤 주당 {sold:,}원에 모두 팔았다. 그 밖의 매매는 없다.")
    ask = "자본시장법상 단기매매차익 반환과 관련하여 옳은 것은?"

    def give(amount: float) -> str:
        return f"C사에 {_won(amount / 10000)}만원을 반환해야 한다"

    profit = shares * (sold - bought)
    key = give(profit)
    wrong = [give(shares * sold), give(profit / 2), give(shares * bought),
             "매수 후 6개월 안에 판 것이므로 반환 의무가 없다",
             "임원은 대상이 아니므로 반환 의무가 없다", give(profit * 2)]
    return Drafted(setting, ask, key, _distinct(key, wrong, lambda k: give(profit + 1000000 * k)))


NUMERIC: dict[Topic, tuple[Callable[[random.Random], Drafted], ...]] = {
    Topic.DERIVATIVES: (_margin_call,),
    Topic.BONDS: (_duration,),
    Topic.RISK: (_var_scaling,),
    Topic.STRATEGY: (_capm,),
    Topic.FX: (_forward_rate,),
    Topic.STOCK_MARKET: (_split,),
    Topic.PRODUCT_ANALYSIS: (_etf_gap,),
    Topic.REGULATION: (_short_swing,),
}


def numeric_item(topic: Topic, rng: random.Random) -> Drafted:
    """A calculation item for ``topic``: the key computed from the stem's figures."""
    return rng.choice(NUMERIC.get(topic, (_capm,)))(rng)


# --------------------------------------------------------------------------------------------
# parallel: one template, every slot with one right and one or more wrong fillings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    ask: str
    text: str  # with {0}, {1}, ... for the slots
    slots: tuple[tuple[str, ...], ...]  # each slot: the right filling first, then wrong ones
    others: tuple[str, ...] = ()  # wrong statements outside the template (shorter or longer)


PARALLEL: dict[Topic, tuple[Template, ...]] = {
    Topic.BONDS: (
        Template("다른 조건이 같을 때 고정금리 채권의 가격 변동에 관한 설명으로 옳은 것은?",
                 "금리가 오르면 채권 가격은 {0}, 만기가 길수록 가격 변동 폭이 {1}, 표면이자율이 "
                 "낮을수록 변동 폭이 {2}",
                 (("내리고", "오르고"), ("커지며", "작아지며"), ("커진다", "작아진다")),
                 ("채권 가격은 금리와 무관하게 만기까지 액면가로 유지된다",
                  "표면이자율과 만기는 가격 변동 폭에 영향을 주지 않는다")),
    ),
    Topic.FX: (
        Template("원화 금리가 달러 금리보다 높은 상황에 관한 설명으로 옳은 것은?",
                 "원/달러 선물환율은 현물환율보다 {0}, 그 차이는 선물환 {1}이며, 달러를 받을 "
                 "수출기업은 선물환을 {2}해 환위험을 줄인다",
                 (("높고", "낮고"), ("프리미엄", "디스카운트"), ("매도", "매수")),
                 ("금리 차이는 선물환율에 반영되지 않는다",
                  "수출기업은 환율 변동과 관계없이 헤지할 필요가 없다")),
    ),
    Topic.DERIVATIVES: (
        Template("다른 조건이 같을 때 옵션 포지션에 관한 설명으로 옳은 것은?",
                 "콜옵션 매수자는 기초자산 가격이 {0} 이익을 보고, 최대 손실은 {1}, 변동성이 "
                 "커지면 옵션 가격은 {2}",
                 (("오를수록", "내릴수록"), ("지급한 프리미엄으로 한정되며", "한정되지 않으며"),
                  ("오른다", "내린다")),
                 ("옵션 가격은 변동성과 무관하다",
                  "콜옵션 매수자는 만기 전에 권리를 포기할 수 없고 손실에 한도가 없다")),
    ),
    Topic.RISK: (
        Template("VaR와 분산투자에 관한 설명으로 옳은 것은?",
                 "보유기간이 길어지면 VaR는 {0}, 신뢰수준을 높이면 VaR는 {1}, 분산투자로 줄일 수 "
                 "있는 것은 {2} 위험이다",
                 (("커지고", "작아지고"), ("커지며", "작아지며"), ("비체계적", "체계적")),
                 ("VaR는 보유기간과 신뢰수준에 영향을 받지 않는다",
                  "분산투자를 하면 모든 위험이 사라진다")),
    ),
    Topic.STRATEGY: (
        Template("위험조정 성과지표에 관한 설명으로 옳은 것은?",
                 "샤프지수는 {0} 한 단위당 초과수익을, 트레이너지수는 {1} 한 단위당 초과수익을 "
                 "나타내며, 잘 분산된 포트폴리오에서는 두 지표의 순위가 {2}",
                 (("총위험", "체계적 위험", "비체계적 위험"), ("체계적 위험", "총위험"),
                  ("비슷해진다", "정반대가 된다")),
                 ("두 지표 모두 위험을 고려하지 않는 단순 수익률이다",
                  "샤프지수가 높을수록 위험 대비 성과가 나쁘다")),
    ),
    Topic.PRODUCT_ANALYSIS: (
        Template("상장지수상품과 파생결합증권의 특징으로 옳은 것은?",
                 "ETF는 {0} 거래되고, ETN은 발행 증권사의 신용위험에 {1}, ELS는 기초자산 "
                 "가격에 따라 원금 손실이 {2}",
                 (("거래소에서 장중에", "하루 한 번 기준가격으로만"),
                  ("노출되며", "노출되지 않으며"), ("날 수 있다", "나지 않는다")),
                 ("ETF와 ETN은 모두 예금자보호 대상이다",
                  "ELS는 만기 전 중도상환이 어떤 경우에도 불가능하다")),
    ),
    Topic.REGULATION: (
        Template("금융투자상품 판매 규제에 관한 설명으로 옳은 것은?",
                 "판매업자가 투자를 권유할 때는 {0} 원칙이, 권유 없이 소비자가 파생상품 등을 "
                 "청약할 때는 {1} 원칙이 적용되며, 설명의무는 {2}",
                 (("적합성", "적정성"), ("적정성", "적합성"),
                  ("일반금융소비자를 상대로 한 판매에 적용된다",
                   "전문금융소비자를 상대로 한 판매에만 적용된다")),
                 ("적합성 원칙과 적정성 원칙은 대출성 상품에만 적용된다",
                  "설명의무는 소비자가 원하지 않으면 언제나 생략할 수 있다")),
    ),
    Topic.STOCK_MARKET: (
        Template("국내 주식시장의 매매제도에 관한 설명으로 옳은 것은?",
                 "정규시장의 시가와 종가는 {0} 매매로 정해지고, 서킷브레이커가 발동되면 "
                 "{1}의 매매가 멈추며, 무차입 공매도는 {2}",
                 (("단일가", "접속"), ("시장 전체", "해당 종목만"), ("금지된다", "허용된다")),
                 ("국내 주식시장에는 가격제한폭이 없다",
                  "시가와 종가는 거래소가 임의로 정해 공표한다")),
    ),
}


def parallel_item(topic: Topic, rng: random.Random) -> Drafted:
    """A template item: the all-right filling is the key, six other fillings the distractors."""
    template = rng.choice(PARALLEL.get(topic, PARALLEL[Topic.STRATEGY]))
    combos = list(product(*(range(len(slot)) for slot in template.slots)))
    texts = [template.text.format(*(slot[i] for slot, i in zip(template.slots, combo,
                                                                  strict=True)))
             for combo in combos]
    key, wrong = texts[0], texts[1:]  # combo (0, 0, ...) is every slot's right filling
    rng.shuffle(wrong)
    # Like exam authors, mix in one or two wrong statements outside the template now and then.
    extra = [o for o in template.others if rng.random() < 0.5]
    wrong = wrong[:6 - len(extra)] + extra + wrong[6 - len(extra):]
    return Drafted("", template.ask, key, tuple(wrong))
