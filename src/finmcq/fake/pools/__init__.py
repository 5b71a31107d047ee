"""Korean text pools the fake LLM composes its replies from.

Everything here is data. The reply writers in :mod:`finmcq.fake.replies` pick from these pools
with a per-request random generator, so the same request always gets the same text. The pools are
split by what they are for:

* :mod:`~finmcq.fake.pools.keywords` – relevance keywords per topic and each topic's focus;
* :mod:`~finmcq.fake.pools.topics` – per-topic statements (each known true or false), terms,
  scenario details and theory;
* :mod:`~finmcq.fake.pools.stems` – generate-stem components (prime-sized, see there), question
  frames, rewrite bridges, generic wrong statements, qualifiers;
* :mod:`~finmcq.fake.pools.phrasing` – verify, solve, judge and grade wording, and what defect
  mode plants.

Callers use ``pools.NAME``; every pool is re-exported here.
"""

from finmcq.fake.pools.keywords import (
    KEYWORDS,
    TOPIC_FOCUS,
)
from finmcq.fake.pools.phrasing import (
    GRADE_PRAISE,
    JUDGE_DEFENSIBLE,
    JUDGE_WRONG,
    LEAK_SENTENCES,
    POSITIONAL_DISTRACTORS,
    REVIEW_RIGHT,
    REVIEW_WRONG,
    SKIPPED_REVIEWS,
    VERIFY_REASONS,
)
from finmcq.fake.pools.stems import (
    ACTORS,
    ADAPT_SUFFIXES,
    CODE_CLAUSES,
    GENERIC_FALSE,
    MACROS,
    NEGATIVE_FRAMES,
    OPENINGS,
    POSITIVE_FRAMES,
    REWRITE_BRIDGES,
    TASKS,
)
from finmcq.fake.pools.topics import (
    GENERIC_POOL,
    TOPIC_POOLS,
    TopicPool,
)

__all__ = [
    "ACTORS",
    "ADAPT_SUFFIXES",
    "CODE_CLAUSES",
    "GENERIC_FALSE",
    "GENERIC_POOL",
    "GRADE_PRAISE",
    "JUDGE_DEFENSIBLE",
    "JUDGE_WRONG",
    "KEYWORDS",
    "LEAK_SENTENCES",
    "MACROS",
    "NEGATIVE_FRAMES",
    "OPENINGS",
    "POSITIONAL_DISTRACTORS",
    "POSITIVE_FRAMES",
    "REVIEW_RIGHT",
    "REVIEW_WRONG",
    "REWRITE_BRIDGES",
    "SKIPPED_REVIEWS",
    "TASKS",
    "TOPIC_FOCUS",
    "TOPIC_POOLS",
    "VERIFY_REASONS",
    "TopicPool",
]
