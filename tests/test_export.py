"""`finmcq export`: every format loads back to exactly the run's data, with a truthful card."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from finmcq.build import run_build
from finmcq.card import dataset_card
from finmcq.config import BuildSettings
from finmcq.errors import ConfigError, InputError
from finmcq.export import CHAT_SYSTEM_PROMPT, JSON_COLUMNS, ExportError, export_run, pair_rows
from finmcq.records import LETTERS
from finmcq.rundir import Run, load_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A small demo-like build: the bundled sample through the fake LLM, 70 questions."""
    from finmcq.fake.server import FakeConfig, FakeLLMServer

    out = tmp_path_factory.mktemp("export") / "run"
    with FakeLLMServer(FakeConfig()) as fake:
        run_build(BuildSettings(source="sample", questions=70, seed=7, out=out,
                                model="fake-finance-1", base_url=fake.base_url), progress=False)
    return load_run(out)


def expected_pairs(run: Run) -> list[dict[str, Any]]:
    """The training file's pairs, each with the item it belongs to (two per item, in order)."""
    return [{"item_id": run.items[i // 2]["item_id"], "step": i % 2 + 1, **pair}
            for i, pair in enumerate(run.pairs)]


def columnar_items(run: Run) -> list[dict[str, Any]]:
    """The run's items as parquet/hf store them: free-form evidence as JSON text."""
    return [{k: json.dumps(v, ensure_ascii=False) if k in JSON_COLUMNS and v is not None else v
             for k, v in item.items()} for item in run.items]


def read_jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_pairs_follow_the_training_file_two_per_item(run: Run) -> None:
    rows = pair_rows(run)
    assert rows == expected_pairs(run)
    for item, step1, step2 in zip(run.items, rows[0::2], rows[1::2], strict=True):
        assert step1["response"] == item["solution"] and step2["response"] == item["answer"]


# -- round trips -------------------------------------------------------------------------------


def test_jsonl_round_trips(run: Run, tmp_path: Path) -> None:
    written = export_run(run.run_dir, "jsonl", tmp_path, include_items=True)
    assert [p.name for p in written] == ["pairs.jsonl", "items.jsonl", "README.md"]
    assert read_jsonl(tmp_path / "pairs.jsonl") == expected_pairs(run)
    assert read_jsonl(tmp_path / "items.jsonl") == run.items


def test_parquet_round_trips(run: Run, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    export_run(run.run_dir, "parquet", tmp_path, include_items=True)
    assert pq.read_table(tmp_path / "pairs.parquet").to_pylist() == expected_pairs(run)
    assert pq.read_table(tmp_path / "items.parquet").to_pylist() == columnar_items(run)


def test_parquet_without_items_writes_only_the_pairs(run: Run, tmp_path: Path) -> None:
    written = export_run(run.run_dir, "parquet", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "pairs.parquet"]
    assert written == [tmp_path / "pairs.parquet", tmp_path / "README.md"]


def test_hf_round_trips_as_dataset_dicts(run: Run, tmp_path: Path) -> None:
    from datasets import DatasetDict, load_from_disk

    export_run(run.run_dir, "hf", tmp_path, include_items=True)
    pairs = load_from_disk(str(tmp_path / "pairs"))
    items = load_from_disk(str(tmp_path / "items"))
    assert isinstance(pairs, DatasetDict) and list(pairs) == ["train"]
    assert pairs["train"].to_list() == expected_pairs(run)
    assert items["train"].to_list() == columnar_items(run)
    # Exporting again replaces the folders whole, and leaves no temporary folder behind.
    export_run(run.run_dir, "hf", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "items", "pairs"]


def test_chat_is_the_messages_format_trl_and_axolotl_read(run: Run, tmp_path: Path) -> None:
    from datasets import load_dataset

    export_run(run.run_dir, "chat", tmp_path)
    # What TRL's SFTTrainer and axolotl do with it: load the JSON lines as a dataset.
    chat = load_dataset("json", data_files=str(tmp_path / "chat.jsonl"), split="train",
                        cache_dir=str(tmp_path / "cache"))
    assert chat.column_names == ["messages"]
    messages = chat.features["messages"]  # List(...) in datasets ≥ 4, [dict] before
    message = messages.feature if hasattr(messages, "feature") else messages[0]
    assert set(message) == {"role", "content"}
    rows = chat.to_list()
    assert len(rows) == 2 * len(run.items)
    for pair, row in zip(run.pairs, rows, strict=True):
        assert row["messages"] == [{"role": "system", "content": CHAT_SYSTEM_PROMPT},
                                   {"role": "user", "content": pair["prompt"]},
                                   {"role": "assistant", "content": pair["response"]}]
    for item, step2 in zip(run.items, rows[1::2], strict=True):
        assert step2["messages"][2]["content"] == item["answer"]


# -- the card ----------------------------------------------------------------------------------


def card_table(card: str, heading: str) -> list[list[str]]:
    """The rows of the first markdown table under ``heading``, header and rule left out."""
    section = card.split(f"\n{heading}\n", 1)[1]
    lines = [ln for ln in section.strip().splitlines()]
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_card_numbers_match_the_stats(run: Run, tmp_path: Path) -> None:
    export_run(run.run_dir, "jsonl", tmp_path)
    card = (tmp_path / "README.md").read_text("utf-8")
    stats = run.stats
    delivered = stats["questions"]["delivered"]

    topics = {row[0]: (int(row[1]), int(row[2])) for row in card_table(card, "## Topics")}
    assert topics == {t: (v["quota"], v["delivered"]) for t, v in stats["topics"].items()}
    letters = {row[0]: int(row[1]) for row in card_table(card, "## Answer letters")}
    assert letters == {ch: stats["letters"].get(ch, 0) for ch in LETTERS}
    assert sum(letters.values()) == delivered
    difficulty = {row[0]: int(row[1]) for row in card_table(card, "## Difficulty")}
    assert difficulty == stats["difficulty"]
    stages = {row[0]: [int(c) for c in row[1:4]] for row in card_table(card, "### Stages")}
    assert stages == {name: [s["in"], s["out"], s["dropped"]]
                      for name, s in stats["stages"].items()}
    models = dict(card_table(card, "### Models"))
    assert models == stats["models"]
    counts = dict(card_table(card, "### Counts"))
    assert int(counts["source questions"]) == stats["sources"]
    assert int(counts["questions delivered"]) == delivered
    assert int(counts["training pairs"]) == stats["pairs"] == 2 * delivered
    assert int(counts["seed"]) == stats["seed"]
    assert float(counts["LLM cost (USD, all sessions)"]) == round(stats["cost_usd"]["total"], 4)
    origins = stats["origins"]
    assert (f"{origins.get('rewrite', 0)} questions are rewrites" in card
            and f"{origins.get('generate', 0)} were generated" in card)


def test_card_front_matter_licence_provenance_and_contamination(run: Run) -> None:
    card = dataset_card(run.run_dir)
    assert card.startswith("---\n")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["language"] == ["ko"] and "multiple-choice-qa" in meta["task_ids"]
    licences = {item["provenance"]["license"] for item in run.items if item["provenance"]}
    assert meta["license"] == ("cc-by-nd-4.0" if any("ND" in lic for lic in licences)
                               else "cc-by-4.0" if licences else "other")
    assert "KMMLU is licensed CC BY-ND 4.0" in card and "derivatives" in card
    for field in ("row_index", "original_answer", "subject", "split", "license"):
        assert f"`{field}`" in card
    assert "## Intended use" in card
    assert "The contamination check was not run for this build." in card
    assert "fake" in card  # a demo build says that its content is not real


def test_card_reports_a_contamination_result_when_the_stats_have_one(run: Run) -> None:
    run.stats["contamination"] = {"status": "clean", "near_duplicates": 0}
    try:
        card = dataset_card(run)
    finally:
        del run.stats["contamination"]
    assert "Contamination check: status: clean; near_duplicates: 0." in card


def test_hub_card_has_configs_that_point_at_the_data(run: Run) -> None:
    card = dataset_card(run, export_format="hub", repo_id="me/finmcq",
                        data_files={"pairs": "data/pairs/train-*.parquet"})
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["configs"] == [{"config_name": "pairs", "default": True,
                                "data_files": [{"split": "train",
                                                "path": "data/pairs/train-*.parquet"}]}]
    assert 'load_dataset("me/finmcq", "pairs"' in card


# -- errors ------------------------------------------------------------------------------------


def _hub_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_real")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # A closed port on this machine: connection refused at once, nothing leaves the host.
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")


def test_push_with_the_hub_unreachable_fails_clearly_before_writing(
        run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _hub_unreachable(monkeypatch)
    out = tmp_path / "export"
    with pytest.raises(ExportError) as info:
        export_run(run.run_dir, "hf", out, push_to_hub="me/finmcq")
    message = str(info.value)
    assert "Cannot reach the Hugging Face Hub at http://127.0.0.1:9" in message
    assert "nothing was written or uploaded" in message and "\n" not in message
    assert not out.exists()


def test_a_failed_upload_leaves_the_local_export_whole_and_says_so(
        run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import HfApi

    _hub_unreachable(monkeypatch)
    monkeypatch.setattr(HfApi, "whoami", lambda self, *a, **k: {"name": "me"})
    out = tmp_path / "export"
    with pytest.raises(ExportError) as info:
        export_run(run.run_dir, "hf", out, include_items=True, push_to_hub="me/finmcq")
    message = str(info.value)
    assert "Uploading to the Hub dataset repo me/finmcq failed" in message
    assert f"The local export in {out} is complete and no commit was made" in message
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "items", "pairs"]


def test_push_uploads_data_and_card_in_one_commit(
        run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Up to the wire: the one commit sent holds both configs' parquet and the card."""
    import pyarrow.parquet as pq
    from huggingface_hub import HfApi

    _hub_unreachable(monkeypatch)
    commits: list[dict[str, Any]] = []

    def create_commit(self: HfApi, repo_id: str, operations: list[Any], **kw: Any) -> None:
        files: dict[str, Any] = {}
        for op in operations:
            if type(op).__name__ == "CommitOperationAdd":
                data = op.path_or_fileobj
                files[op.path_in_repo] = (pq.read_table(data).to_pylist()
                                          if op.path_in_repo.endswith(".parquet")
                                          else data.decode("utf-8"))
            else:
                files[op.path_in_repo] = "deleted"
        commits.append({"repo_id": repo_id, "files": files, **kw})

    monkeypatch.setattr(HfApi, "whoami", lambda self, *a, **k: {"name": "me"})
    monkeypatch.setattr(HfApi, "create_repo", lambda self, *a, **k: None)
    monkeypatch.setattr(HfApi, "list_repo_files", lambda self, *a, **k: [
        ".gitattributes", "README.md", "data/pairs/train-00000-of-00002.parquet"])
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    export_run(run.run_dir, "hf", tmp_path / "export", include_items=True,
               push_to_hub="me/finmcq")
    assert len(commits) == 1
    commit = commits[0]
    assert commit["repo_id"] == "me/finmcq" and commit["repo_type"] == "dataset"
    files = commit["files"]
    assert files["data/pairs/train-00000-of-00002.parquet"] == "deleted"  # an earlier push
    assert files["data/pairs/train-00000-of-00001.parquet"] == expected_pairs(run)
    assert files["data/items/train-00000-of-00001.parquet"] == columnar_items(run)
    meta = yaml.safe_load(files["README.md"].split("---\n")[1])
    assert [c["config_name"] for c in meta["configs"]] == ["pairs", "items"]
    assert ".gitattributes" not in files


def test_push_without_a_token_says_how_to_log_in(
        run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(ExportError, match="hf auth login"):
        export_run(run.run_dir, "hf", tmp_path / "export", push_to_hub="me/finmcq")
    assert not (tmp_path / "export").exists()


@pytest.mark.parametrize(("fmt", "kwargs", "error", "match"), [
    ("csv", {}, ConfigError, "Unknown export format 'csv'"),
    ("jsonl", {"push_to_hub": "me/x"}, ConfigError, "hf format only"),
    ("hf", {"push_to_hub": "not a repo"}, ConfigError, "not a Hub repo id"),
])
def test_bad_arguments_are_config_errors(run: Run, tmp_path: Path, fmt: str,
                                         kwargs: dict[str, Any], error: type[Exception],
                                         match: str) -> None:
    with pytest.raises(error, match=re.escape(match)):
        export_run(run.run_dir, fmt, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_exporting_a_folder_that_is_not_a_run_or_into_the_run_is_an_input_error(
        run: Run, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a finished finmcq run"):
        export_run(tmp_path, "jsonl", tmp_path / "out")
    with pytest.raises(InputError, match="is the run directory itself"):
        export_run(run.run_dir, "jsonl", run.run_dir)
