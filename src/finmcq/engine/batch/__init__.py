"""OpenAI Batch API mode (``finmcq build --batch``): same ``call()``, half the price, slower.

:class:`BatchEngine` is an :class:`~finmcq.engine.client.LLMEngine` whose ``call(request)``
answers from the run's cache when it can, and otherwise puts the request in a Batch API job and
waits for it, so the streaming pipeline runs unchanged. Underneath:

* a **collector** groups pending requests per model into JSONL files (at most
  ``max_requests_per_file`` = 50,000 lines and ``max_bytes_per_file`` ≈ 200 MB each), uploads
  them (``/v1/files``, purpose ``batch``) and creates one batch per file (``/v1/batches``,
  endpoint ``/v1/chat/completions``, window ``24h``), once no new request has come for
  ``collect_s`` (the pipeline's next wave arrives in a burst when a batch's results land);
* a **ledger** in the run's SQLite store records every upload *before* its batch is created,
  then the batch id, and which request (by cache key, also the ``custom_id``) went where;
* a **poller** retrieves unfinished batches every ``poll_interval_s``; when one ends it streams
  the output and error files into the ledger (``batch_results``) in one transaction and wakes the
  requests waiting on it; each ``call()`` then validates its reply exactly as the engine does
  (``parse_reply``) and records it in the cache with the Batch API price (``batch=True``);
* failed, expired or cancelled lines are submitted again in a later batch (``max_resubmits``
  times per request); invalid replies too, ``max_invalid`` times, as in the synchronous engine.

Restart safety (never pay twice): on start the engine re-attaches to every batch the ledger
holds that has not been ingested, and to an upload whose batch id was never recorded (a crash
between "create batch" and "record it") by finding the batch with that ``input_file_id`` in the
provider's batch list. A request already in such a batch waits for it instead of being sent
again; results already downloaded are used from the ledger.

Settings for tests and impatient users come from the environment when not passed in:
``FINMCQ_BATCH_POLL_S`` (default 30), ``FINMCQ_BATCH_COLLECT_S`` (2),
``FINMCQ_BATCH_MAX_REQUESTS`` (50000), ``FINMCQ_BATCH_MAX_BYTES`` (200000000).

Where each part lives: ``engine`` (:class:`BatchEngine`: ``call()``, collector, submission,
poller), ``ledger`` (:class:`BatchLedger`, the SQLite tables), ``jsonl`` (input and result file
lines, splitting into files), ``options`` (:class:`BatchOptions`, :class:`BatchPriceTable`).
Everything others use is importable from here.
"""

from finmcq.engine.batch.engine import TERMINAL, BatchEngine
from finmcq.engine.batch.jsonl import ENDPOINT
from finmcq.engine.batch.ledger import BatchLedger
from finmcq.engine.batch.options import BatchOptions, BatchPriceTable

__all__ = ["ENDPOINT", "TERMINAL", "BatchEngine", "BatchLedger", "BatchOptions",
           "BatchPriceTable"]
