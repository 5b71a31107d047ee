"""``finmcq estimate``: calls, tokens and USD of a build, per stage, before any LLM call.

The estimate is an expected value computed from:

* the **prompt files** (each stage's static system and user text, rendered exactly as the stage
  renders it) and the **source texts** (relevance and rewrite prompts are built from every source
  question; generation's few-shot examples from typical ones);
* **average reply lengths** per stage, measured in the run directory when it already holds
  replies (a resumed run, or an earlier one with the same ``--out``), else configured in
  ``data/estimate.toml``; a draft's reply length is also the size of the item that verify and solve
  receive;
* **rejection rates** per stage (``data/estimate.toml``), which decide how many attempts a slot
  needs: each attempt is a draft (attempt 0 of a source slot is a rewrite, every other one a
  generation), a blind solve if the draft survives, and up to ``solve_tries`` solutions;
* the **price table** (``--prices``), with the Batch API discount in ``--batch`` mode and the
  cached-input rate for a static prefix long enough for automatic prompt caching.

Token counts use a character-class approximation (see :func:`approx_tokens`), fitted against
o200k_base: no tokenizer download, no network.

Where each part lives: :mod:`.tokens` (the token approximation and :class:`TokenProfile`),
:mod:`.assumptions` (``data/estimate.toml``), :mod:`.model` (planned calls, prompt sizes,
:func:`estimate_build`), :mod:`.result` (:class:`Estimate` and its text, rich and JSON
renderings), :mod:`.history` (measured reply lengths and rejection rates from a run directory,
:func:`estimate_with_history`, :func:`compare`); hidden reasoning tokens are
:mod:`finmcq.estimate_reasoning`'s. Everything others use is importable from here.
"""

from finmcq.estimate.assumptions import Assumptions, StageAssumption
from finmcq.estimate.history import (
    compare,
    estimate_with_history,
    latest_stats,
    measured_from_run_dir,
    measured_from_store,
    measured_reply_tokens,
    rates_from_stats,
)
from finmcq.estimate.model import (
    EXAMPLES_PER_TOPIC,
    STAGES,
    active_stages,
    estimate_build,
    planned_calls,
)
from finmcq.estimate.result import Estimate, StageEstimate, estimate_json
from finmcq.estimate.tokens import TokenProfile, approx_tokens, messages_tokens

__all__ = ["EXAMPLES_PER_TOPIC", "STAGES", "Assumptions", "Estimate", "StageAssumption",
           "StageEstimate", "TokenProfile", "active_stages", "approx_tokens", "compare",
           "estimate_build", "estimate_json", "estimate_with_history", "latest_stats",
           "measured_from_run_dir", "measured_from_store", "measured_reply_tokens",
           "messages_tokens", "planned_calls", "rates_from_stats"]
