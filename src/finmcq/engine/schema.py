"""Turn a pydantic model into what a Chat Completions request needs for structured output."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pydantic import BaseModel

# Keywords OpenAI's strict mode rejects or ignores. Pydantic still enforces them on the reply,
# so dropping them from the wire schema loses no checking.
_UNSUPPORTED = {"minLength", "maxLength", "minItems", "maxItems", "pattern", "format", "default",
                "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "title"}


def _strictify(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _strictify(v) for k, v in node.items() if k not in _UNSUPPORTED}
        if out.get("type") == "object" and "properties" in out:
            out["additionalProperties"] = False
            out["required"] = list(out["properties"].keys())
        return out
    if isinstance(node, list):
        return [_strictify(v) for v in node]
    return node


@cache
def model_schema_json(model: type[BaseModel]) -> str:
    """The model's JSON schema as canonical text (cached: generating it is slow)."""
    return json.dumps(model.model_json_schema(), sort_keys=True, ensure_ascii=False)


@cache
def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the subset OpenAI's ``strict: true`` mode accepts."""
    strict: dict[str, Any] = _strictify(json.loads(model_schema_json(model)))
    return strict


@cache
def response_format_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The ``response_format`` value for ``model`` (shared: callers must not mutate it)."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": model.__name__,
            "strict": True,
            "schema": strict_json_schema(model),
        },
    }


@cache
def schema_instruction(model: type[BaseModel]) -> str:
    """Text appended to the system prompt in JSON-mode fallback, for servers without json_schema."""
    schema = model_schema_json(model)
    return (
        "\n\n반드시 아래 JSON 스키마를 따르는 JSON 객체 하나만 출력하세요. 다른 글은 쓰지 마세요.\n"
        f"스키마 이름: {model.__name__}\n{schema}"
    )
