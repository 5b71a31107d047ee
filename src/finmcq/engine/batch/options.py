"""Batch mode settings: how the Batch API is used (:class:`BatchOptions`) and at what price
(:class:`BatchPriceTable`, every recorded cost at the Batch API rate)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from finmcq.engine.cost import PriceTable


@dataclass(frozen=True)
class BatchOptions:
    """How the Batch API is used. Defaults suit real jobs (minutes to hours)."""

    poll_interval_s: float = 30.0
    collect_s: float = 2.0  # submit once no new request came for this long...
    max_collect_s: float = 60.0  # ...or once the oldest pending request waited this long
    max_requests_per_file: int = 50_000  # the Batch API's limit per input file
    max_bytes_per_file: int = 200_000_000  # 200 MB, the Batch API's limit per input file
    max_resubmits: int = 3  # failed / expired lines of one request sent again at most this often

    @classmethod
    def from_env(cls) -> BatchOptions:
        """Defaults, overridden by ``FINMCQ_BATCH_*`` variables (see :mod:`finmcq.engine.batch`)."""
        env = os.environ
        return cls(
            poll_interval_s=float(env.get("FINMCQ_BATCH_POLL_S", cls.poll_interval_s)),
            collect_s=float(env.get("FINMCQ_BATCH_COLLECT_S", cls.collect_s)),
            max_requests_per_file=int(env.get("FINMCQ_BATCH_MAX_REQUESTS",
                                              cls.max_requests_per_file)),
            max_bytes_per_file=int(env.get("FINMCQ_BATCH_MAX_BYTES", cls.max_bytes_per_file)),
        )


class BatchPriceTable(PriceTable):
    """A price table that always charges the Batch API rate."""

    @classmethod
    def of(cls, prices: PriceTable) -> BatchPriceTable:
        return cls(models=prices.models, batch_discount=prices.batch_discount)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int,
             cached_tokens: int = 0, *, batch: bool = True) -> float:
        return super().cost(model, prompt_tokens, completion_tokens, cached_tokens, batch=True)
