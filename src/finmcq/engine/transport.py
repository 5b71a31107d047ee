"""The HTTP transport of the engine: one aiohttp session, one POST per chat completion.

Why not the ``openai`` SDK here: its request/response machinery cost about half of finmcq's
client CPU per call (issue 12, measured), and parsing the reply inside the SDK put broken bodies
(cut off, not UTF-8, not JSON) outside any error handling. This module does only what the SDK
did for a chat completion, and hands the engine raw bytes so the engine decides what a broken
reply is:

* the base URL: ``--base-url``, else ``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``;
* auth: ``Authorization: Bearer KEY`` (OpenAI, Azure's v1 endpoint, vLLM, Ollama, llama.cpp)
  plus ``api-key: KEY`` for ``*.azure.com`` hosts; ``OpenAI-Organization`` / ``OpenAI-Project``
  from ``OPENAI_ORG_ID`` / ``OPENAI_PROJECT_ID`` as the SDK sends them;
* proxies from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``, as httpx does (read once: aiohttp's
  ``trust_env`` would look up ``~/.netrc`` in a thread on every request);
* errors as three types: :class:`HTTPStatusError` (any status >= 400, with headers and the
  OpenAI-shaped message), :class:`TransportTimeout` and :class:`TransportError` (connection
  refused/reset, a body cut by the connection closing).

The Batch API (the package ``engine/batch/``) and ``finmcq doctor`` still use the SDK.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import aiohttp

from finmcq import __version__

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class TransportTimeout(Exception):
    """No complete reply within the timeout."""


class TransportError(Exception):
    """The connection failed or broke before a complete reply arrived."""


class HTTPStatusError(Exception):
    """The server answered with an HTTP error status (>= 400)."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.message = error_message(body) or f"HTTP {status}"
        super().__init__(f"HTTP {status}: {self.message}")

    @property
    def json(self) -> Any:
        """The body parsed as JSON (OpenAI's ``{"error": {...}}``), or None."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError:
            return None

    def retry_after_s(self) -> float | None:
        """Seconds the server asked us to wait (``retry-after-ms`` or ``retry-after``)."""
        return retry_after_s(self.headers)


def error_message(body: bytes) -> str:
    """The ``error.message`` of an OpenAI-shaped error body, else a short text of the body."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str) and err:
            return err
        if isinstance(data.get("detail"), str):  # FastAPI-style servers (vLLM)
            return str(data["detail"])
    return " ".join(text.split())[:300]


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    sec = headers.get("retry-after")
    if sec:
        try:
            return max(0.0, float(sec))
        except ValueError:
            pass
        try:  # the HTTP-date form ("Wed, 21 Oct 2015 07:28:00 GMT")
            when = email.utils.parsedate_to_datetime(sec)
        except (TypeError, ValueError, IndexError):
            return None  # unreadable: the caller's own backoff applies
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


@dataclass(frozen=True)
class HTTPReply:
    """A 2xx reply: status, headers and the raw body (decoded by the engine)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def resolve_base_url(base_url: str | None) -> str:
    return (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (None when NO_PROXY exempts it)."""
    parsed = urlparse(url)
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(parsed.hostname or ""):
        return None
    return proxies.get(parsed.scheme) or proxies.get("all")


def auth_headers(base_url: str, api_key: str) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": f"finmcq/{__version__}",
    }
    host = urlparse(base_url).hostname or ""
    if host.endswith(".azure.com"):
        headers["api-key"] = api_key
    for env, header in (("OPENAI_ORG_ID", "OpenAI-Organization"),
                        ("OPENAI_PROJECT_ID", "OpenAI-Project")):
        value = os.environ.get(env, "").strip()
        if value:
            headers[header] = value
    return headers


class ChatTransport:
    """POSTs pre-encoded JSON to ``{base_url}/chat/completions`` over one aiohttp session.

    The session is created on first use, inside the running event loop.
    """

    def __init__(self, base_url: str | None, api_key: str, timeout_s: float,
                 max_connections: int) -> None:
        self.base_url = resolve_base_url(base_url)
        self.url = f"{self.base_url}/chat/completions"
        self._headers = auth_headers(self.base_url, api_key)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_connections = max_connections
        self._proxy = proxy_for(self.url)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise TransportError("the engine was closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers=self._headers,
                auto_decompress=True)
        return self._session

    async def post(self, body: bytes, extra_headers: Mapping[str, str] | None = None
                   ) -> HTTPReply:
        """One POST. Raises HTTPStatusError, TransportTimeout or TransportError."""
        session = self._open()
        try:
            async with session.post(self.url, data=body, headers=extra_headers,
                                    proxy=self._proxy) as response:
                raw = await response.read()
                status = response.status
                headers: Mapping[str, str] = response.headers
        except (TimeoutError, asyncio.TimeoutError) as exc:  # noqa: UP041 (aiohttp raises either)
            raise TransportTimeout(f"no reply within {self._timeout.total:g} s") from exc
        except aiohttp.ClientPayloadError as exc:
            raise TransportError(f"the reply body was cut off by the connection: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        if status >= 400:
            raise HTTPStatusError(status, headers, raw)
        return HTTPReply(status, headers, raw)

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None and not self._session.closed:
            await self._session.close()


def decode_json_body(body: bytes, content_type: str | None = None) -> Any:
    """A 2xx body as JSON; :class:`BrokenBody` says why it cannot be (cause, detail)."""
    if not body.strip():
        raise BrokenBody("empty_body", "the reply body was empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = exc.start >= len(body) - 3 and exc.reason == "unexpected end of data"
        if cut:
            raise BrokenBody("cut_body", f"the reply body ends inside a UTF-8 character "
                             f"(byte {exc.start} of {len(body)}): it was cut off") from None
        raise BrokenBody("not_utf8", f"the reply body is not UTF-8 (byte 0x{body[exc.start]:02x}"
                         f" at {exc.start})") from None
    stripped = text.lstrip()
    if stripped[:1] == "<" or (content_type or "").startswith("text/html"):
        title = stripped[:200].replace("\n", " ")
        raise BrokenBody("html_body", f"the server sent an HTML page instead of JSON: {title!r}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        body_text = text.strip()
        opened = body_text[:1] in "{["
        if opened and (body_text[-1:] not in "}]" or exc.pos >= len(body_text) - 6
                       or "Unterminated" in exc.msg):
            raise BrokenBody("cut_body", f"the reply body is cut off ({exc.msg} at "
                             f"{exc.pos} of {len(text)})") from None
        raise BrokenBody("not_json", f"the reply body is not JSON ({exc.msg} at {exc.pos}): "
                         f"{' '.join(text[:80].split())!r}") from None


class BrokenBody(Exception):
    """A 2xx body that is not a JSON document."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause
