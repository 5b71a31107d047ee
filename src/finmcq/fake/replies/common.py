"""What every reply writer of the fake shares.

The verification figure (:func:`option_code`, :func:`stem_figures`), the per-request
:class:`ReplyContext`, reading the request's ``<입력>`` item, Korean particles and short quotes.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from finmcq.records import Difficulty, Topic, normalize_text

Reply = dict[str, Any]

_FIGURE = re.compile(r"(?<![0-9])[0-9]{4}(?![0-9])")
_INPUT_BLOCK = re.compile(r"<입력>\s*(.*?)\s*</입력>", re.DOTALL)

# Options that only make sense next to other options or in a fixed position. Source questions
# are full of them ("모두 옳다", "ㄱ, ㄴ"); after reshuffling into 7 options they are meaningless.
_POSITIONAL = re.compile(
    r"모두\s*(옳|맞|틀|정답|해당|포함|고르)"
    r"|(위|상기|앞|다음)의?\s*(보기|선택지|내용|항목)"
    r"|보기\s*중|이상\s*모두|둘\s*다"
    r"|(정답|해당|답)\s*(이|은)?\s*없"
    r"|[①-⑳㉠-㉭]"
    r"|(^|[\s(])[ㄱ-ㅎ]\s*[,·과와및.)]"
    r"|^\s*[ㄱ-ㅎ]\s*$"
    r"|(^|\s)[가나다라마]\s*[,·]\s*[가나다라마](\s|$|,)"
    r"|(^|\s)[A-G]\s*(와|과|및|,|·)\s*[A-G](\s|$|만|는|이|가)"
    r"|\b(all|none) of the above\b",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------------------------
# The verification figure
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=16384)  # pool texts recur in every reply; hashing them once is enough
def option_code(text: str) -> int:
    """The 4-digit figure (1000–9999) that marks ``text`` as the correct option in a stem."""
    digest = hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()
    return int(digest, 16) % 9000 + 1000


def stem_figures(stem: str) -> set[int]:
    """Every stand-alone run of exactly four ASCII digits in ``stem``, as integers."""
    return {int(m) for m in _FIGURE.findall(stem)}


# --------------------------------------------------------------------------------------------
# Context and small helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyContext:
    """What a builder may depend on besides the item: nothing that changes between calls."""

    rng: random.Random  # seeded from sha256(canonical request + server seed)
    seed: int  # the server seed
    digest: str  # hex sha256 the rng was seeded from
    schema_name: str | None = None  # reply model the request asked for, when it said
    last_user: str = ""  # text of the last user message
    salt: str = ""  # the request's sampling settings (model, seed, temperature)


def context_for(digest: str, seed: int, schema_name: str | None = None,
                last_user: str = "", salt: str = "") -> ReplyContext:
    """A :class:`ReplyContext` whose generator is seeded from ``digest`` (a hex sha256)."""
    return ReplyContext(random.Random(int(digest[:16], 16)), seed, digest, schema_name, last_user,
                        salt)


def semantic_context(ctx: ReplyContext, *parts: object) -> ReplyContext:
    """``ctx`` with a generator seeded from ``parts`` and the sampling settings only.

    Used where a reply must be reproducible from what it is about (a slot), not from the exact
    prompt text around it.
    """
    key = "|".join(map(str, (ctx.seed, ctx.salt, *parts)))
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return replace(ctx, rng=random.Random(int(digest[:16], 16)), digest=digest)


def _final_consonant(word: str) -> int:
    """Index of the final consonant (0 = none) of the last pronounced character of ``word``."""
    for ch in reversed(word):
        if "가" <= ch <= "힣":
            return (ord(ch) - 0xAC00) % 28
        if ch == "%":  # 퍼센트
            return 0
        if ch.isdigit():  # 영 일 이 삼 사 오 육 칠 팔 구
            return {"0": 21, "1": 8, "3": 16, "6": 1, "7": 8, "8": 8}.get(ch, 0)
        if ch.isascii() and ch.isalpha():  # English letters read the Korean way (엘, 엠, 엔, 알)
            return {"L": 8, "M": 16, "N": 4, "R": 8}.get(ch.upper(), 0)
    return 0


def particle(word: str, after_consonant: str, after_vowel: str) -> str:
    """The form of a Korean particle (은/는, 이/가, 을/를, 과/와, 으로/로) that fits ``word``."""
    final = _final_consonant(word)
    if after_consonant == "으로":
        return "로" if final in (0, 8) else "으로"  # ㄹ takes 로 like a vowel
    return after_consonant if final else after_vowel


def quote(text: str, limit: int = 26) -> str:
    text = normalize_text(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def distinct_quotes(texts: Sequence[str], limit: int = 26) -> list[str]:
    """A short quote of each text; texts whose short quotes collide (options from one template,
    or one number apart, share their start) are quoted in full, as a reviewer names what
    differs."""
    snips = [quote(t, limit) for t in texts]
    seen: dict[str, int] = {}
    for snip in snips:
        seen[snip] = seen.get(snip, 0) + 1
    return [normalize_text(t) if seen[snip] > 1 else snip
            for t, snip in zip(texts, snips, strict=True)]


def casefolded(text: str) -> str:
    return normalize_text(text).casefold()


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def as_options(value: Any, letters: Sequence[str]) -> dict[str, str]:
    """The options of an item as ``{letter: text}``; accepts a mapping or a list."""
    if isinstance(value, Mapping):
        return {k: as_text(value.get(k)) for k in letters if value.get(k) is not None}
    if isinstance(value, list):
        return {k: as_text(v) for k, v in zip(letters, value, strict=False)}
    return {}


def topic_of(value: Any) -> Topic | None:
    try:
        return Topic(as_text(value).strip())
    except ValueError:
        return None


def difficulty_of(value: Any) -> Difficulty | None:
    try:
        return Difficulty(as_text(value).strip().lower())
    except ValueError:
        return None


@lru_cache(maxsize=16384)
def is_positional(option: str) -> bool:
    """True for an option that leans on other options or on its position ("모두 옳다", "ㄱ, ㄴ")."""
    return bool(_POSITIONAL.search(normalize_text(option)))


def extract_item(text: str) -> dict[str, Any] | None:
    """The JSON object inside the last ``<입력>…</입력>`` block of ``text``, if it parses."""
    blocks = _INPUT_BLOCK.findall(text)
    if not blocks:
        return None
    try:
        item = json.loads(blocks[-1])
    except ValueError:
        return None
    return item if isinstance(item, dict) else None
