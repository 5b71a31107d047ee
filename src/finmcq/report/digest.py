"""The items file in one pass: the few integers per item the charts need, and the sample.

:class:`ItemDigest` keeps per item only its topic and origin, the key's length rank and the
lengths of its texts, plus the seeded sample of whole items shown in the report.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from finmcq.quality import length_rank

SAMPLE_DELIVERED = 20


@dataclass
class ItemDigest:
    """What the report needs from the items, gathered in one pass over the items file.

    Per item only a few integers are kept (and full items only for the sample), so a report of
    a 100,000-question run needs megabytes, not the gigabytes of its items file.
    """

    n: int = 0
    by_origin: Counter[tuple[str, str]] = field(default_factory=Counter)
    ranks: list[int] = field(default_factory=list)
    question_lens: list[int] = field(default_factory=list)
    option_lens: list[int] = field(default_factory=list)
    solution_lens: list[int] = field(default_factory=list)
    licences: set[str] = field(default_factory=set)
    rewritten: int = 0
    samples: list[Mapping[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, items: Iterable[Mapping[str, Any]], total: int, seed: int,
           k: int = SAMPLE_DELIVERED) -> ItemDigest:
        """Digest ``items`` (``total`` of them); keep the seeded sample of ``k`` whole items."""
        chosen = set(random.Random(f"report:{seed}").sample(range(total), min(k, total)))
        digest = cls()
        for index, item in enumerate(items):
            digest.add(item)
            if index in chosen:
                digest.samples.append(item)
        return digest

    def add(self, item: Mapping[str, Any]) -> None:
        self.n += 1
        self.by_origin[(item["topic"], item.get("origin", "?"))] += 1
        self.ranks.append(key_length_rank(item))
        self.question_lens.append(len(item["question"]))
        self.option_lens.extend(len(text) for text in item["options"].values())
        self.solution_lens.append(len(item["solution"]))
        if item.get("provenance"):
            self.licences.add(str(item["provenance"].get("license")))
        self.rewritten += item.get("origin") == "rewrite"

    @property
    def key_longest_share(self) -> float:
        """Share of items whose key is (one of) the longest option(s): a common answer leak."""
        return sum(r == 1 for r in self.ranks) / len(self.ranks) if self.ranks else 0.0


def key_length_rank(item: Mapping[str, Any]) -> int:
    """The key's length rank among the item's 7 options (1 = longest), as the build measured
    it; equal lengths are ordered by a coin seeded by the item id."""
    recorded = (item.get("quality") or {}).get("key_length_rank")
    if isinstance(recorded, int):
        return recorded
    options = list(item["options"].values())
    return length_rank.key_length_rank(options, list(item["options"]).index(item["answer"]),
                                       item.get("item_id"))
