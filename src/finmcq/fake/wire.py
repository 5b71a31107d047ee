"""What the fake LLM reads off the wire besides the prompt: the reply schema and its field order.

A model under strict ``json_schema`` decoding (OpenAI, vLLM, llama.cpp grammars) writes the fields
in the order the schema lists them; a model in JSON mode follows the schema printed in its prompt.
The fake does the same: :func:`in_schema_order` rewrites a reply's keys into the order of the
schema the request carried, so a client that scrambled its schema gets a scrambled reply back,
as it would from a real server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_DECODER = json.JSONDecoder()


def request_schema(body: Mapping[str, Any], system_text: str) -> dict[str, Any] | None:
    """The JSON schema a request asks its reply to follow, if it carries one.

    ``response_format.json_schema.schema`` when present; otherwise (JSON mode, or a schema in the
    prompt alone) the first JSON object in the system text that has ``properties``.
    """
    rf = body.get("response_format")
    if isinstance(rf, Mapping) and isinstance(rf.get("json_schema"), Mapping):
        schema = rf["json_schema"].get("schema")
        if isinstance(schema, dict):
            return schema
    start = system_text.find("{")
    while start >= 0:
        try:
            value, _end = _DECODER.raw_decode(system_text, start)
        except ValueError:
            value = None
        if isinstance(value, dict) and isinstance(value.get("properties"), dict):
            return value
        start = system_text.find("{", start + 1)
    return None


def in_schema_order(value: Any, schema: Mapping[str, Any] | None,
                    defs: Mapping[str, Any] | None = None) -> Any:
    """``value`` with every object's keys in the order ``schema`` lists them (extras last)."""
    if schema is None:
        return value
    defs = defs if defs is not None else schema.get("$defs") or schema.get("definitions") or {}
    schema = _resolve(schema, defs)
    if isinstance(value, dict):
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return value
        ordered = {k: in_schema_order(value[k], properties[k], defs)
                   for k in properties if k in value}
        ordered.update((k, v) for k, v in value.items() if k not in ordered)
        return ordered
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [in_schema_order(v, schema["items"], defs) for v in value]
    return value


def _resolve(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` (``#/$defs/Name``); an ``anyOf`` resolves to its object member."""
    for _ in range(8):  # refs to refs are rare; a cycle must not hang the fake
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target = defs.get(ref.rsplit("/", 1)[-1])
            if not isinstance(target, Mapping):
                return schema
            schema = target
            continue
        for key in ("anyOf", "oneOf"):
            members = schema.get(key)
            if isinstance(members, list):
                objects = [m for m in members if isinstance(m, Mapping)
                           and ("properties" in m or "$ref" in m)]
                if objects:
                    schema = objects[0]
                    break
        else:
            return schema
    return schema
