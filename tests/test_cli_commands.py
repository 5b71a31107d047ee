"""Every user-facing command through the real CLI (``python -m finmcq.cli``) in a child process:
demo, report, export, estimate, doctor, the budget stop's exit code, and
``--contamination-against`` with and without ``--drop-contaminated`` (issue 12, part 4)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from finmcq.fake.server import FakeConfig, FakeLLMServer

from .conftest import PYTHON, subprocess_env

DEMO_QUESTIONS = 30


def finmcq(*args: str, cwd: Path | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "finmcq.cli", *args], capture_output=True, text=True,
                          env=subprocess_env(), cwd=cwd, timeout=timeout)


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int,
                         *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("error: "), result.stderr[-2000:]
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr[-2000:])


def newest(run_dir: Path, pattern: str) -> Path:
    return max(run_dir.glob(pattern))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`finmcq demo` in a fresh folder: its built-in fake, the bundled sample, default --out."""
    cwd = tmp_path_factory.mktemp("demo")
    result = finmcq("demo", "--questions", str(DEMO_QUESTIONS), "--seed", "3", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fake LLM listening at http://127.0.0.1:" in result.stdout
    assert f"{2 * DEMO_QUESTIONS} training pairs written" in result.stdout
    assert "FAKE LLM" in result.stdout
    return cwd / "demo-run"


def test_demo_writes_every_output_file(demo_run: Path) -> None:
    pairs = json.loads(newest(demo_run, "final_training_data_*.json").read_text("utf-8"))
    assert len(pairs) == 2 * DEMO_QUESTIONS
    items = newest(demo_run, "items_*.jsonl").read_text("utf-8").splitlines()
    assert len(items) == DEMO_QUESTIONS
    stats = json.loads(newest(demo_run, "processing_stats_*.json").read_text("utf-8"))
    assert stats["status"] == "complete" and stats["pairs"] == 2 * DEMO_QUESTIONS
    assert newest(demo_run, "report_*.html").stat().st_size > 100_000  # plotly.js inlined


def test_report_command_rewrites_the_report(demo_run: Path) -> None:
    report = newest(demo_run, "report_*.html")
    report.unlink()
    result = finmcq("report", str(demo_run))
    assert result.returncode == 0, result.stderr
    assert f"report written: {report}" in result.stdout
    assert report.is_file() and "<!DOCTYPE html>" in report.read_text("utf-8")[:200]


def test_report_of_a_folder_that_is_no_run_is_a_clear_error(tmp_path: Path) -> None:
    assert_clean_failure(finmcq("report", str(tmp_path)), 2)


@pytest.mark.parametrize("fmt", ["jsonl", "chat"])
def test_export_command_writes_the_pairs_and_a_card(demo_run: Path, tmp_path: Path,
                                                    fmt: str) -> None:
    out = tmp_path / fmt
    result = finmcq("export", str(demo_run), "--format", fmt, "--out", str(out), "--items")
    assert result.returncode == 0, result.stderr
    assert f"exported {fmt} to {out}" in result.stdout
    card = (out / "README.md").read_text("utf-8")
    assert "CC BY-ND" in card or "cc-by-nd" in card.lower()
    rows = [json.loads(line) for path in sorted(out.rglob("*.jsonl"))
            if "item" not in path.name for line in path.read_text("utf-8").splitlines()]
    assert len(rows) == 2 * DEMO_QUESTIONS
    if fmt == "chat":
        assert all(row["messages"][-1]["role"] == "assistant" for row in rows)
    else:
        assert all(set(row) >= {"prompt", "response"} for row in rows)


def test_export_with_an_unknown_format_is_a_clear_error(demo_run: Path, tmp_path: Path) -> None:
    assert_clean_failure(finmcq("export", str(demo_run), "--format", "xml", "--out",
                                str(tmp_path / "x")), 2, "xml")


def test_estimate_command_prints_calls_tokens_and_usd_without_any_request(tmp_path: Path) -> None:
    result = finmcq("estimate", "--source", "sample", "--questions", "50", "--model",
                    "gpt-4o-mini", "--out", str(tmp_path / "none"), "--json")
    assert result.returncode == 0, result.stderr
    estimate = json.loads(result.stdout)
    assert estimate["questions"] == 50
    stages = estimate["stages"]
    assert {"relevance", "rewrite", "verify", "solve"} <= set(stages)
    assert stages["solve"]["calls"] >= 50 and stages["solve"]["usd"] > 0
    assert not (tmp_path / "none").exists()  # an estimate writes nothing
    table = finmcq("estimate", "--source", "sample", "--questions", "50", "--model",
                   "gpt-4o-mini", "--budget-usd", "0.0001")
    assert table.returncode == 0, table.stderr
    assert "solve" in table.stdout
    assert "above --budget-usd" in table.stderr


def test_doctor_command_passes_a_healthy_server_and_fails_a_wrong_model(
        fake_llm: FakeLLMServer) -> None:
    ok = finmcq("doctor", "--base-url", fake_llm.base_url, "--model", "fake-finance-1")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "doctor: all checks passed" in ok.stdout
    bad = finmcq("doctor", "--base-url", fake_llm.base_url, "--model", "no-such-model")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL" in bad.stdout and "no-such-model" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


def test_budget_stop_exits_1_with_the_message_and_resumes(fake_llm: FakeLLMServer,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ("build", "--source", "sample", "--questions", "20", "--seed", "4", "--model",
            "fake-finance-1", "--base-url", fake_llm.base_url, "--out", str(out),
            "--no-contamination-check")
    stopped = finmcq(*args, "--budget-usd", "0.01")
    assert_clean_failure(stopped, 1, "Budget reached", "--budget-usd")
    assert not list(out.glob("final_training_data_*.json"))
    before = fake_llm.stats()["requests"]
    assert before > 0
    resumed = finmcq(*args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    pairs = json.loads(newest(out, "final_training_data_*.json").read_text("utf-8"))
    assert len(pairs) == 40


# --------------------------------------------------------------------------------------------
# --contamination-against FILE
# --------------------------------------------------------------------------------------------

CONTAMINATION_ARGS = ("--source", "sample", "--questions", "24", "--seed", "5", "--model",
                      "fake-finance-1", "--no-contamination-check")


def _build(base_url: str, out: Path, *extra: str) -> dict[str, Any]:
    result = finmcq("build", *CONTAMINATION_ARGS, "--base-url", base_url, "--out", str(out),
                    *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    items = [json.loads(line) for line in
             newest(out, "items_*.jsonl").read_text("utf-8").splitlines()]
    stats = json.loads(newest(out, "processing_stats_*.json").read_text("utf-8"))
    return {"items": items, "stats": stats}


@pytest.fixture(scope="module")
def benchmark_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, list[str]]:
    """A fake LLM, and a benchmark file holding three of its build's delivered questions."""
    folder = tmp_path_factory.mktemp("contamination")
    fake = FakeLLMServer(FakeConfig(seed=1))
    fake.__enter__()
    clean = _build(fake.base_url, folder / "clean")
    chosen = [item["question"] for item in clean["items"][3:6]]
    path = folder / "my_benchmark.txt"
    path.write_text("\n".join(["채권의 듀레이션이 길수록 금리 변화에 대한 가격 민감도는 어떻게 "
                               "되는가?", *chosen, "환율이 오르면 수입 물가는 어떻게 되는가?"])
                    + "\n", "utf-8")
    yield fake.base_url, path, chosen
    fake.close()


def test_contamination_against_a_file_flags_the_copied_items(
        benchmark_file: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    base_url, path, chosen = benchmark_file
    run = _build(base_url, tmp_path / "run", "--contamination-against", str(path))
    report = run["stats"]["quality"]["contamination"]
    assert {"benchmark": "my_benchmark.txt", "source": str(path), "questions": 5} in (
        report["compared_against"])
    flagged = {row["item_id"] for row in report["items"]}
    copied = {item["item_id"] for item in run["items"] if item["question"] in chosen}
    assert len(copied) == 3 and copied <= flagged
    assert run["stats"]["contamination"]["status"] == "flagged"
    assert len(run["items"]) == 24  # flagged, not dropped


def test_drop_contaminated_replaces_the_copied_items(
        benchmark_file: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    base_url, path, chosen = benchmark_file
    run = _build(base_url, tmp_path / "run", "--contamination-against", str(path),
                 "--drop-contaminated")
    assert len(run["items"]) == 24  # refilled: still exactly the questions asked for
    assert not [item for item in run["items"] if item["question"] in chosen]
    stats = run["stats"]
    assert stats["stages"]["contamination"]["drop_reasons"]["contaminated"] >= 3
    assert stats["contamination"]["status"] == "dropped"
