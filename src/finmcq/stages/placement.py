"""finmcq, not the LLM, decides where the correct option goes.

The LLM returns the correct option and six distractors; :func:`place` puts the correct one at the
letter the run's seeded plan chose and the distractors, in a seeded order, around it. The plan
(:func:`letter_targets`) makes each letter A–G the key N/7 times (± 1).
"""

from __future__ import annotations

import hashlib
import random

from finmcq.records import LETTERS, McqDraft


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


def letter_targets(total: int, seed: object) -> dict[str, int]:
    """How often each letter must be the key among ``total`` items: N//7, +1 for N%7 letters."""
    base, extra = divmod(total, len(LETTERS))
    order = list(LETTERS)
    seeded_rng("letter-targets", seed).shuffle(order)
    return {letter: base + (1 if order.index(letter) < extra else 0) for letter in LETTERS}


def balanced_sequence(length: int, seed: object) -> list[str]:
    """A seeded shuffle of letters where each letter appears length/7 (± 1) times."""
    targets = letter_targets(length, seed)
    sequence = [letter for letter in LETTERS for _ in range(targets[letter])]
    seeded_rng("sequence", seed).shuffle(sequence)
    return sequence
