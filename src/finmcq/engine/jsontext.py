"""Find the JSON in a model's reply: plain, in a Markdown fence, or wrapped in a sentence.

Models asked for JSON through the prompt alone (servers that ignore ``response_format``, such as
Anthropic's OpenAI-compatible endpoint) often answer ``Here is the JSON: ```json {...} ``` `` or
put a sentence before the object. The object is still the answer; the reply model validates it
exactly as it would validate a bare one.
"""

from __future__ import annotations

import json
import re

_FENCE = re.compile(r"```[a-zA-Z]*[ \t]*\n(.*?)```", re.S)


def json_text(content: str) -> str:
    """The JSON text of ``content``; the stripped content itself when none can be found (the
    caller's ``json.loads`` then reports why it is not JSON)."""
    text = content.strip()
    if text.startswith(("{", "[")):
        return text
    fenced = _FENCE.search(text)
    if fenced:
        return fenced.group(1).strip()
    if text.startswith("```"):  # a fence that was never closed (e.g. a cut-off reply)
        return text.split("\n", 1)[1] if "\n" in text else ""
    start = text.find("{")
    if start < 0:
        return text
    try:
        _, end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        return text[start:]
    return text[start:end]
