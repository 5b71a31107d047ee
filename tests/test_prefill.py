"""A cold load of a local folder runs in a child process: the loading process never imports
``datasets`` (~110 MB it would keep), and gets the same questions, warnings and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finmcq.sources import load_source, prefill

from .test_sources import CARD, csv_file, row, write

# Loads a folder in a fresh interpreter and reports what the loading process imported.
PROBE = """
import json, logging, sys
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
from finmcq.errors import InputError
import pytest

from finmcq.sources import load_source, prefill
try:
    questions = load_source(sys.argv[1], [sys.argv[2]], None)
    out = {"questions": [q.model_dump(mode="json") for q in questions]}
except InputError as exc:
    out = {"error": str(exc)}
out["datasets_imported"] = "datasets" in sys.modules
print(json.dumps(out, ensure_ascii=False))
"""


def probe(folder: Path, subject: str, cache: Path | str) -> tuple[dict[str, object], str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "FINMCQ_CACHE_DIR": str(cache),
           "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("FINMCQ_SOURCE_CHILD", None)
    done = subprocess.run([sys.executable, "-c", PROBE, str(folder), subject], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout), done.stderr


def mirror_with_a_repeat(tmp_path: Path) -> Path:
    folder = tmp_path / "mirror"
    (folder / "data").mkdir(parents=True)
    write(folder / "README.md", CARD)
    # Row 1 twice: the loader drops the repeat and logs a warning about it.
    csv_file(folder / "data", row(1, 3), row(2, 1), row(1, 3), name="Finance-train.csv")
    csv_file(folder / "data", row(4, 2), name="finance-test.csv")
    return folder


def test_a_cold_folder_load_happens_in_a_child_with_the_same_result(tmp_path: Path) -> None:
    folder = mirror_with_a_repeat(tmp_path)
    cache = tmp_path / "cache"
    cold, cold_log = probe(folder, "Finance", cache)
    assert cold["datasets_imported"] is False  # the child did the datasets work
    assert list(cache.glob("*.jsonl"))  # ... and left the entry this process read
    in_process, in_process_log = probe(folder, "Finance", "off")  # no cache: loads itself
    assert in_process["datasets_imported"] is True
    assert cold["questions"] == in_process["questions"]
    assert len(cold["questions"]) == 3  # type: ignore[arg-type]
    # The child's warning (the repeated row) reaches the user of the parent process.
    assert "WARNING" in cold_log and "WARNING" in in_process_log
    warned = [line for line in cold_log.splitlines() if line.startswith("WARNING")]
    assert warned == [line for line in in_process_log.splitlines()
                      if line.startswith("WARNING")]
    # A warm load reads the entry: no child, no datasets.
    warm, _ = probe(folder, "Finance", cache)
    assert warm == cold


def test_a_bad_folder_gives_the_same_error_as_an_in_process_load(tmp_path: Path) -> None:
    folder = mirror_with_a_repeat(tmp_path)
    csv_file(folder / "data", row(1), row(2), row(3, "B"), name="Finance-train.csv")
    via_child, _ = probe(folder, "Finance", tmp_path / "cache")
    direct, _ = probe(folder, "Finance", "off")
    assert "error" in via_child and via_child["error"] == direct["error"]
    assert "Finance-train.csv, line 4, column 'answer'" in str(via_child["error"])
    unknown, _ = probe(folder, "Nothing", tmp_path / "cache")
    assert "unknown subject 'Nothing'" in str(unknown["error"])
    assert not list((tmp_path / "cache").glob("*.jsonl"))  # nothing cached for either


def test_a_process_that_imported_datasets_loads_in_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its memory is spent already: a child would only cost time.
    import datasets  # noqa: F401

    def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError("a child process was started")

    monkeypatch.setattr(prefill.subprocess, "run", no_child)
    folder = mirror_with_a_repeat(tmp_path)
    questions = load_source(folder, ["Finance"])
    assert [q.uid for q in questions] == ["Finance/train/0", "Finance/train/1",
                                          "Finance/test/0"]

