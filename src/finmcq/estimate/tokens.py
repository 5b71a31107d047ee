"""Token counts without a tokenizer: a weight per Hangul, whitespace and other character.

:class:`TokenProfile` holds one tokenizer family's weights (fitted against its real tokenizer,
see ``data/estimate.toml``); :func:`approx_tokens` counts a text, :func:`messages_tokens` a chat
request. No tokenizer download, no network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class TokenProfile:
    """Tokens per character class; see ``data/estimate.toml`` for how they were fitted."""

    name: str
    hangul: float
    whitespace: float
    other: float
    per_message: int
    per_request: int
    models: tuple[str, ...] = ()


_HANGUL = re.compile("[\uac00-\ud7a3\u3131-\u318e]+")
_SPACE = re.compile(r"\s+")


@lru_cache(maxsize=1024)  # a stage's static system prompt is counted once, not per call
def approx_tokens(text: str, profile: TokenProfile) -> float:
    """Approximate tokens of ``text``: a weight per Hangul, whitespace and other character.

    Korean is mostly one syllable block per character and BPE vocabularies hold many whole
    syllables, so a per-character rate is close; ASCII and punctuation merge into longer tokens.
    """
    # Counted by what regex substitution removes (in C; a Python loop cost ~1 s per build).
    hangul = len(text) - len(_HANGUL.sub("", text))
    spaces = len(text) - len(_SPACE.sub("", text))  # \s is str.isspace
    other = len(text) - hangul - spaces
    return hangul * profile.hangul + spaces * profile.whitespace + other * profile.other


def messages_tokens(messages: Sequence[Mapping[str, str]], profile: TokenProfile) -> float:
    """Approximate prompt tokens of a chat request (contents plus per-message overhead)."""
    return profile.per_request + sum(
        approx_tokens(m.get("content", ""), profile) + profile.per_message for m in messages)
