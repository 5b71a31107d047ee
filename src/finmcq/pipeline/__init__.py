"""The build: sources → relevance → rewrite/generate → checks → solve → assemble, as a stream.

Design in brief:

* The final set has exactly ``questions`` *slots*. Each slot has a topic (from the quotas) and a
  key letter (from a seeded plan that makes every letter A–G the key N/7 (± 1) times). A slot is
  filled by a chain of attempts: attempt 0 of a source slot rewrites its KMMLU question; every
  other attempt generates a new question for the slot's topic with the slot's letter. So a drop
  never unbalances letters or topics, and generation only ever replaces what was rejected.
* Every decision is a function of the seed and of LLM replies, never of timing; replies come
  from the run's SQLite cache on a rerun. A crashed run therefore resumes to exactly the result
  the uninterrupted run would have given, paying only for requests that never completed.
* Relevance and slot chains share one engine: a source question that passed the filter is
  rewritten, verified and solved while others are still being judged.
* One attempt runs: draft → shape (leak and shape checks, answer-length cue) → placement →
  contamination → verify (k blind solves, difficulty) → judge (second answer; repair once) →
  solve → grade (optional; regenerate once). Deterministic checks come first so LLM calls are
  only paid for items that can still pass. After every slot is filled, exact and near duplicates
  are dropped in slot order and their slots refilled (:mod:`finmcq.quality.neardup`).
* Each slot also asks for a key length rank (a seeded plan like the letters'); a draft within
  ``length_rank_tolerance`` of it is kept, and after all slots are filled the few items that
  keep a rank out of its band are redrafted for the ranks that are short (:mod:`finmcq.balance`).
* A retry of a slot is told why the previous attempt was dropped (:mod:`finmcq.stages.feedback`).

The parts, one module each: :mod:`.plan` (slot planning: letters, ranks, difficulty),
:mod:`.delivered` (delivered-item storage), :mod:`.base` (the shared state),
:mod:`.fill` (slot filling: the attempt chain), :mod:`.endofrun` (end-of-run dedupe and
rank rebalancing), :mod:`.stats` (the stats block) and :mod:`.core` (:class:`Pipeline`).
"""

from finmcq.pipeline.base import bounded_map
from finmcq.pipeline.core import Pipeline
from finmcq.pipeline.delivered import BuildOutcome, Delivered, DeliveredItems
from finmcq.pipeline.plan import Slot, subtopics

__all__ = ["BuildOutcome", "Delivered", "DeliveredItems", "Pipeline", "Slot", "bounded_map",
           "subtopics"]
