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
        out = {k: (_strictify_fields(v) if k in ("properties", "$defs") else _strictify(v))
               for k, v in node.items() if k not in _UNSUPPORTED}
        if out.get("type") == "object" and "properties" in out:
            out["additionalProperties"] = False
            out["required"] = list(out["properties"].keys())
        return out
    if isinstance(node, list):
        return [_strictify(v) for v in node]
    return node


def _strictify_fields(fields: Any) -> Any:
    """A ``properties`` or ``$defs`` map: its keys are names (a field may be called "title"),
    kept as they are and in their order; only the values are schemas."""
    if not isinstance(fields, dict):
        return _strictify(fields)
    return {name: _strictify(schema) for name, schema in fields.items()}


@cache
def model_schema_json(model: type[BaseModel]) -> str:
    """The model's JSON schema as text, fields in their declared order (cached: slow to build).

    Never sort the keys: under strict ``json_schema`` decoding (OpenAI, vLLM, llama.cpp grammars) a
    model writes the fields in the order the schema lists them, and the reply models declare their
    reasoning before the verdict it supports. The same text feeds the cache key, so a change of
    order is a change of request.
    """
    return json.dumps(model.model_json_schema(), ensure_ascii=False)


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
