"""Shared fixtures: the fake LLM over real HTTP on 127.0.0.1, and run directories."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from finmcq.fake.server import FakeConfig, FakeLLMServer
from finmcq.records import LETTERS

REPO = Path(__file__).resolve().parents[1]
SHARED_KMMLU = REPO.parent / "shared" / "kmmlu"


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    """A fresh fake LLM at 0 ms latency."""
    with FakeLLMServer(FakeConfig()) as server:
        yield server


@pytest.fixture
def make_fake() -> Iterator[object]:
    """Factory for fake LLMs with custom settings; all are closed after the test."""
    servers: list[FakeLLMServer] = []

    def factory(**kwargs: object) -> FakeLLMServer:
        server = FakeLLMServer(FakeConfig(**kwargs))  # type: ignore[arg-type]
        server.__enter__()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.close()


@pytest.fixture(autouse=True, scope="session")
def _own_source_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The loaded-source cache (source_cache.py) of the tests, children included, is their own."""
    os.environ["FINMCQ_CACHE_DIR"] = str(tmp_path_factory.mktemp("source-cache"))


@pytest.fixture(autouse=True)
def _no_real_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see a developer's real key, and never need one."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for running finmcq in a child process from the source tree."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


PYTHON = sys.executable

# The step-1 prompt of every training pair, exactly: instruction, question, A–G, answer cue.
STEP1 = re.compile(
    r"\A다음 문제를 읽고 정답으로 가장 알맞은 것을 고르시요\.\n"
    r"### 질문: (?P<question>[^\n]+)\n"
    r"### 선택지:\n"
    + "".join(rf"{letter}\. (?P<{letter}>[^\n]+)\n" for letter in LETTERS)
    + r"### 정답:\Z"
)


def chromium_or_skip(what: str) -> str:
    """Debian's Chromium for a browser test: skipped locally without it, a failure in CI."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None and os.environ.get("CI"):
        pytest.fail(f"CI must run the {what}: .ci/run installs Debian's `chromium`")
    if path is None:
        pytest.skip("headless Chromium is not installed (CI installs Debian's `chromium`; "
                    "locally: apt-get install -y chromium fonts-noto-cjk)")
    return path
