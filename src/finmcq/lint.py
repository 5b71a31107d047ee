"""``finmcq lint``: every deterministic per-item check, and the set's answer cues, on any set.

Three inputs are read, by content rather than by name alone:

* an items JSONL (``question``, ``options`` as an object A–G or a list, ``answer`` letter; an
  ``id`` or ``item_id`` if present) — finmcq's ``items_*.jsonl`` and the calibration items are
  this form;
* a ``final_training_data_*.json`` (the pairs: each step-1 prompt is parsed back into question
  and options, the step-2 pair that follows it gives the letter);
* a KMMLU-format CSV (``question``, ``A``–``D``, ``answer`` 1–4).

Each item gets the checks the build runs before any LLM call (:mod:`finmcq.checks`: options,
stem and leaks, position-dependent options, a key far longer than every distractor) and the
set-level duplicate check (:mod:`finmcq.quality.neardup`). Then the set's cue statistics: letter
balance, the key's length-rank distribution, the negative-stem share and duplicates. Whether two
options *mean* the same, or a distractor is also right, needs a judge; lint does not guess.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finmcq import checks
from finmcq.errors import InputError
from finmcq.quality.length_rank import distribution, key_length_rank, option_length
from finmcq.quality.neardup import NearDuplicateFinder, question_text
from finmcq.quality.text import fold_text
from finmcq.records import LETTERS, normalize_text

STEP1 = re.compile(r"### 질문: (?P<question>.*?)\n### 선택지:\n(?P<options>.*?)\n### 정답:\Z",
                   re.DOTALL)
_OPTION_LINE = re.compile(r"^(?P<letter>[A-G])\. (?P<text>.*)$")
NEAR_DUPLICATE_THRESHOLD = 0.6  # the build's default


@dataclass(frozen=True)
class LintItem:
    index: int  # 0-based position in the file
    id: str
    question: str
    options: tuple[str, ...]
    answer: str  # a letter; "" when the file gave none that can be read


@dataclass
class LintResult:
    source: str
    kind: str  # items / training data / kmmlu csv
    options_per_item: int
    items: list[dict[str, Any]] = field(default_factory=list)  # flagged items only
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return bool(self.items)

    def as_json(self) -> dict[str, Any]:
        return {"items": self.items, "stats": self.stats}


# -- reading ----------------------------------------------------------------------------------


def _unreadable(path: Path, why: str, fix: str) -> InputError:
    return InputError(f"Cannot lint {path}: {why}", fix=fix)


_FORMATS = ("an items JSONL (question, options A-G, answer letter), a final_training_data_*.json "
            "from finmcq, or a KMMLU CSV (question, A-D, answer 1-4)")


def read_set(path: Path) -> tuple[str, int, list[LintItem]]:
    """``(kind, options per item, items)`` of the file; ``InputError`` when it cannot be read."""
    if not path.exists():
        raise _unreadable(path, "no such file", "Check the path")
    if path.is_dir():
        raise _unreadable(path, "it is a folder", f"Give one file: {_FORMATS}")
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, f"not a readable UTF-8 file ({exc})", f"Give {_FORMATS}") from None
    stripped = text.lstrip()
    if not stripped:
        raise _unreadable(path, "the file is empty", f"Give {_FORMATS}")
    if path.suffix.lower() == ".csv" or (stripped[0] not in "[{" and "," in stripped[:2000]):
        return "kmmlu csv", 4, _read_csv(path, text)
    if stripped[0] == "[":
        return "training data", len(LETTERS), _read_training_data(path, text)
    return "items", len(LETTERS), _read_jsonl(path, text)


def _read_jsonl(path: Path, text: str) -> list[LintItem]:
    items: list[LintItem] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _unreadable(path, f"line {n} is not JSON ({exc.msg})",
                              "Each line must be one JSON object") from None
        if not isinstance(row, Mapping) or "question" not in row or "options" not in row:
            raise _unreadable(path, f"line {n} has no question and options",
                              "Each line needs question, options (A-G object or list), answer")
        items.append(_item(len(items), row, path, f"line {n}"))
    if not items:
        raise _unreadable(path, "no items in it", f"Give {_FORMATS}")
    return items


def _item(index: int, row: Mapping[str, Any], path: Path, where: str) -> LintItem:
    raw = row["options"]
    if isinstance(raw, Mapping):
        letters = [k for k in LETTERS if k in raw]
        if len(letters) != len(raw):
            raise _unreadable(path, f"{where}: option keys must be letters A-G, got "
                              f"{', '.join(map(str, raw))}", "Name the options A to G")
        options = tuple(str(raw[k]) for k in letters)
    elif isinstance(raw, list):
        options = tuple(str(o) for o in raw)
    else:
        raise _unreadable(path, f"{where}: options must be an object A-G or a list",
                          "Write options as {\"A\": ..., \"B\": ...} or [...]")
    answer = str(row.get("answer") or "").strip().upper()
    ident = row.get("id", row.get("item_id"))
    return LintItem(index, str(ident) if ident is not None else f"#{index + 1}",
                    str(row["question"]), options, answer)


def _read_training_data(path: Path, text: str) -> list[LintItem]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _unreadable(path, f"not JSON ({exc.msg} at line {exc.lineno})",
                          f"Give {_FORMATS}") from None
    if not isinstance(data, list) or not all(isinstance(p, Mapping) for p in data):
        raise _unreadable(path, "not a list of objects", f"Give {_FORMATS}")
    if data and "question" in data[0] and "options" in data[0]:  # items as one JSON array
        return [_item(i, row, path, f"item {i + 1}") for i, row in enumerate(data)]
    if not data or not all({"prompt", "response"} <= set(p) for p in data):
        raise _unreadable(path, "not prompt/response pairs",
                          "finmcq's training data is a list of {prompt, response}")
    answers = {str(p["prompt"]): str(p["response"]).strip() for p in data}
    items: list[LintItem] = []
    for pair in data:
        prompt = str(pair["prompt"])
        match = STEP1.search(prompt)
        if match is None or prompt.count("### 정답:") != 1:
            continue  # a step-2 prompt (it repeats step 1 and the solution)
        options = []
        for line in match["options"].split("\n"):
            option = _OPTION_LINE.match(line)
            if option is None:
                raise _unreadable(path, f"pair {len(items) * 2 + 1}: option line {line!r} is "
                                  "not 'X. text'", "Is this finmcq's training data?")
            options.append(option["text"])
        answer = answers.get(f"{prompt}\n{pair['response']}", "")
        items.append(LintItem(len(items), f"#{len(items) + 1}", match["question"],
                              tuple(options), answer.upper() if len(answer) == 1 else ""))
    if not items:
        raise _unreadable(path, "no step-1 prompt ('### 질문: … ### 선택지: … ### 정답:') in it",
                          "Is this finmcq's final_training_data_*.json?")
    return items


def _read_csv(path: Path, text: str) -> list[LintItem]:
    rows = list(csv.DictReader(text.splitlines()))
    columns = {"question", "A", "B", "C", "D", "answer"}
    if not rows or not columns <= set(rows[0]):
        found = ", ".join(rows[0]) if rows else "no rows"
        raise _unreadable(path, f"a KMMLU CSV needs the columns question, A, B, C, D, answer "
                          f"(found {found})", "Use KMMLU's header row")
    items: list[LintItem] = []
    for n, row in enumerate(rows):
        raw = str(row.get("answer") or "").strip()
        answer = LETTERS[int(raw) - 1] if raw in {"1", "2", "3", "4"} else ""
        items.append(LintItem(n, f"row {n + 1}", str(row["question"] or ""),
                              tuple(str(row[k] or "") for k in "ABCD"), answer))
    return items


# -- checking ---------------------------------------------------------------------------------


def _pair(options: Sequence[str], same: Any) -> str:
    for i in range(len(options)):
        for j in range(i + 1, len(options)):
            if same(options[i], options[j]):
                return f"{LETTERS[i]} and {LETTERS[j]}"
    return ""


def _detail(reason: str, item: LintItem, expected: int) -> str:
    """What exactly a check saw, so the user can find it in the item."""
    options, letters = item.options, LETTERS[:len(item.options)]
    if reason == "wrong_option_count":
        return f"{len(options)} options, expected {expected}"
    if reason == "duplicate_option":
        return "options " + _pair(options, lambda a, b: fold_text(normalize_text(a)) ==
                                  fold_text(normalize_text(b))) + " are the same text"
    if reason == "position_dependent_option":
        hits = [x for x, o in zip(letters, options, strict=True) if checks.positional_option([o])]
        if len(hits) == 1:
            return f"option {hits[0]} depends on other options or its position"
        return "options " + ", ".join(hits) + " depend on other options or their position"
    if reason == "empty_option":
        return "option " + ", ".join(x for x, o in zip(letters, options, strict=True)
                                     if not normalize_text(o)) + " is empty"
    if reason == "answer_leaked_in_stem":
        return f"the key ({item.answer}) is written in the stem"
    if reason == "key_much_longer":
        lengths = [option_length(o) for o in options]
        key = lengths.pop(letters.index(item.answer))
        return f"key {key} characters, longest distractor {max(lengths)}"
    if reason == "key_not_in_options":
        return f"answer {item.answer or '(none)'!r} is not one of {letters[0]}-{letters[-1]}"
    return ""


def item_problems(item: LintItem, expected: int) -> list[dict[str, str]]:
    """Every deterministic check that fails on ``item``, each with its detail."""
    reasons: list[str] = []
    letters = LETTERS[:len(item.options)]
    option_check = checks.option_problems(item.options, expected)
    if option_check:
        reasons.append(option_check)
    if item.answer not in letters:
        reasons.append("key_not_in_options")
    else:
        key = item.options[letters.index(item.answer)]
        stem = checks.stem_problems(item.question, key)
        if stem:
            reasons.append(stem)
        if len(item.options) > 1 and checks.answer_length_cue(
                item.options, item.answer, allow_longest=True):
            reasons.append("key_much_longer")
    return [{"check": r, "detail": _detail(r, item, expected)} for r in dict.fromkeys(reasons)]


def _ranks(items: Sequence[LintItem]) -> Iterator[int]:
    for item in items:
        letters = LETTERS[:len(item.options)]
        if item.answer in letters:
            yield key_length_rank(item.options, letters.index(item.answer), ("lint", item.id))


def lint_set(path: Path) -> LintResult:
    """Lint the file at ``path``; ``InputError`` when it cannot be read."""
    kind, expected, items = read_set(path)
    result = LintResult(str(path), kind, expected)
    flagged: dict[int, list[dict[str, str]]] = {}
    for item in items:
        problems = item_problems(item, expected)
        if problems:
            flagged[item.index] = problems
    finder = NearDuplicateFinder(NEAR_DUPLICATE_THRESHOLD)
    duplicates = finder.find([question_text(i.question, i.options) for i in items])
    for dup in duplicates:
        what = "the same question as" if dup.exact else f"{dup.similarity:.2f} similar to"
        flagged.setdefault(dup.index, []).append(
            {"check": dup.reason, "detail": f"{what} {items[dup.of].id}"})
    result.items = [{"index": i, "id": items[i].id, "problems": flagged[i]}
                    for i in sorted(flagged)]
    result.stats = _cue_stats(items, expected, duplicates, len(flagged))
    return result


def _cue_stats(items: Sequence[LintItem], expected: int, duplicates: Sequence[Any],
               flagged: int) -> dict[str, Any]:
    n = len(items)
    letters = Counter(i.answer for i in items if i.answer in LETTERS[:expected])
    even = n / expected
    ranks = distribution(_ranks(items), n_ranks=expected)
    negative = sum(checks.is_negative_stem(i.question) for i in items)
    checks_failed = Counter(p["check"] for i in items for p in item_problems(i, expected))
    return {
        "items": n,
        "flagged_items": flagged,
        "checks": dict(sorted(checks_failed.items())),
        "letters": {
            "counts": {x: letters.get(x, 0) for x in LETTERS[:expected]},
            "even": round(even, 2),
            "max_off_even": round(max((abs(letters.get(x, 0) - even)
                                       for x in LETTERS[:expected]), default=0.0), 2),
        },
        "key_length_ranks": ranks,
        "negative_stems": {"count": negative, "share": round(negative / max(1, n), 4)},
        "duplicates": {"exact": sum(d.exact for d in duplicates),
                       "near": sum(not d.exact for d in duplicates),
                       "threshold": NEAR_DUPLICATE_THRESHOLD},
    }


# -- output -----------------------------------------------------------------------------------


def render(result: LintResult) -> str:
    """The human-readable report: each flagged item, then the set's cue statistics."""
    stats = result.stats
    lines = [f"{result.source}: {stats['items']} items ({result.kind}, "
             f"{result.options_per_item} options each)"]
    for row in result.items:
        lines.append(f"  {row['id']} (item {row['index'] + 1}):")
        lines += [f"    {p['check']}: {p['detail']}" for p in row["problems"]]
    lines.append(f"{stats['flagged_items']} of {stats['items']} items flagged"
                 + (" (" + ", ".join(f"{k} {v}" for k, v in stats["checks"].items()) + ")"
                    if stats["checks"] else ""))
    letters = stats["letters"]
    lines.append("letters: " + "  ".join(f"{k} {v}" for k, v in letters["counts"].items())
                 + f"  (even {letters['even']}, most off by {letters['max_off_even']})")
    ranks = stats["key_length_ranks"]
    lines.append("key length rank (1 = longest): " + "  ".join(
        f"{r}: {100 * s:.1f}%" for r, s in ranks["shares"].items())
        + f"  (even {100 * ranks['even_share']:.1f}%, most off by "
        f"{100 * ranks['max_deviation']:.1f} points)")
    neg = stats["negative_stems"]
    lines.append(f"negative stems: {neg['count']} ({100 * neg['share']:.1f}%)")
    dup = stats["duplicates"]
    lines.append(f"duplicate questions: {dup['exact']} exact, {dup['near']} near "
                 f"(Jaccard ≥ {dup['threshold']})")
    return "\n".join(lines)
