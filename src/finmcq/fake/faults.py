"""Fault injection of the fake: which fault a request draws, and 200 replies broken on purpose.

A fault draw depends on the server seed, the canonical request body and how many times this
server has already seen that exact body, so a retry gets a fresh draw instead of failing forever.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from finmcq.fake.config import ENVELOPE_FAULTS, FakeConfig
from finmcq.fake.responses import json_reply


def draw_fault(config: FakeConfig, canonical: bytes, nth: int) -> str | None:
    """The fault for the ``nth`` (0-based) arrival of this body, or None; deterministic."""
    rates = config.fault_rates()
    if not any(rates.values()):
        return None
    digest = hashlib.sha256(f"fault|{config.seed}|{nth}|".encode() + canonical).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    bound = 0.0
    for kind, rate in rates.items():
        bound += rate
        if u < bound:
            return kind
    return None


_HTML_PAGE = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
              "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
              "</body>\r\n</html>\r\n")


def broken_reply(kind: str, completion: dict[str, Any], draw_bits: int,
                 headers: dict[str, str]) -> web.Response:
    """A status-200 reply whose body or envelope is broken in the way ``kind`` names."""
    if kind in ENVELOPE_FAULTS:
        message = completion["choices"][0]["message"]
        if kind == "no_choices":
            completion.pop("choices")
        elif kind == "empty_choices":
            completion["choices"] = []
        elif kind == "null_message":
            completion["choices"][0]["message"] = None
        elif kind == "content_filter":
            message["content"] = None
            completion["choices"][0]["finish_reason"] = "content_filter"
        else:  # refusal
            message["content"] = None
            message["refusal"] = "I'm sorry, but I can't assist with that request."
        return json_reply(completion, headers=headers)
    data = json.dumps(completion, ensure_ascii=False).encode("utf-8")
    content_type = "application/json"
    if kind == "cut_body":
        cut = len(data) * 2 // 3
        if draw_bits % 2:  # land inside a multi-byte character (Korean text is 3 bytes each)
            start = next((i for i in range(cut, len(data)) if data[i] >= 0xC0), None)
            cut = start + 1 if start is not None else cut
        data = data[:cut]
    elif kind == "not_json":
        data, content_type = b"Internal error: upstream model worker crashed", "text/plain"
    elif kind == "not_utf8":
        # A server or proxy that re-encodes Korean text as CP949 (EUC-KR).
        data = json.dumps(completion, ensure_ascii=False).encode("cp949", "replace")
        if data.isascii():  # nothing to mis-encode: one invalid byte instead
            data = data[:-1] + b"\xff}"
    elif kind == "empty_body":
        data = b""
    else:  # html_body
        data, content_type = _HTML_PAGE.encode(), "text/html"
    return web.Response(body=data, status=200, headers={**headers,
                                                        "Content-Type": content_type})
