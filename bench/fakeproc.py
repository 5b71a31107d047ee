"""The fake LLM in its own process, for the benchmark scripts (it must not share their GIL)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env() -> dict[str, str]:
    """The environment for finmcq child processes run from this source tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("OPENAI_API_KEY", None)  # the fake is on loopback: no key needed or sent
    return env


def start_fake(latency_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m finmcq.fake`` on a free port; returns the process and its root URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "finmcq.fake", "--port", str(port), "--latency-ms",
         str(latency_ms)], env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            urllib.request.urlopen(f"{base}/_fake/health", timeout=1).read()
            return proc, base
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the fake LLM did not start")


def fake_stats(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/_fake/stats", timeout=30) as r:
        data: dict[str, Any] = json.loads(r.read())
        return data


def reset(base: str) -> None:
    req = urllib.request.Request(f"{base}/_fake/reset", method="POST", data=b"")
    urllib.request.urlopen(req, timeout=30).read()
