"""OpenAI-shaped HTTP responses of the fake: error objects, JSON bodies, the API-key check."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from finmcq.fake.config import FakeConfig


def openai_error(status: int, message: str, type_: str, code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None) -> web.Response:
    """An error response in OpenAI's shape."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, ensure_ascii=False).encode("utf-8"),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def authorized(request: web.Request, config: FakeConfig) -> web.Response | None:
    """None when the request may proceed, else the 401 to send."""
    if config.api_key is None:
        return None
    header = request.headers.get("Authorization", "")
    if header == f"Bearer {config.api_key}":
        return None
    given = header.removeprefix("Bearer ").strip()
    shown = (given[:3] + "*" * 4 + given[-4:]) if len(given) > 8 else "*" * len(given)
    return openai_error(401, f"Incorrect API key provided: {shown or '(none)'}.",
                        "invalid_request_error", "invalid_api_key")


def model_not_found(model: object) -> web.Response:
    return openai_error(404, f"The model `{model}` does not exist or you do not have access to it.",
                        "invalid_request_error", "model_not_found")
