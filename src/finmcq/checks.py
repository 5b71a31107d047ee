"""Deterministic checks on items and solutions. Each returns a drop reason or None.

The reason strings are the keys of the stats' drop counters, so they are stable names.
Options and stems are compared in their folded form (:func:`finmcq.quality.text.fold_text`:
NFKC, casefolded, without spaces or soft punctuation), so "같은 말." and "같은  말" are the same
option, and a key written into the stem with other spacing still counts as leaked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from finmcq.quality.text import fold_text
from finmcq.records import LETTERS, normalize_text

# Options whose meaning depends on the other options or on their position. After finmcq reorders
# the options such an option is meaningless ("위 보기 모두 옳다", "A와 C 모두 옳다", "정답 없음").
# Two kinds, kept apart so that content that merely *contains* "모두 해당한다" ("공모펀드는 모두
# 해당한다", "ETF와 ETN 모두 거래소에 상장되어 있다") is not mistaken for a reference:
#
# 1. words that point at other options wherever they stand in the option;
_REFERS_TO_OPTIONS = re.compile(
    r"(?<![가-힣])((위|상기)\s*의?\s*(보기|선택지|답지|항목|것)"
    r"|(앞|이상)\s*의?\s*(보기|선택지|답지)"
    r"|(나머지|모든)\s*(보기|선택지|답지)"
    r"|(보기|선택지|답지)\s*(중|가운데)\s*(에서\s*)?"
    r"(옳|맞|틀|정답|해당|하나|둘|셋|넷|두|세|네|어느|무엇|모두|[0-9])"
    r"|정답\s*(은|이|으로)?\s*(없|[A-G](?![A-Za-z])))"
    r"|[①-⑳㉠-㉭㈀-㈍]\s*([,·~]|과|와|및)\s*[①-⑳㉠-㉭㈀-㈍]"
    r"|(^|[\s(,])[ㄱ-ㅎ]\s*([,·~]|과|와|및)"
    r"|\b(all|none|both|neither)\s+of\s+the\s+(above|options|choices|answers)\b",
    re.IGNORECASE,
)
# 2. whole options that only make sense as a verdict on the others ("모두 옳다", "이상 모두
#    해당한다", "둘 다 틀리다", "A, C", "ㄱ과 ㄷ", "해당 없음"), matched against the entire option.
_VERDICT = (r"(옳|맞|틀|정답|해당|포함|아니|고르|고른|그렇|정확|적절|부적절|타당|참|거짓)"
            r"[가-힣]*")
_QUANTIFIER = r"(모두|전부|다|둘\s*다|셋\s*다|모든\s*것)"
_OPTION_LABEL = r"(\(?[A-G]\)?|\(?[ㄱ-ㅎ]\)?|\([가-사]\)|[가나다라마바사]|[①-⑳㉠-㉭㈀-㈍])"
_WHOLE_VERDICT = re.compile(
    r"((위|상기|앞|이상)\s*의?\s*(것|보기|선택지|항목|내용|설명|진술)?\s*(들)?\s*(이|은|는|가)?\s*"
    r"|(보기|선택지|설명|진술)\s*(들)?\s*(이|은|는|가)?\s*)?"
    + _QUANTIFIER + r"(\s*" + _VERDICT + r")?"
    + r"|(정답|해당|답|해당\s*사항|(옳|맞|틀린|옳지\s*않|해당하|해당되)[은는]?\s*것)"
      r"\s*(이|은|는|가)?\s*없(음|다|습니다|는\s*것)?"
    + r"|" + _OPTION_LABEL + r"(\s*(,|·|와|과|및|그리고|~|-)\s*" + _OPTION_LABEL + r")*"
      r"(\s*(모두|둘\s*다|전부|만|뿐))?\s*(이|가|은|는)?(\s*" + _VERDICT + r")?"
    + r"|(all|none|both|neither)(\s+of\s+(these|them))?",
    re.IGNORECASE,
)
_TRAILING_MARKS = ".。!?~…"


# Markers of finmcq's own prompt layout; an item containing them would break the pairing.
_FORMAT_MARKERS = re.compile(r"###\s*(질문|선택지|정답)|^\s*[A-G]\.\s", re.MULTILINE)

# Phrases by which a solution admits it was handed the key instead of deriving it.
_GIVEN_KEY = re.compile(
    r"(주어진|제시된|알려준|알려진|제공된)\s*정답|정답(이|은|을)\s*(주어|제시|제공|알려)"
    r"|정답\s*키|answer key|given answer",
    re.IGNORECASE,
)

# Stems that ask for the wrong statement ("옳지 않은 것은?"): counted, so the set is neither
# without them nor dominated by them.
_NEGATIVE_STEM = re.compile(
    r"옳지\s*않은|틀린|적절하지\s*않은|아닌\s*것|거리가\s*먼|잘못된|해당하지\s*않는|바르지\s*않은"
    r"|부적절한|맞지\s*않는|없는\s*것은"
)
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")

# An option review that does not review: a bare back-reference or a skip.
_SKIPPED_REVIEW = re.compile(
    r"생략|위와\s*같|앞(의)?\s*(선택지|보기|설명)?(와|과)\s*같|[A-G]\s*(와|과)\s*같|마찬가지"
    r"|동일한\s*이유|상동|이하\s*같|같은\s*이유"
)
MIN_REVIEW_CHARS = 6  # folded characters; "틀리다." alone explains nothing
BACK_REFERENCE_MAX_CHARS = 30  # a back-reference plus real content is a review

# The answer-length cue: a key this much longer than every distractor is dropped everywhere.
KEY_MUCH_LONGER_RATIO = 1.5
KEY_MUCH_LONGER_CHARS = 10


def refers_to_other_options(option: str) -> bool:
    """Whether ``option`` points at other options or is a verdict on them ("위 보기 모두 옳다",
    "A와 C", "정답 없음"), as opposed to content that happens to say "모두" or "없다"."""
    text = normalize_text(option)
    if _REFERS_TO_OPTIONS.search(text):
        return True
    return _WHOLE_VERDICT.fullmatch(text.rstrip(_TRAILING_MARKS).strip()) is not None


def positional_option(options: Sequence[str]) -> str | None:
    if any(refers_to_other_options(option) for option in options):
        return "position_dependent_option"
    return None


def option_problems(options: Sequence[str], count: int = len(LETTERS)) -> str | None:
    """``count`` (7) non-empty, single-line, distinct and position-independent options.

    Distinct means distinct after folding (:func:`fold_text`: Unicode NFKC, case, spacing and soft
    punctuation); only that is certainly a defect. Options one number, one swapped term or one
    direction apart ("…700만원을 추가로 내야 한다" / "…100만원을…", "20%에서 25%로 높아진다" /
    "20%에서 15%로 낮아진다") are how exams build distractors and pass here; whether two options
    *mean* the same is the second-answer judge's question.
    """
    if len(options) != count:
        return "wrong_option_count"
    normalized = [normalize_text(o) for o in options]
    if any(not o for o in normalized):
        return "empty_option"
    if any("\n" in o or _FORMAT_MARKERS.search(o) for o in options):
        return "format_marker_in_option"
    if len({fold_text(o) for o in normalized}) != len(normalized):
        return "duplicate_option"
    return positional_option(options)


# Text addressed to the model rather than to a student: prompt-injection attempts in a source
# question (or copied into a rewrite). Such items are dropped, never trained on.
_INSTRUCTION = re.compile(
    r"(이전|앞의|위의|기존|모든)\s*(지시|지침|명령|규칙|프롬프트)[^.?!\n]{0,12}(무시|잊)"
    r"|(지시|지침|명령)(을|를)?\s*무시"
    r"|시스템\s*프롬프트|system\s*prompt"
    r"|ignore\s+(all\s+|the\s+)?(previous|prior|above)\s+instructions"
    r"|</?\s*입력\s*>",
    re.IGNORECASE,
)


def instruction_problems(texts: Sequence[str]) -> str | None:
    """Instructions to the model hidden in question text (prompt injection)."""
    if any(_INSTRUCTION.search(normalize_text(t)) for t in texts):
        return "instruction_in_text"
    return None


def stem_problems(question: str, answer_text: str) -> str | None:
    """A stem that leaks its key verbatim or carries the prompt's own layout markers."""
    stem = normalize_text(question)
    if not stem:
        return "empty_question"
    if _FORMAT_MARKERS.search(question):
        return "format_marker_in_question"
    if instruction_problems([question, answer_text]):
        return "instruction_in_text"
    key = normalize_text(answer_text)
    if len(key) >= 4 and key.casefold() in stem.casefold():
        return "answer_leaked_in_stem"
    folded_key = fold_text(key)
    if len(folded_key) >= 6 and folded_key in fold_text(stem):  # same words, other spacing
        return "answer_leaked_in_stem"
    return None


def item_problems(question: str, options: Sequence[str], answer: str) -> str | None:
    """Every deterministic check on a placed 7-option item; the first failure's reason."""
    if answer not in LETTERS:
        return "key_not_in_A_to_G"
    return option_problems(options) or stem_problems(question, options[LETTERS.index(answer)])


def key_is_longest(options: Sequence[str], answer: str) -> bool:
    """True when the key is strictly longer than every other option (ties give no cue)."""
    lengths = [len(normalize_text(o)) for o in options]
    key = lengths.pop(LETTERS.index(answer))
    return bool(lengths) and key > max(lengths)


def answer_length_cue(options: Sequence[str], answer: str, *,
                      allow_longest: bool) -> str | None:
    """The answer-length cue a model learns to exploit.

    A key far longer than every distractor is always dropped. A key that is merely the longest is
    dropped unless ``allow_longest`` (the pipeline allows it in a seeded share of slots, which
    keeps the share of key-is-longest items under its cap without depending on timing).
    """
    if not key_is_longest(options, answer):
        return None
    lengths = [len(normalize_text(o)) for o in options]
    key = lengths.pop(LETTERS.index(answer))
    longest_other = max(lengths)
    much = key - longest_other >= KEY_MUCH_LONGER_CHARS
    if much and key >= KEY_MUCH_LONGER_RATIO * longest_other:
        return "key_much_longer"
    return None if allow_longest else "key_longest_option"


def shape_problems(question: str, options: Sequence[str], answer: str, *,
                   allow_key_longest: bool) -> str | None:
    """Leak and shape checks on a placed item: options, stem, then the answer-length cue."""
    return item_problems(question, options, answer) or answer_length_cue(
        options, answer, allow_longest=allow_key_longest)


def is_negative_stem(question: str) -> bool:
    """Whether the stem asks for the wrong statement ("옳지 않은 것은?"), by its last sentence."""
    sentences = [s for s in _SENTENCE_END.split(normalize_text(question)) if s]
    return bool(sentences) and bool(_NEGATIVE_STEM.search(sentences[-1]))


def solution_problems(final_answer: str, key: str, texts: Sequence[str]) -> str | None:
    """A solution must conclude with the key and never say it was handed the key."""
    if final_answer != key:
        return "solution_wrong_letter"
    if any(_GIVEN_KEY.search(t) for t in texts):
        return "solution_admits_given_key"
    if any(_FORMAT_MARKERS.search(t) for t in texts):
        return "format_marker_in_solution"
    return None


def review_problems(reviews: Sequence[str]) -> str | None:
    """Every option review must review: no skips, no bare "위와 같음", no copy of another review."""
    folded = [fold_text(r) for r in reviews]
    for text, fold in zip(reviews, folded, strict=True):
        if len(fold) < MIN_REVIEW_CHARS:
            return "solution_skips_options"
        if len(fold) <= BACK_REFERENCE_MAX_CHARS and _SKIPPED_REVIEW.search(normalize_text(text)):
            return "solution_skips_options"
    if len(set(folded)) != len(folded):
        return "solution_skips_options"
    return None
