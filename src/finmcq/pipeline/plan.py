"""Slot planning: which topic, key letter, key length rank and difficulty each slot gets.

Every choice is a function of the seed (and, for the generated slots, of which source
questions were admitted), never of timing.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass
from functools import cache
from importlib import resources

from finmcq.config import BuildSettings
from finmcq.quality.difficulty import missing_difficulties
from finmcq.records import MARKET_TOPICS, Difficulty, Topic
from finmcq.stages.placement import (
    balanced_ranks,
    balanced_sequence,
    letter_targets,
    rank_targets,
    seeded_rng,
)
from finmcq.stages.relevance import Judged


@cache
def subtopics() -> dict[str, list[str]]:
    text = resources.files("finmcq.data").joinpath("subtopics.toml").read_text("utf-8")
    return {k: list(v) for k, v in tomllib.loads(text).items()}


@dataclass(frozen=True)
class Slot:
    """One place in the final set: its topic, its key letter, its key length rank and, maybe,
    a source question. ``exact_rank``: a balancing redraft, which must hit the rank exactly."""

    slot_id: str
    topic: Topic
    letter: str
    index_in_topic: int
    difficulty: Difficulty
    source: Judged | None = None
    rank: int | None = None
    exact_rank: bool = False


def source_keys(count: int, seed: int) -> tuple[list[str], list[int]]:
    """The key letters and key length ranks of the source slots, in source order."""
    return balanced_sequence(count, (seed, "sources")), balanced_ranks(count, (seed, "sources"))


def difficulty_for(settings: BuildSettings, slot_key: str) -> Difficulty:
    """A slot's target difficulty, drawn by the seed from the settings' mix."""
    easy, medium, _hard = settings.difficulty_mix
    total = sum(settings.difficulty_mix)
    r = seeded_rng("difficulty", settings.seed, slot_key).random() * total
    if r < easy:
        return Difficulty.EASY
    return Difficulty.MEDIUM if r < easy + medium else Difficulty.HARD


def generated_slots(settings: BuildSettings, quotas: dict[Topic, int],
                    admitted: dict[int, Slot]) -> list[Slot]:
    """Slots left after the source questions, with the letters that keep the plan balanced."""
    s = settings
    used = Counter(slot.letter for slot in admitted.values())
    per_topic = Counter(slot.topic for slot in admitted.values())
    needed = {t: quotas.get(t, 0) - per_topic[t] for t in MARKET_TOPICS}
    total = sum(needed.values())
    targets = letter_targets(s.questions, s.seed)
    letters = [ch for ch, n in targets.items() for _ in range(max(0, n - used[ch]))]
    # Only when source questions alone overshoot a letter's target (tiny runs) can this
    # fall short; top up evenly so the count of slots stays exact.
    letters += balanced_sequence(total, (s.seed, "topup"))[: max(0, total - len(letters))]
    seeded_rng("generated-letters", s.seed).shuffle(letters)
    # Key length ranks: the same complement of what the source slots were given.
    ranks_used = Counter(slot.rank for slot in admitted.values())
    ranks = [r for r, n in rank_targets(s.questions, s.seed).items()
             for _ in range(max(0, n - ranks_used[r]))]
    ranks += balanced_ranks(total, (s.seed, "rank-topup"))[: max(0, total - len(ranks))]
    seeded_rng("generated-ranks", s.seed).shuffle(ranks)
    # Difficulty targets: exactly the labels the mix still needs after the source slots.
    levels = missing_difficulties(s.questions, s.difficulty_mix,
                                  Counter(slot.difficulty for slot in admitted.values()))
    levels += [difficulty_for(s, f"topup{i}") for i in range(max(0, total - len(levels)))]
    seeded_rng("generated-difficulty", s.seed).shuffle(levels)
    slots: list[Slot] = []
    for topic in MARKET_TOPICS:
        for j in range(needed[topic]):
            slot_id = f"g{MARKET_TOPICS.index(topic)}{j:06d}"
            slots.append(Slot(slot_id=slot_id, topic=topic, letter=letters[len(slots)],
                              index_in_topic=per_topic[topic] + j,
                              difficulty=levels[len(slots)], rank=ranks[len(slots)]))
    return slots
