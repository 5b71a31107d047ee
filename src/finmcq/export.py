"""``finmcq export``: a finished run's pairs (and items) in the formats trainers read.

Formats, each written to ``--out`` with a dataset card (``README.md``, see :mod:`finmcq.card`):

* ``hf`` — ``pairs/`` (and ``items/``): ``datasets.DatasetDict`` objects saved with
  ``save_to_disk``; ``push_to_hub`` also uploads them to a Hub dataset repo as parquet.
* ``jsonl`` / ``parquet`` — ``pairs.{jsonl,parquet}`` (and ``items.*``).
* ``lm-eval`` — an lm-evaluation-harness task folder (:mod:`finmcq.export_lmeval`).
* ``chat`` — ``chat.jsonl``: ``{"messages": [system, user, assistant]}`` per pair, the format
  TRL's ``SFTTrainer`` and axolotl's ``chat_template`` type read directly.

Pairs keep the training file's order (step 1, step 2 of each item, items in delivery order) and
carry ``item_id`` and ``step`` so every row can be traced to its item. Files are written
atomically (temp file or folder, then rename): an interrupted export leaves no partial file.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from finmcq.card import dataset_card
from finmcq.errors import ConfigError, FinmcqError, InputError
from finmcq.export_lmeval import write_lm_eval
from finmcq.output import atomic_writer, write_jsonl
from finmcq.rundir import Run, load_run

FORMATS: tuple[str, ...] = ("hf", "jsonl", "parquet", "chat", "lm-eval")
CHAT_SYSTEM_PROMPT = (
    "당신은 한국 금융 시장 전문가입니다. 7지선다 문제를 단계별로 분석해 풀이하고, "
    "요청을 받으면 정답 알파벳만 답합니다."
)
_REPO_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+$")
HUB_DATA_FILES = {"pairs": "data/pairs/train-*.parquet", "items": "data/items/train-*.parquet"}


class ExportError(FinmcqError):
    """An export could not be completed (an unwritable folder, an unreachable Hub...)."""


def export_run(run_dir: Path, fmt: str, out: Path, *, include_items: bool = False,
               push_to_hub: str | None = None) -> list[Path]:
    """Export the newest finished build in ``run_dir`` as ``fmt`` into ``out``.

    Returns the paths written (the card last). With ``push_to_hub`` (format ``hf`` only) the Hub
    is checked before anything is written, and the upload is one commit: it lands whole or
    not at all. Raises ``ConfigError`` for bad arguments, ``InputError`` when ``run_dir`` is not
    a finished run, ``ExportError`` when writing or uploading fails.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown export format {fmt!r}", fix=f"Use one of {', '.join(FORMATS)}")
    if push_to_hub is not None and fmt != "hf":
        raise ConfigError("--push-to-hub uploads the hf format only",
                          fix="Add --format hf, or drop --push-to-hub")
    if push_to_hub is not None and not _REPO_ID.match(push_to_hub):
        raise ConfigError(f"{push_to_hub!r} is not a Hub repo id",
                          fix="Give it as NAME or OWNER/NAME")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"The export folder {out} is a file", fix="Choose another --out")
    run = load_run(run_dir)
    if out.resolve() == run.run_dir.resolve():
        raise InputError(f"The export folder {out} is the run directory itself",
                         fix="Choose another --out, so exports never mix with the run's files")
    hub = _Hub.connect(push_to_hub) if push_to_hub else None  # fail before writing anything
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"Cannot create the export folder {out}: {exc.strerror}",
                          fix="Choose another --out or fix its permissions") from None
    written = _WRITERS[fmt](run, out, include_items)
    card = out / "README.md"
    with atomic_writer(card) as handle:
        handle.write(dataset_card(run, export_format=fmt))
    written.append(card)
    if hub is not None:
        hub.upload(run, include_items, out)
    return written


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def pair_rows(run: Run) -> list[dict[str, Any]]:
    """The training pairs with the item and step each belongs to."""
    rows = []
    for i, pair in enumerate(run.pairs):
        item = run.items[i // 2]
        rows.append({"item_id": item["item_id"], "step": i % 2 + 1,
                     "prompt": pair["prompt"], "response": pair["response"]})
    return rows


def chat_rows(run: Run, system_prompt: str = CHAT_SYSTEM_PROMPT) -> list[dict[str, Any]]:
    """One ``messages`` conversation per training pair, in the training file's order."""
    return [{"messages": [{"role": "system", "content": system_prompt},
                          {"role": "user", "content": pair["prompt"]},
                          {"role": "assistant", "content": pair["response"]}]}
            for pair in run.pairs]


def _pairs_table(run: Run) -> Any:
    import pyarrow as pa

    schema = pa.schema([("item_id", pa.string()), ("step", pa.int8()), ("prompt", pa.string()),
                        ("response", pa.string())])
    return pa.Table.from_pylist(pair_rows(run), schema=schema)


# Free-form per-item evidence whose keys differ from item to item: a column of structs would
# gain every key of every row (filled with nulls), so it travels as JSON text instead.
JSON_COLUMNS = ("quality", "verification")


def _items_table(items: Sequence[dict[str, Any]]) -> Any:
    """The items as an Arrow table; types are inferred so fields added later are kept.

    Columns that may hold only nulls in a given run (no rewrites → no provenance) get their
    declared type, so every export of every run has the same schema. ``JSON_COLUMNS`` are
    stored as JSON strings.
    """
    import pyarrow as pa

    declared = {
        "difficulty": pa.string(),
        "source_question": pa.string(),
        "provenance": pa.struct([("dataset", pa.string()), ("subject", pa.string()),
                                 ("split", pa.string()), ("row_index", pa.int64()),
                                 ("original_answer", pa.int64()), ("license", pa.string())]),
    }
    names: dict[str, None] = {}
    for item in items:
        names.update(dict.fromkeys(item))
    columns = {}
    for name in names:
        values = [item.get(name) for item in items]
        if name in JSON_COLUMNS:
            values = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
        array = pa.array(values)
        if _has_null_type(array.type) and name in declared:
            array = pa.array(values, type=declared[name])
        columns[name] = array
    return pa.table(columns)


def _has_null_type(arrow_type: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_null(arrow_type):
        return True
    if pa.types.is_struct(arrow_type):
        return any(_has_null_type(arrow_type.field(i).type) for i in range(arrow_type.num_fields))
    if pa.types.is_list(arrow_type):
        return bool(_has_null_type(arrow_type.value_type))
    return False


# --------------------------------------------------------------------------------------------
# Writers: each returns the paths it wrote
# --------------------------------------------------------------------------------------------


def _write_jsonl(run: Run, out: Path, include_items: bool) -> list[Path]:
    written = [out / "pairs.jsonl"]
    write_jsonl(written[0], pair_rows(run))
    if include_items:
        written.append(out / "items.jsonl")
        write_jsonl(written[1], run.items)
    return written


def _write_parquet_file(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    with _atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def _write_parquet(run: Run, out: Path, include_items: bool) -> list[Path]:
    written = [out / "pairs.parquet"]
    _write_parquet_file(_pairs_table(run), written[0])
    if include_items:
        written.append(out / "items.parquet")
        _write_parquet_file(_items_table(run.items), written[1])
    return written


def _write_chat(run: Run, out: Path, include_items: bool) -> list[Path]:
    written = [out / "chat.jsonl"]
    write_jsonl(written[0], chat_rows(run))
    if include_items:  # the conversations have no room for them; items go beside
        written.append(out / "items.jsonl")
        write_jsonl(written[1], run.items)
    return written


def _dataset_dict(table: Any, run: Run, what: str) -> Any:
    from datasets import Dataset, DatasetDict, DatasetInfo, Features

    features = Features.from_arrow_schema(table.schema)
    info = DatasetInfo(
        description=f"finmcq {what} of run {run.timestamp}: Korean financial-market 7-option "
        "MCQs with step-by-step solutions",
        license="see README.md", features=features,
    )
    return DatasetDict({"train": Dataset.from_dict(table.to_pydict(), features=features,
                                                   info=info)})


def _write_hf(run: Run, out: Path, include_items: bool) -> list[Path]:
    tables = {"pairs": _pairs_table(run)}
    if include_items:
        tables["items"] = _items_table(run.items)
    written = []
    for name, table in tables.items():
        target = out / name
        with _atomic_path(target) as tmp:
            _dataset_dict(table, run, name).save_to_disk(str(tmp))
        written.append(target)
    return written


_WRITERS = {"hf": _write_hf, "jsonl": _write_jsonl, "parquet": _write_parquet,
            "chat": _write_chat, "lm-eval": write_lm_eval}


@contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (file or folder) that replaces ``path`` on success."""
    tmp = path.with_name(f".{path.name}.tmp-export")
    _remove(tmp)
    try:
        yield tmp
        old = path.with_name(f".{path.name}.old-export")
        _remove(old)
        if path.exists():
            path.rename(old)  # a folder cannot be replaced by rename in one step
        tmp.rename(path)
        _remove(old)
    except OSError as exc:
        _remove(tmp)
        raise ExportError(f"Cannot write {path}: {exc.strerror or exc}",
                          fix="Free disk space or make the folder writable, then rerun") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Hugging Face Hub
# --------------------------------------------------------------------------------------------


class _Hub:
    """A checked connection to the Hub for one dataset repo."""

    def __init__(self, api: Any, repo_id: str) -> None:
        self.api = api
        self.repo_id = repo_id

    @classmethod
    def connect(cls, repo_id: str) -> _Hub:
        """Check the token and that the Hub answers, before anything is written."""
        from huggingface_hub import HfApi, get_token

        token = get_token()
        if not token:
            raise ExportError(
                "No Hugging Face token is set, so nothing can be pushed to the Hub",
                fix="Run `hf auth login` or set HF_TOKEN, then rerun; nothing was written",
            )
        api = HfApi(token=token)
        try:
            api.whoami()
        except Exception as exc:  # httpx/requests/hub errors differ by version: report any
            raise ExportError(
                f"Cannot reach the Hugging Face Hub at {api.endpoint} to push {repo_id}: "
                f"{_short(exc)}",
                fix="Check the network, HF_ENDPOINT and the token, then rerun; nothing was "
                "written or uploaded",
            ) from exc
        return cls(api, repo_id)

    def upload(self, run: Run, include_items: bool, out: Path) -> None:
        """Upload pairs (and items) as parquet plus the card, in one commit."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        tables = {"pairs": _pairs_table(run)}
        if include_items:
            tables["items"] = _items_table(run.items)
        with tempfile.TemporaryDirectory(prefix="finmcq-hub-") as staging:
            adds = []
            for name, table in tables.items():
                rel = HUB_DATA_FILES[name].replace("*", "00000-of-00001")
                path = Path(staging) / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_parquet_file(table, path)
                adds.append(CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(path)))
            card = dataset_card(run, export_format="hub", repo_id=self.repo_id,
                                data_files={n: HUB_DATA_FILES[n] for n in tables})
            adds.append(CommitOperationAdd(path_in_repo="README.md",
                                           path_or_fileobj=card.encode("utf-8")))
            try:
                self.api.create_repo(self.repo_id, repo_type="dataset", exist_ok=True)
                # Data files of an earlier push that this one does not replace go in the same
                # commit, so the repo never mixes two runs.
                new = {op.path_in_repo for op in adds}
                stale = [CommitOperationDelete(path_in_repo=p) for p in
                         self.api.list_repo_files(self.repo_id, repo_type="dataset")
                         if p.startswith("data/") and p not in new]
                self.api.create_commit(self.repo_id, repo_type="dataset",
                                       operations=[*stale, *adds],
                                       commit_message=f"finmcq export of run {run.timestamp}")
            except Exception as exc:  # any failure: the single commit did not land
                raise ExportError(
                    f"Uploading to the Hub dataset repo {self.repo_id} failed: {_short(exc)}",
                    where=str(self.api.endpoint),
                    fix=f"The local export in {out} is complete and no commit was made to the "
                    "repo; rerun with --push-to-hub to try again",
                ) from exc


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"
