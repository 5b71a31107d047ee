"""What every stage shares: its prompt file, its reply schema, its counters.

A stage says *what* to ask (``payload``: the item as JSON for the prompt's ``<입력>`` block) and
*what to keep* (``keep``: deterministic checks on the validated reply). The engine does the rest.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from finmcq.asof import as_of_label
from finmcq.engine.client import LLMCallFailed, LLMEngine, LLMRequest

Reply = TypeVar("Reply", bound=BaseModel)
V = TypeVar("V")


@dataclass(frozen=True)
class PromptTemplate:
    """A versioned Korean prompt: a static system part and a user part with ``{input}``."""

    name: str
    version: str
    schema: str
    system: str
    user: str

    def messages(self, payload: dict[str, Any],
                 as_of: str | None = None) -> tuple[dict[str, str], ...]:
        """The chat messages for ``payload``; ``{as_of}`` in the prompt becomes the reference
        month in Korean (``2026년 11월``; this month when ``as_of`` is None)."""
        # Static instructions and few-shot examples first, the item last: this order lets
        # providers' automatic prompt caching reuse the shared prefix across items.
        # "<" and ">" are escaped (still valid JSON, same text once decoded) so that source
        # text can never close the data block and smuggle in instructions.
        data = _indented_json(payload)
        data = data.replace("<", "\\u003c").replace(">", "\\u003e")
        block = "<입력>\n" + data + "\n</입력>"
        label = as_of_label(as_of)
        return (
            {"role": "system", "content": self.system.replace("{as_of}", label)},
            {"role": "user", "content": self.user.replace("{as_of}", label)
             .replace("{input}", block)},
        )


_HEADER = re.compile(r"^---\n(?P<meta>.*?)\n---\n", re.S)


@cache
def load_prompt(name: str) -> PromptTemplate:
    """Read ``prompts/{name}.md``: front matter, then ``=== system ===`` / ``=== user ===``."""
    text = resources.files("finmcq.prompts").joinpath(f"{name}.md").read_text("utf-8")
    match = _HEADER.match(text)
    if not match:
        raise ValueError(f"prompt {name}.md has no front matter")
    meta = dict(
        line.split(":", 1) for line in match.group("meta").splitlines() if ":" in line
    )
    body = text[match.end():]
    system, _, user = body.partition("=== user ===")
    system = system.replace("=== system ===", "", 1).strip()
    return PromptTemplate(
        name=name,
        version=meta.get("version", "").strip(),
        schema=meta.get("schema", "").strip(),
        system=system,
        user=user.strip(),
    )


@dataclass
class StageStats:
    """In, out and drop reasons for one stage: in − dropped = out."""

    name: str
    seen: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)

    def keep(self) -> None:
        self.seen += 1
        self.kept += 1

    def drop(self, reason: str) -> None:
        self.seen += 1
        self.dropped[reason] += 1

    def count(self, verdict: V) -> V:
        """Count ``verdict`` as a drop (a :class:`Dropped`) or a keep; return it unchanged."""
        if isinstance(verdict, Dropped):
            self.drop(verdict.reason)
        else:
            self.keep()
        return verdict

    def as_dict(self) -> dict[str, Any]:
        return {
            "in": self.seen,
            "out": self.kept,
            "dropped": sum(self.dropped.values()),
            "drop_reasons": dict(sorted(self.dropped.items())),
            "retried": dict(sorted(self.retried.items())),
        }


@dataclass(frozen=True)
class Dropped:
    """A stage's verdict that an item does not go on, with the reason counted in the stats."""

    reason: str
    detail: str = ""


class LLMStage(Generic[Reply]):
    """Base for stages that ask the LLM one question per item."""

    name: ClassVar[str]
    prompt_name: ClassVar[str]
    reply_model: ClassVar[type[BaseModel]]

    def __init__(self, engine: LLMEngine, stats: StageStats | None = None, *,
                 as_of: str | None = None) -> None:
        """``as_of``: the reference month (YYYY-MM) the prompts state; None: this month."""
        self.engine = engine
        self.as_of = as_of
        self.prompt = load_prompt(self.prompt_name)
        self.stats = stats or StageStats(self.name)

    async def ask(self, payload: dict[str, Any], item_id: str, *,
                  seed: int | None = None, temperature: float | None = None) -> Reply | Dropped:
        """One validated reply for ``payload``, or ``Dropped('llm_failed')``."""
        request: LLMRequest[Any] = LLMRequest(
            stage=self.name,
            messages=self.prompt.messages(payload, self.as_of),
            schema=self.reply_model,
            item_id=item_id,
            seed=seed,
            temperature=temperature,
        )
        try:
            result = await self.engine.call(request)
        except LLMCallFailed as exc:
            return Dropped(f"llm_failed:{exc.cause}", str(exc))
        reply: Reply = result.value
        return reply


_SCALAR_JSON = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, not one per scalar
_STRING_JSON = json.encoder.encode_basestring  # what that encoder does with any str, in C


def _indented_json(value: Any, depth: int = 0) -> str:
    """``json.dumps(value, ensure_ascii=False, indent=1)``, the same text, faster.

    With ``indent`` the json module encodes in Python, token by token (~0.3 ms per prompt);
    here only the containers are walked in Python and every scalar is encoded in C (strings
    straight by the C string encoder: ``json.dumps`` would build a new encoder for each).
    """
    if isinstance(value, str):
        return _STRING_JSON(value)
    if isinstance(value, dict) and value:
        pad = "\n" + " " * (depth + 1)
        return "{" + ",".join(
            pad + _STRING_JSON(k if isinstance(k, str) else str(k))
            + ": " + _indented_json(v, depth + 1) for k, v in value.items()
        ) + "\n" + " " * depth + "}"
    if isinstance(value, list | tuple) and value:
        pad = "\n" + " " * (depth + 1)
        return "[" + ",".join(pad + _indented_json(v, depth + 1) for v in value) + (
            "\n" + " " * depth + "]")
    return _SCALAR_JSON(value)
