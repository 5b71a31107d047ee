"""KMMLU extraction artefacts, cleaned before an LLM reads a source question.

KMMLU's rows were extracted from exam PDFs, and some carry the marks of it: a sentence end
split off (``원이 다 .``), a lost decimal point (``－0 1%`` for ``-0.1%``), full-width signs
(``Q＝30－P``) and English terms whose spaces were lost (``interestrateparitytheory``). The
rewrite repairs them, but relevance judges and generate's few-shot examples would see them raw.

:func:`clean_text` repairs only what is certainly an artefact, the same way every time (no LLM):
each rule matches a form no Korean exam writes on purpose. The source question itself keeps the
original text (items files: ``source_question`` and ``provenance``); only what is sent is cleaned.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
from functools import cache, lru_cache
from pathlib import Path

# Full-width ASCII forms (！ to ～) and the ideographic space: their ASCII twins. Translated
# only when present: str.translate with a table costs ~50 µs per 500 Hangul characters.
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_ANY_FULL_WIDTH = re.compile("[\uff01-\uff5e\u3000]")

# "원이 다 ." / "나타난 다 ." / "감소한 다": a verb ending split from its stem. Only after 이, 있,
# 없, 같 or a syllable ending in ㄴ (한, 된, 난, 진 ...; not the particle 은), and only when 다
# stands alone; after 는 ("갖는 다 .") only before a full stop, since "…는 다 …" can mean "all".
_N_FINAL = "".join(chr(c) for c in range(0xAC00, 0xD7A4) if (c - 0xAC00) % 28 == 4
                   and chr(c) not in "은는")
_SPLIT_ENDING = re.compile(rf"(?<=[가-힣0-9%)])([이있없같{_N_FINAL}]) 다(?=\s*[.,]|\s|$)"
                           r"|(?<=[가-힣])(는) 다(?=\s*\.)")
# "가정하자 ." : a space before a sentence's full stop, after Korean text.
_SPACE_BEFORE_STOP = re.compile(r"(?<=[가-힣]) +\.(?=\s|$)")
# "0 1%", "0 7이고": a lost decimal point after 0 (nobody writes "0 7" for anything else), and
# after another single digit when a percent sign follows ("1 4%").
_LOST_POINT_ZERO = re.compile(r"(?<![\d.,])0 (\d{1,3})(?![\d,])")
_LOST_POINT_PERCENT = re.compile(r"(?<![\d.,])([1-9]) (\d{1,2})%")
# English written without spaces: long lower-case runs that are not a word of their own.
_ENGLISH_RUN = re.compile(r"(?<![A-Za-z])[a-z]{12,}(?![A-Za-z])")
_SHORT_WORDS = frozenset({"of", "in", "on", "to", "at", "by", "an", "as", "or"})


@cache
def _splitter() -> object:
    import wordninja  # an English unigram model (Wikipedia frequencies); loaded on first use

    return wordninja.DEFAULT_LANGUAGE_MODEL


def split_english(run: str) -> str:
    """``interestrateparitytheory`` → ``interest rate parity theory``; unchanged unless every
    part is a real word (3+ letters, or a short function word like "of")."""
    known = _known_splits()
    if run in known:
        return known[run]
    model = _splitter()
    if run in model._wordcost:  # type: ignore[attr-defined]  # a word already: "redenomination"?
        result = run
    else:
        parts: list[str] = model.split(run)  # type: ignore[attr-defined]
        unsure = len(parts) < 2 or any(len(p) < 3 and p not in _SHORT_WORDS for p in parts)
        result = run if unsure else " ".join(parts)  # not sure: leave it as the source wrote it
    known[run] = result
    _save_splits(known)
    return result


# Splits already made, kept in the cache folder: loading wordninja's model (125,000 words, a
# logarithm each) cost ~0.15 s of CPU in every build of KMMLU Economics, for the same ~30 runs.
# The file is named by wordninja's version and this module's code, so either change starts a
# new one.


@cache
def _known_splits() -> dict[str, str]:
    path = _splits_path()
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def _splits_path() -> Path | None:
    from finmcq import source_cache

    root = source_cache.cache_root("wordsplit")
    if root is None:
        return None
    try:
        version = importlib.metadata.version("wordninja")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    return root / f"splits-{version}-{code}.json"


def _save_splits(known: dict[str, str]) -> None:
    path = _splits_path()
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(known, ensure_ascii=False, sort_keys=True), "utf-8")
        os.replace(tmp, path)
    except OSError:  # a cache that cannot be written is skipped
        with contextlib.suppress(OSError):
            tmp.unlink()


@lru_cache(maxsize=8192)  # a source's texts are cleaned for the estimate and for each stage
def clean_text(text: str) -> str:
    """``text`` with KMMLU's extraction artefacts repaired (see the module docstring)."""
    out = text.translate(_FULL_WIDTH) if _ANY_FULL_WIDTH.search(text) else text
    out = _SPLIT_ENDING.sub(lambda m: (m.group(1) or m.group(2)) + "다", out)
    out = _SPACE_BEFORE_STOP.sub(".", out)
    out = _LOST_POINT_ZERO.sub(r"0.\1", out)
    out = _LOST_POINT_PERCENT.sub(r"\1.\2%", out)
    return _ENGLISH_RUN.sub(lambda m: split_english(m.group()), out)
