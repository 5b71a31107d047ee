"""What ``finmcq eval --set`` measures on: finmcq questions or KMMLU itself, as step-1 prompts.

A set is read from

* a run directory (the ``--out`` of ``finmcq build``): its held-out questions
  (``heldout_{ts}.jsonl``, written by ``--holdout``) when it has them, else its delivered items;
* a file: ``heldout_*.jsonl`` or ``items_*.jsonl`` of a run, a training file
  (``final_training_data_*.json``), or a KMMLU-column ``.csv``/``.jsonl``;
* KMMLU: the hub id (``HAERAE-HUB/KMMLU``, or ``kmmlu`` for short) or a local folder in the hub
  layout, through the same loader the build uses; the finance-adjacent subjects' test split
  by default, 4 options A–D.

Every question becomes an :class:`EvalItem` whose ``prompt`` is the step-1 prompt exactly as the
training pairs write it (taken from the training file where there is one), with its key, topic
(a KMMLU subject for KMMLU) and difficulty.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finmcq.errors import InputError
from finmcq.quality.contamination import FINANCE_ADJACENT_SUBJECTS
from finmcq.records import LETTERS
from finmcq.rundir import find_run, load_run
from finmcq.sources import KMMLU_HUB_ID, load_source
from finmcq.stages.assemble import DEFAULT_INSTRUCTION, DEFAULT_LAYOUT

KMMLU_ALIASES = ("kmmlu", "KMMLU")
KMMLU_DEFAULT_SPLITS = ("test",)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_SET_FIX = ("Give a run directory (the --out of `finmcq build`), its heldout_*.jsonl / "
            "items_*.jsonl / final_training_data_*.json, a KMMLU .csv/.jsonl, a local KMMLU "
            f"folder, or the hub id {KMMLU_HUB_ID} (or just kmmlu)")


@dataclass(frozen=True)
class EvalItem:
    """One question to ask: the step-1 prompt, its key and what to break the score down by."""

    item_id: str
    prompt: str
    answer: str
    letters: tuple[str, ...]
    topic: str | None = None
    difficulty: str | None = None


@dataclass(frozen=True)
class EvalSet:
    """The questions of one ``--set``, and what they are (for the report)."""

    name: str  # what the user gave
    kind: str  # "heldout" | "items" | "training" | "kmmlu"
    items: tuple[EvalItem, ...]
    note: str | None = None  # e.g. a warning that these questions were trained on


def step1_prompt(question: str, options: Sequence[str],
                 instruction: str = DEFAULT_INSTRUCTION) -> str:
    """The step-1 prompt for a question, in the training pairs' layout (any number of options)."""
    lines = "\n".join(f"{letter}. {text}" for letter, text in zip(LETTERS, options, strict=False))
    return DEFAULT_LAYOUT.format(instruction=instruction, question=question, options=lines)


def load_eval_set(spec: str, *, limit: int | None = None, seed: int = 0,
                  subjects: Sequence[str] | None = None,
                  splits: Sequence[str] | None = None) -> EvalSet:
    """Read the set ``spec`` names; ``limit`` keeps a seeded sample of that many, in set order."""
    text = str(spec).strip()
    if not text:
        raise InputError("--set is empty", fix=_SET_FIX)
    path = Path(text).expanduser()
    if path.is_dir():
        if any(path.glob("processing_stats_*.json")):
            loaded = _from_run(path)
        else:
            loaded = _from_kmmlu(str(path), subjects, splits)
    elif path.is_file():
        loaded = _from_file(path, subjects, splits)
    elif text in KMMLU_ALIASES or _HUB_ID.match(text):
        loaded = _from_kmmlu(KMMLU_HUB_ID if text in KMMLU_ALIASES else text, subjects, splits)
    else:
        raise InputError(f"the eval set {text!r} does not exist", fix=_SET_FIX)
    if not loaded.items:
        raise InputError(f"the eval set {text} has no questions", fix=_SET_FIX)
    items = loaded.items
    if limit is not None and limit < len(items):
        if limit < 1:
            raise InputError(f"--limit {limit} must be at least 1", fix="Give a positive --limit")
        keep = sorted(random.Random(seed).sample(range(len(items)), limit))
        items = tuple(items[i] for i in keep)
    return EvalSet(name=text, kind=loaded.kind, items=items, note=loaded.note)


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------


def _from_run(run_dir: Path) -> EvalSet:
    files = find_run(run_dir)
    heldout = run_dir / f"heldout_{files.timestamp}.jsonl"
    if heldout.is_file():
        return _from_jsonl(heldout, None, None)
    run = load_run(run_dir)
    items = tuple(_item_from_record(record, where=f"{files.items.name} line {i + 1}",
                                    prompt=run.pairs[2 * i]["prompt"])
                  for i, record in enumerate(run.items))
    return EvalSet(name=str(run_dir), kind="items", items=items, note=_TRAINED_NOTE)


_TRAINED_NOTE = ("these are the questions of the training file: a model fine-tuned on it has "
                 "seen them; build with --holdout 0.1 to measure on questions it has not seen")


def _from_file(path: Path, subjects: Sequence[str] | None,
               splits: Sequence[str] | None) -> EvalSet:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _from_training_file(path)
    if suffix == ".jsonl":
        first = _first_json_line(path)
        if isinstance(first, dict) and isinstance(first.get("options"), dict):
            return _from_jsonl(path, subjects, splits)
    if suffix in (".jsonl", ".csv"):
        return _from_kmmlu(str(path), subjects, splits)
    raise InputError(f"unsupported eval set file type {path.suffix or '(none)'!r}",
                     where=str(path), fix=_SET_FIX)


def _first_json_line(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    return json.loads(line)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {path.name}: {exc}", where=str(path),
                         fix="Give a UTF-8 JSON Lines file") from None
    return None


def _from_jsonl(path: Path, subjects: Sequence[str] | None,
                splits: Sequence[str] | None) -> EvalSet:
    """A finmcq ``heldout_*.jsonl`` or ``items_*.jsonl`` (one item record per line)."""
    if subjects or splits:
        raise InputError("--subjects/--splits apply to KMMLU sets only", where=str(path),
                         fix="Drop them for a finmcq items or held-out file")
    items: list[EvalItem] = []
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path.name}: {exc}", where=str(path),
                         fix="Give a UTF-8 JSON Lines file") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", where=where,
                             fix="Each line must be one item record as finmcq writes it") from None
        items.append(_item_from_record(record, where=where))
    heldout = path.name.startswith("heldout_")
    return EvalSet(name=str(path), kind="heldout" if heldout else "items", items=tuple(items),
                   note=None if heldout else _TRAINED_NOTE)


def _item_from_record(record: Any, *, where: str, prompt: str | None = None) -> EvalItem:
    if not isinstance(record, dict):
        raise InputError("an item record must be a JSON object", where=where, fix=_SET_FIX)
    options = record.get("options")
    answer = record.get("answer")
    question = record.get("question")
    if not (isinstance(options, dict) and options and isinstance(question, str)
            and isinstance(answer, str) and answer in options):
        raise InputError("an item record needs question, options {A: ...} and answer (a "
                         "letter among the options)", where=where, fix=_SET_FIX)
    letters = tuple(sorted(options))
    text = prompt or record.get("prompt") or step1_prompt(question,
                                                          [options[k] for k in letters])
    return EvalItem(item_id=str(record.get("item_id") or where), prompt=str(text), answer=answer,
                    letters=letters, topic=_opt_str(record.get("topic")),
                    difficulty=_opt_str(record.get("difficulty")))


def _opt_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _from_training_file(path: Path) -> EvalSet:
    """A training file: its step-1 prompts, keyed by the step-2 responses (no topic known)."""
    try:
        pairs = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {path.name}: {exc}", where=str(path), fix=_SET_FIX) from None
    if not isinstance(pairs, list) or len(pairs) % 2 or not all(
            isinstance(p, dict) and isinstance(p.get("prompt"), str)
            and isinstance(p.get("response"), str) for p in pairs):
        raise InputError("not a finmcq training file: expected a JSON array of prompt/response "
                         "pairs, two per question", where=str(path), fix=_SET_FIX)
    items = []
    for i in range(0, len(pairs), 2):
        prompt, letter = pairs[i]["prompt"], pairs[i + 1]["response"].strip()
        if letter not in LETTERS:
            raise InputError(f"pair {i + 2} should answer one letter A-G, it answers "
                             f"{letter[:20]!r}", where=str(path), fix=_SET_FIX)
        letters = tuple(sorted(set(re.findall(r"^([A-G])\. ", prompt, re.M)))) or LETTERS
        items.append(EvalItem(item_id=f"pair{i // 2 + 1}", prompt=prompt, answer=letter,
                              letters=letters))
    return EvalSet(name=str(path), kind="training", items=tuple(items), note=_TRAINED_NOTE)


def _from_kmmlu(source: str, subjects: Sequence[str] | None,
                splits: Sequence[str] | None) -> EvalSet:
    """KMMLU (hub id, folder or file in its columns): 4 options A-D, topic = subject."""
    is_file = Path(source).is_file()
    chosen_subjects = subjects if subjects or is_file else _present_subjects(source)
    chosen_splits = splits if splits or is_file else KMMLU_DEFAULT_SPLITS
    questions = load_source(source, chosen_subjects, chosen_splits, deduplicate=False)
    items = tuple(
        EvalItem(item_id=q.uid, prompt=step1_prompt(q.question, q.options), answer=q.answer,
                 letters=("A", "B", "C", "D"), topic=q.provenance.subject)
        for q in questions)
    return EvalSet(name=source, kind="kmmlu", items=items)


def _present_subjects(source: str) -> tuple[str, ...]:
    """The finance-adjacent subjects; for a local folder, those it holds (at least one)."""
    folder = Path(source)
    if not folder.is_dir():
        return FINANCE_ADJACENT_SUBJECTS
    names = {p.name for p in folder.rglob("*") if p.is_file()}
    present = tuple(s for s in FINANCE_ADJACENT_SUBJECTS if any(n.startswith(s) for n in names))
    return present or FINANCE_ADJACENT_SUBJECTS
