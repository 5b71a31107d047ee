"""``finmcq build --holdout SHARE``: keep a share of the questions out of the training file.

The held-out questions are written to ``heldout_{timestamp}.jsonl`` (one item record per line,
with its step-1 prompt), so a model can be fine-tuned on the training file and measured with
``finmcq eval --set RUN_DIR`` on questions it has never seen.

How many: ``round(share × questions)``, at least one and at most all but one. The build still
makes ``--questions`` verified questions; the training file then holds
``2 × (questions − held out)`` pairs (1,800 for 1,000 questions at 0.1), and the stats say both
counts. Which: balanced over topics and letters, deterministically from the seed — each topic
gives its share (largest remainder), and within a topic every pick takes the letter held out
least so far, so the held-out letters come out within about one of each other.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from finmcq.records import LETTERS


def holdout_count(total: int, share: float) -> int:
    """How many of ``total`` questions ``share`` holds out (0 when ``share`` is 0)."""
    if share <= 0 or total < 2:
        return 0
    return min(total - 1, max(1, round(share * total)))


def choose_holdout(items: Iterable[tuple[str, str, str]], share: float,
                   seed: int) -> frozenset[str]:
    """The ids to hold out of ``(item_id, topic, letter)`` triples; deterministic in ``seed``."""
    triples = list(items)
    n_hold = holdout_count(len(triples), share)
    if not n_hold:
        return frozenset()
    rng = random.Random(f"holdout|{seed}")
    cells: dict[tuple[str, str], list[str]] = {}
    for item_id, topic, letter in triples:
        cells.setdefault((topic, letter), []).append(item_id)
    for key in sorted(cells):  # sorted first: the choice does not depend on the input order
        cells[key].sort()
        rng.shuffle(cells[key])
    quotas = _topic_quotas(Counter(topic for _, topic, _ in triples), n_hold)
    letter_rank = {letter: i for i, letter in enumerate(rng.sample(LETTERS, len(LETTERS)))}
    held: list[str] = []
    held_letters: Counter[str] = Counter()
    taken: Counter[str] = Counter()
    while len(held) < n_hold:  # round robin over topics, one pick each while its quota lasts
        for topic in sorted(quotas):
            if taken[topic] >= quotas[topic]:
                continue
            letters = [x for x in LETTERS if cells.get((topic, x))]
            letter = min(letters, key=lambda x: (held_letters[x], letter_rank.get(x, 99)))
            held.append(cells[(topic, letter)].pop())
            held_letters[letter] += 1
            taken[topic] += 1
    return frozenset(held)


def _topic_quotas(counts: Counter[str], n_hold: int) -> dict[str, int]:
    """Largest-remainder split of ``n_hold`` over topics in proportion to their counts."""
    total = sum(counts.values())
    raw = {t: n_hold * c / total for t, c in counts.items()}
    quotas = {t: int(v) for t, v in raw.items()}
    for t in sorted(raw, key=lambda t: (quotas[t] - raw[t], t))[:n_hold - sum(quotas.values())]:
        quotas[t] += 1
    return quotas


def holdout_stats(share: float, records: Iterable[dict[str, Any]], file_name: str | None,
                  training_questions: int) -> dict[str, Any]:
    """The stats file's ``holdout`` section (``records``: the held-out item records)."""
    rows = list(records)
    return {
        "share": share,
        "questions": len(rows),
        "training_questions": training_questions,
        "training_pairs": 2 * training_questions,
        "file": file_name,
        "by_topic": dict(sorted(Counter(r["topic"] for r in rows).items())),
        "by_letter": dict(sorted(Counter(r["answer"] for r in rows).items())),
    }
