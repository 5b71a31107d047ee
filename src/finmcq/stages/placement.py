"""finmcq, not the LLM, decides where the correct option goes.

The LLM returns the correct option and six distractors; :func:`place` puts the correct one at the
letter the run's seeded plan chose and the distractors, in a seeded order, around it. The plan
(:func:`letter_targets`) makes each letter A–G the key N/7 times (± 1). The key's length rank
is planned the same way (:func:`rank_targets`): each rank 1–7 is asked for N/7 times (± 1).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import TypeVar

from finmcq.records import LETTERS, McqDraft

T = TypeVar("T")
RANK_SYMBOLS: tuple[int, ...] = tuple(range(1, len(LETTERS) + 1))


def seeded_rng(*parts: object) -> random.Random:
    """A random.Random seeded from the parts, stable across processes and Python versions."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def place(draft: McqDraft, letter: str, seed: object) -> tuple[tuple[str, ...], str]:
    """The 7 options in final order with the correct one at ``letter``."""
    distractors = [d.strip() for d in draft.distractors]
    seeded_rng("place", seed).shuffle(distractors)
    index = LETTERS.index(letter)
    options = [*distractors[:index], draft.correct_option.strip(), *distractors[index:]]
    return tuple(options), letter


def _targets(total: int, symbols: Sequence[T], *seed: object) -> dict[T, int]:
    base, extra = divmod(total, len(symbols))
    order = list(symbols)
    seeded_rng(*seed).shuffle(order)
    return {s: base + (1 if order.index(s) < extra else 0) for s in symbols}


def _sequence(targets: dict[T, int], *seed: object) -> list[T]:
    sequence = [s for s, n in targets.items() for _ in range(n)]
    seeded_rng(*seed).shuffle(sequence)
    return sequence


def letter_targets(total: int, seed: object) -> dict[str, int]:
    """How often each letter must be the key among ``total`` items: N//7, +1 for N%7 letters."""
    return _targets(total, LETTERS, "letter-targets", seed)


def balanced_sequence(length: int, seed: object) -> list[str]:
    """A seeded shuffle of letters where each letter appears length/7 (± 1) times."""
    return _sequence(letter_targets(length, seed), "sequence", seed)


def rank_targets(total: int, seed: object) -> dict[int, int]:
    """How often each key length rank 1–7 is asked for among ``total`` slots (N/7 ± 1)."""
    return _targets(total, RANK_SYMBOLS, "rank-targets", seed)


def balanced_ranks(length: int, seed: object) -> list[int]:
    """A seeded shuffle of ranks 1–7, each length/7 (± 1) times; independent of the letters."""
    return _sequence(rank_targets(length, seed), "rank-sequence", seed)
