"""Issue 12's CPU fast paths give exactly what the straightforward code gave."""

from __future__ import annotations

import json
import random
import re
import unicodedata
from typing import Any

from finmcq.estimate import TokenProfile, approx_tokens
from finmcq.quality import text
from finmcq.records import Topic
from finmcq.stages.base import _indented_json

SAMPLES = [
    "가격 우선 원칙\u200b 1,000원 1.5%  (주) 「시장」 \t\n",
    "ＡＢＣ　１２３ abc\x07def\ufeff",
    "금리가 오르면… 채권 가격은? ‘하락’한다 — 100,000,000 3.14 3 ~ 5% 1:2 1,2",
    "\u2028x\u00a0y\u3000z",
    "ᄀ\u1161ᆨ 조합형 NFD 한글, 🙂 <b>&amp;</b>",
    "",
]


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return rng.choice(SAMPLES) + rng.choice(['"', "\\", "\n", "<입력>", "\x01", "\u2028"])
    if kind == 1:
        return rng.choice([0, -3, 1.5, 1e21, None, True, False])
    if kind == 2:
        return rng.choice(["", "A", "선택지 B", Topic.OTHER])  # a StrEnum too
    if kind == 3:
        return []
    if kind == 4:
        return {}
    if kind == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(1, 4))]
    return {rng.choice(["task", "question", "options", "가", "b"]) + str(i):
            _random_value(rng, depth + 1) for i in range(rng.randrange(1, 4))}


def test_prompt_json_is_the_indent_1_text() -> None:
    rng = random.Random(12)
    for _ in range(500):
        value = _random_value(rng)
        assert _indented_json(value) == json.dumps(value, ensure_ascii=False, indent=1)


def _approx_tokens_loop(value: str, profile: Any) -> float:
    hangul = spaces = 0
    for ch in value:
        if "\uac00" <= ch <= "\ud7a3" or "\u3131" <= ch <= "\u318e":
            hangul += 1
        elif ch.isspace():
            spaces += 1
    other = len(value) - hangul - spaces
    return float(hangul * profile.hangul + spaces * profile.whitespace + other * profile.other)


def test_token_approximation_counts_as_the_loop_did() -> None:
    profile = TokenProfile(name="t", hangul=1.1, whitespace=0.3, other=0.27, per_message=4,
                           per_request=3)
    for sample in SAMPLES:
        assert approx_tokens(sample, profile) == _approx_tokens_loop(sample, profile)


_SOFT = frozenset(".,·・:;!?'\"“”‘’`()[]{}<>「」『』【】〈〉《》…~〜_*#|")
_DASHES = {"−": "-", "–": "-", "—": "-", "‐": "-", "‑": "-", "〜": "~"}
FOLD_SAMPLES = [*SAMPLES, "1 . 5%", "1.,2", "3 ~ 5%", "a.5 5.a", "1 ,000원", "1.5.3", "1 .. 2",
                "x\x01y\x00z\x03", "2.\u200b5", "１．５", "3〜5%", "−1.2 – 3", "12,345,6789"]


def _fold_loop(value: str) -> str:
    """Folding as the docs say it, one character at a time: a mark among ``.~:,`` stays when
    its nearest non-space neighbours are digits; whitespace, soft punctuation and control or
    format characters go; thousands separators go."""
    value = unicodedata.normalize("NFKC", value).casefold()
    value = "".join(_DASHES.get(ch, ch) for ch in value)
    value = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", value)

    def neighbour(i: int, step: int) -> str:
        while 0 <= i < len(value) and value[i].isspace():
            i += step
        return value[i] if 0 <= i < len(value) else ""

    def kept(i: int, ch: str) -> bool:
        if ch in ".~:," and neighbour(i - 1, -1).isdigit() and neighbour(i + 1, 1).isdigit():
            return True
        return not (ch.isspace() or ch in _SOFT or unicodedata.category(ch)[0] == "C")

    return "".join(ch for i, ch in enumerate(value) if kept(i, ch))


def test_folding_drops_the_same_characters_as_the_loop() -> None:
    for sample in FOLD_SAMPLES:
        text.fold_text.cache_clear()
        assert text.fold_text(sample) == _fold_loop(sample), sample
    assert text.fold_text("1 . 5%") == "1.5%" and text.fold_text("1,000원") == "1000원"
    assert text.fold_text("x\x01y") == "xy"  # a control character is dropped, never a mark


def test_shingle_hashes_are_one_per_distinct_shingle_and_stable() -> None:
    for sample in SAMPLES:
        hashes = text.shingle_hashes(sample)
        assert len(hashes) == len(text.shingles(sample))
        assert list(hashes) == sorted(set(hashes.tolist()))
        assert text.shingle_hashes(sample).tolist() == hashes.tolist()
    # the same shingle in two texts hashes alike; different texts share only shared shingles
    a, b = text.shingle_hashes("채권 가격 하락"), text.shingle_hashes("채권 가격 상승")
    shared = text.shingles("채권 가격 하락") & text.shingles("채권 가격 상승")
    assert len(set(a.tolist()) & set(b.tolist())) == len(shared)


def test_wire_body_and_audit_come_from_one_encoding() -> None:
    from finmcq.engine.client import _encode

    rng = random.Random(5)
    for _ in range(200):
        body: dict[str, Any] = {"model": "m", "messages": [
            {"role": "system", "content": rng.choice(SAMPLES)},
            {"role": "user", "content": json.dumps(_random_value(rng), ensure_ascii=False)}],
            "temperature": 0.7, "max_tokens": 100}
        if rng.random() < 0.8:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "Reply", "strict": True, "schema": {"type": "object", "x": "가\n"}}}
        wire, audit = _encode(body, "Reply")
        assert json.loads(wire.decode("utf-8")) == body
        expected = dict(body)
        if "response_format" in body:
            expected["response_format"] = {"type": "json_schema", "schema": "Reply"}
        assert json.loads(audit) == expected
