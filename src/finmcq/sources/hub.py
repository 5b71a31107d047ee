"""Hub ids and local hub-layout folders, loaded through ``datasets.load_dataset``."""

from __future__ import annotations

import contextlib
import functools
import importlib
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from finmcq.errors import InputError
from finmcq.records import (
    KMMLU_LICENSE,
)
from finmcq.sources.files import _parse_csv, _read_text
from finmcq.sources.rows import (
    _OTHER_SOURCES,
    _TEXT_SUFFIXES,
    DEFAULT_SUBJECTS,
    HUB_CHECK_TIMEOUT_S,
    KMMLU_HUB_ID,
    KMMLU_SPLITS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    _check_names,
    _missing_column,
    _resolve_columns,
    _Split,
    _Table,
)


def _datasets() -> Any:
    # Imported on first use: it is slow to import and not needed for files or the sample.
    # (import_module also keeps mypy off this untyped package.)
    return importlib.import_module("datasets")


def _hub_tables(
    hub_id: str,
    subjects: tuple[str, ...] | None,
    splits: tuple[str, ...] | None,
    cache_dir: str | Path | None,
) -> list[_Table]:
    is_kmmlu = hub_id.lower() == KMMLU_HUB_ID.lower()
    subjects = subjects or DEFAULT_SUBJECTS
    splits = splits or KMMLU_SPLITS
    if is_kmmlu:  # KMMLU's splits are known: a typo should not wait for the network
        _check_names(splits, KMMLU_SPLITS, "split", where=hub_id)
    datasets = _datasets()
    offline = bool(datasets.config.HF_HUB_OFFLINE)
    # huggingface_hub retries an unreachable hub with back-off (about 25 s, longer when
    # packets are dropped); one short request first makes the common failure quick.
    if not offline and not _hub_reachable(str(datasets.config.HF_ENDPOINT)):
        raise _hub_unreachable(hub_id, str(datasets.config.HF_ENDPOINT), is_kmmlu)
    license = KMMLU_LICENSE if is_kmmlu else f"unknown (hub dataset {hub_id})"
    tables: list[_Table] = []
    for subject in subjects:
        splits_of = _load_with_datasets(
            hub_id, subject, hub=True, cache_dir=cache_dir, csv_options=True
        )
        for split in splits:
            if split not in splits_of:
                _check_names(
                    (split,), tuple(splits_of), "split", where=f"{hub_id}, subject {subject}"
                )
            where = f"{hub_id}, subject {subject}, split {split}"
            tables.append(
                _datasets_table(
                    splits_of[split], hub_id, subject, split, license, where, locate=_hub_row
                )
            )
    return tables


def _hub_row(index: int) -> str:
    return f"row {index} (0-based)"


def _hub_reachable(endpoint: str) -> bool:
    from huggingface_hub import get_session

    try:
        # Any HTTP answer, even an error status, proves the hub can be reached.
        get_session().head(endpoint, timeout=HUB_CHECK_TIMEOUT_S)
    except Exception:  # connection refused, DNS failure, timeout, proxy error ...
        return False
    return True


def _hub_unreachable(hub_id: str, endpoint: str, is_kmmlu: bool) -> InputError:
    fix = f"Check the network, or {_OTHER_SOURCES}"
    if not is_kmmlu:
        fix += f" (no local file or folder is named {hub_id!r} either)"
    fix += "; if the dataset is already in your Hugging Face cache, set HF_HUB_OFFLINE=1"
    return InputError(
        f"could not reach the Hugging Face hub to download {hub_id}", where=endpoint, fix=fix
    )


def _folder_tables(
    folder: Path, subjects: tuple[str, ...] | None, splits: tuple[str, ...] | None
) -> list[_Table]:
    configs, license = _read_card(folder)
    present = {
        name: files
        for name, files in configs.items()
        if all(_data_files(folder, patterns) for patterns in files.values())
    }
    subjects = subjects or DEFAULT_SUBJECTS
    for subject in subjects:
        if subject in configs and subject not in present:
            missing = [
                p
                for patterns in configs[subject].values()
                for p in patterns
                if not _data_files(folder, [p])
            ]
            raise InputError(
                f"subject {subject!r} is listed in the dataset card but its data files are missing",
                where=f"{folder}: {', '.join(missing)}",
                fix=f"Subjects with data in this folder: {', '.join(present) or 'none'}",
            )
        _check_names((subject,), tuple(present), "subject", where=str(folder))
    tables: list[_Table] = []
    for subject in subjects:
        wanted = splits or tuple(configs[subject])
        _check_names(wanted, tuple(configs[subject]), "split", where=f"{folder}, subject {subject}")
        files = {split: _data_files(folder, configs[subject][split]) for split in wanted}
        for paths in files.values():
            for path in paths:
                _precheck_data_file(path)
        csv_only = all(p.suffix.lower() == ".csv" for paths in files.values() for p in paths)
        splits_of = _load_with_datasets(
            str(folder), subject, hub=False, cache_dir=None, csv_options=csv_only
        )
        for split in wanted:
            paths = files[split]
            where = ", ".join(str(p) for p in paths)
            locate = _file_locator(paths[0]) if len(paths) == 1 and csv_only else _data_row
            tables.append(
                _datasets_table(
                    splits_of[split], str(folder), subject, split, license, where, locate=locate
                )
            )
    return tables


def _precheck_data_file(path: Path) -> None:
    """Catch a bad file before pandas does: its errors name neither the file nor the fix."""
    suffix = path.suffix.lower()
    if suffix not in _TEXT_SUFFIXES:
        return  # parquet, arrow ...: left to datasets
    text = _read_text(path)  # encoding and emptiness, with the line of the first bad byte
    if suffix != ".csv":
        return
    where = str(path)
    header, rows, _ = _parse_csv(text, where)  # quoting and field counts, with line numbers
    resolved = _resolve_columns(header or [], where)
    if isinstance(resolved, str):
        # datasets would only say that the splits' columns differ, without naming the file
        raise _missing_column(resolved, header or [], where)
    if not rows:
        raise InputError(
            "the file has a header but no question rows",
            where=where,
            fix="Add at least one question row",
        )


def _read_card(folder: Path) -> tuple[dict[str, dict[str, list[str]]], str]:
    """The card's configs (subject -> split -> file patterns) and the license to record."""
    from huggingface_hub.repocard import metadata_load

    card = folder / "README.md"
    layout_fix = (
        "Expected a folder with the hub repository's layout: a README.md dataset card whose YAML "
        "header lists `configs` (as HAERAE-HUB/KMMLU's card does), with the files it names "
        "(data/{Subject}-{split}.csv). If this is the data/ folder of such a copy, give its "
        f"parent folder; otherwise {_OTHER_SOURCES}"
    )
    if not card.is_file():
        raise InputError(f"{folder} has no dataset card (README.md)", fix=layout_fix)
    try:
        meta = metadata_load(card)
    except Exception as exc:  # unreadable file, bad YAML, not a mapping
        raise InputError(
            f"cannot read the dataset card's YAML header: {exc}", where=str(card), fix=layout_fix
        ) from exc
    configs: dict[str, dict[str, list[str]]] = {}
    for entry in (meta or {}).get("configs") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("config_name"), str):
            continue
        splits = _card_splits(entry.get("data_files"))
        if splits:
            configs[entry["config_name"]] = splits
    if not configs:
        raise InputError(
            f"{folder} has no `configs` list in its dataset card", where=str(card), fix=layout_fix
        )
    card_license = (meta or {}).get("license")
    if isinstance(card_license, list):
        card_license = ", ".join(str(item) for item in card_license)
    if isinstance(card_license, str) and card_license.lower() == "cc-by-nd-4.0":
        license = KMMLU_LICENSE
    elif card_license:
        license = str(card_license)
    else:
        license = f"unknown (no license in {card})"
    return configs, license


def _card_splits(data_files: object) -> dict[str, list[str]]:
    """Split -> file patterns, from the forms a card's ``data_files`` may take."""
    if isinstance(data_files, str):
        return {"train": [data_files]}
    if not isinstance(data_files, list):
        return {}
    if all(isinstance(item, str) for item in data_files):
        return {"train": [str(item) for item in data_files]} if data_files else {}
    splits: dict[str, list[str]] = {}
    for item in data_files:
        if isinstance(item, dict) and isinstance(item.get("split"), str):
            paths = item.get("path")
            patterns = (
                [paths]
                if isinstance(paths, str)
                else [p for p in paths or [] if isinstance(p, str)]
            )
            splits.setdefault(item["split"], []).extend(patterns)
    return splits


def _data_files(folder: Path, patterns: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        if any(char in pattern for char in "*?["):
            files.extend(sorted(p for p in folder.glob(pattern) if p.is_file()))
        elif (folder / pattern).is_file():
            files.append(folder / pattern)
    return files


def _data_row(index: int) -> str:
    return f"data row {index + 1}"


def _file_locator(path: Path) -> Callable[[int], str]:
    """Row index -> "line N" of ``path``; the file is parsed again only if a row is bad."""

    @functools.cache
    def lines() -> list[int]:
        try:
            return _parse_csv(_read_text(path), str(path))[2]
        except InputError:
            return []

    def locate(index: int) -> str:
        starts = lines()
        return f"line {starts[index]}" if index < len(starts) else _data_row(index)

    return locate


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    datasets = _datasets()
    was_disabled = bool(datasets.are_progress_bars_disabled())
    datasets.disable_progress_bars()  # a few small CSVs: bars would only clutter the CLI output
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _load_with_datasets(
    path: str, subject: str, *, hub: bool, cache_dir: str | Path | None, csv_options: bool
) -> dict[str, _Split]:
    """Split -> (columns, rows) of ``datasets.load_dataset(path, subject)``.

    Every failure becomes an InputError.
    """
    with contextlib.ExitStack() as stack:
        if hub:
            cache = str(cache_dir) if cache_dir is not None else None
        else:
            # datasets keys a local folder's cache on the folder's *name* and the config only
            # (seen with datasets 5.2): an edited file, or another folder of the same name,
            # would be served stale from the cache. A throwaway cache makes every load read
            # the files themselves; they are small.
            cache = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="finmcq-datasets-", ignore_cleanup_errors=True)
            )
        return _load_rows(path, subject, hub=hub, cache_dir=cache, csv_options=csv_options)


def _load_rows(
    path: str, subject: str, *, hub: bool, cache_dir: str | None, csv_options: bool
) -> dict[str, _Split]:
    datasets = _datasets()
    kwargs: dict[str, Any] = {}
    if cache_dir is not None:
        kwargs["cache_dir"] = cache_dir
    if csv_options:
        # Read every cell as the text in the file: otherwise pandas turns an all-numeric option
        # column into numbers ("0.50" -> 0.5) and the words "NA"/"null" into missing values.
        kwargs["keep_default_na"] = False
        kwargs["converters"] = {name: str for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)}
    where = f"{path}, subject {subject}"
    try:
        with _quiet_progress():
            loaded = datasets.load_dataset(path, subject, **kwargs)
            return {
                str(split): ([str(c) for c in data.column_names], data.to_list())
                for split, data in loaded.items()
            }
    except InputError:
        raise
    except ConnectionError as exc:  # includes huggingface_hub's OfflineModeIsEnabled
        if datasets.config.HF_HUB_OFFLINE:
            raise InputError(
                f"{path} is not in the local Hugging Face cache and offline mode is on",
                where="HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set",
                fix=f"Unset it to download the data, or {_OTHER_SOURCES}",
            ) from exc
        raise _hub_unreachable(
            path, str(datasets.config.HF_ENDPOINT), path == KMMLU_HUB_ID
        ) from exc
    except ValueError as exc:
        match = re.search(r"BuilderConfig '(.*?)' not found\. Available: \[(.*?)\]", str(exc))
        if match is None:
            raise InputError(f"cannot load {where}: {exc}", fix=_check_fix(hub)) from exc
        available = tuple(name.strip().strip("'\"") for name in match.group(2).split(","))
        _check_names((subject,), available, "subject", where=path)
        raise InputError(f"cannot load {where}: {exc}", fix=_check_fix(hub)) from exc
    except datasets.exceptions.DatasetNotFoundError as exc:
        raise InputError(
            f"dataset {path} was not found on the Hugging Face hub",
            fix=f"Check the hub id, or {_OTHER_SOURCES}",
        ) from exc
    except FileNotFoundError as exc:
        if hub and "LocalEntryNotFoundError" in str(exc):  # the hub did not answer usefully
            raise _hub_unreachable(
                path, str(datasets.config.HF_ENDPOINT), path == KMMLU_HUB_ID
            ) from exc
        raise InputError(f"cannot load {where}: {exc}", fix=_check_fix(hub)) from exc
    except datasets.exceptions.DatasetGenerationError as exc:
        cause = exc.__cause__ or exc
        raise InputError(
            f"cannot parse the data files of {where}: {type(cause).__name__}: {cause}",
            fix="Check that every file is a valid CSV with KMMLU's columns",
        ) from exc
    except Exception as exc:  # anything else from datasets/pandas/pyarrow: no raw traceback
        raise InputError(
            f"cannot load {where}: {type(exc).__name__}: {exc}", fix=_check_fix(hub)
        ) from exc


def _check_fix(hub: bool) -> str:
    if hub:
        return f"Check the hub id and subject, or {_OTHER_SOURCES}"
    return "Check the folder's README.md configs and data files"


def _datasets_table(
    data: _Split,
    name: str,
    subject: str,
    split: str,
    license: str,
    where: str,
    *,
    locate: Callable[[int], str],
) -> _Table:
    header, rows = data
    if not rows:
        raise InputError("the split has no question rows", where=where, fix="Check the data file")
    return _Table(
        dataset=name,
        subject=subject,
        split=split,
        license=license,
        where=where,
        header=header,
        rows=rows,
        locate=locate,
    )
