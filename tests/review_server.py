"""Helpers for the review tests: a small built run, and the review app served on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from finmcq.build import run_build
from finmcq.config import BuildSettings
from finmcq.fake.server import FakeConfig, FakeLLMServer
from finmcq.review.app import build_app, listen

QUESTIONS = 40


def review_settings(out: Path, base_url: str, **kw: Any) -> BuildSettings:
    values: dict[str, Any] = {"source": "sample", "questions": QUESTIONS, "seed": 3, "out": out,
                              "model": "fake-finance-1", "base_url": base_url,
                              # A fixed reference month: every prompt states it, so without it
                              # the fake's replies (and these builds) change every month.
                              "as_of": "2026-06"}
    values.update(kw)
    return BuildSettings(**values)


def build_run(out: Path, **kw: Any) -> Path:
    """A finished 40-question build against a fresh fake LLM (the same replies every time)."""
    with FakeLLMServer(FakeConfig()) as fake:
        run_build(review_settings(out, fake.base_url, **kw), progress=False)
    return out


def copy_run(template: Path, dest: Path) -> Path:
    """A private copy of a built run, so a test's review actions stay its own."""
    shutil.copytree(template, dest, ignore=shutil.ignore_patterns(".finmcq.lock"))
    return dest


def items_of(run_dir: Path) -> list[dict[str, Any]]:
    path = max(run_dir.glob("items_*.jsonl"))
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def pairs_of(run_dir: Path) -> list[dict[str, str]]:
    data: list[dict[str, str]] = json.loads(
        max(run_dir.glob("final_training_data_*.json")).read_text("utf-8"))
    return data


def stats_of(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        max(run_dir.glob("processing_stats_*.json")).read_text("utf-8"))
    return data


@contextmanager
def serving(run_dir: Path, token: str | None = None) -> Iterator[str]:
    """The review app for ``run_dir`` under uvicorn on a free 127.0.0.1 port; yields its URL."""
    app = build_app(run_dir, token=token)
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the review server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        app.state.review.db.close()


def request(url: str, body: Any = None, *, content_type: str = "application/json",
            headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    """A plain HTTP request; returns status, text and headers (errors included)."""
    data = None if body is None else (body if isinstance(body, bytes)
                                      else json.dumps(body).encode())
    all_headers = {"Content-Type": content_type} if data is not None else {}
    all_headers.update(headers or {})
    req = urllib.request.Request(url, data=data, headers=all_headers,
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read().decode("utf-8"), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8"), dict(exc.headers)
