"""Optional: the lm-eval export in the real lm-evaluation-harness (marked ``lmeval``).

Skipped unless lm-eval is available: importable here, on PATH as ``lm_eval``, or named by
``FINMCQ_LM_EVAL`` (the path of an ``lm_eval`` executable, e.g. in a separate venv; lm-eval
pulls torch, so it is not one of finmcq's dependencies). How to run it::

    python3 -m venv /work/lmeval-venv
    /work/lmeval-venv/bin/pip install torch "lm-eval[api]"
    FINMCQ_LM_EVAL=/work/lmeval-venv/bin/lm_eval pytest -m lmeval tests/test_lmeval.py

The generative task runs through the harness's ``local-chat-completions`` backend against the
fake LLM in exam mode (answers right with probability P): the harness must report P within
its 95 % interval and must have sent the fake exactly the exported step-1 prompts. The
multiple-choice task needs log-likelihoods, which chat servers (and the fake) do not give; it
runs on the harness's ``dummy`` model, which shows that the harness loads it and asks 7
choices per question.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from finmcq.build import run_build
from finmcq.config import BuildSettings
from finmcq.export import export_run
from finmcq.fake.server import FakeConfig, FakeLLMServer


def _lm_eval_command() -> list[str] | None:
    named = os.environ.get("FINMCQ_LM_EVAL")
    if named:
        return [named]
    if importlib.util.find_spec("lm_eval") is not None:
        return [sys.executable, "-m", "lm_eval"]
    found = shutil.which("lm_eval") or shutil.which("lm-eval")
    return [found] if found else None


LM_EVAL = _lm_eval_command()
pytestmark = [pytest.mark.lmeval,
              pytest.mark.skipif(LM_EVAL is None, reason="lm-eval is not installed "
                                 "(set FINMCQ_LM_EVAL to an lm_eval executable)")]
QUESTIONS, ACCURACY = 210, 0.6


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lmeval")
    with FakeLLMServer(FakeConfig()) as fake:
        run_build(BuildSettings(source="sample", questions=QUESTIONS, seed=5, out=root / "run",
                                model="fake-finance-1", base_url=fake.base_url), progress=False)
    export_run(root / "run", "lm-eval", root / "task")
    return root / "run", root / "task"


def lm_eval(*args: str, cwd: Path) -> dict[str, Any]:
    assert LM_EVAL is not None
    out = cwd / "results"
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([*LM_EVAL, *args, "--output_path", str(out)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stdout)  # the harness's table, for the record (pytest -s shows it)
    files = sorted(out.rglob("results_*.json"))
    assert files, result.stdout
    return json.loads(files[-1].read_text("utf-8"))  # type: ignore[no-any-return]


def test_generative_task_reports_the_fakes_accuracy(task_dir: tuple[Path, Path],
                                                    tmp_path: Path) -> None:
    run_dir, folder = task_dir
    with FakeLLMServer(FakeConfig(answers=str(run_dir), accuracy=ACCURACY, seed=9)) as fake:
        results = lm_eval(
            "--model", "local-chat-completions", "--model_args",
            f"model=fake-finance-1,base_url={fake.base_url}/chat/completions,num_concurrent=8",
            "--tasks", "finmcq_krx", "--include_path", str(folder), "--apply_chat_template",
            cwd=tmp_path)
        by_task = fake.stats()["by_task"]
    scores = results["results"]["finmcq_krx"]
    # Every exported prompt reached the fake as a step-1 question it has the key of.
    assert by_task.get("exam_reason") == QUESTIONS and "exam_reason_unknown" not in by_task
    right = by_task.get("exam_right_reason", 0)  # reasonings that concluded with the key
    for name in ("strict-match", "flexible-extract"):
        value = scores[f"exact_match,{name}"]
        assert round(value * QUESTIONS) == right, (name, value, right)  # exactly the fake's
        # and the fake's set rate: within 3.5 standard errors (1 in 2,000 by chance; the draws
        # follow the question text, so a 95 % interval would miss 1 set in 20)
        assert abs(value - ACCURACY) <= 3.5 * (ACCURACY * (1 - ACCURACY) / QUESTIONS) ** 0.5


def test_multiple_choice_task_loads_and_asks_seven_letters(task_dir: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    _, folder = task_dir
    results = lm_eval("--model", "dummy", "--tasks", "finmcq_krx_mc", "--include_path",
                      str(folder), "--limit", "20", cwd=tmp_path)
    assert 0.0 <= results["results"]["finmcq_krx_mc"]["acc,none"] <= 1.0
    assert results["n-samples"]["finmcq_krx_mc"]["effective"] == 20
    config = results["configs"]["finmcq_krx_mc"]
    assert config["output_type"] == "multiple_choice"
    assert config["doc_to_choice"] == list("ABCDEFG")
