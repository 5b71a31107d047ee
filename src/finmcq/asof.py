"""The reference date (``--as-of YYYY-MM``) every prompt states for rules and market facts.

Rules change (a deposit-protection limit, a delisting criterion, which law a suitability rule
sits in), so a question's key can depend on *when* it is asked. Every prompt names the build's
reference month, the second-answer judge marks items whose key depends on a dated rule
(``time_sensitive``), and the stats, report and dataset card record both, so a user can find and
refresh those items later.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

_AS_OF = re.compile(r"(?P<year>\d{4})-(?P<month>\d{2})")
EARLIEST_YEAR = 1990  # KMMLU's sources are Korean exams of recent decades


def current_month(now: datetime | None = None) -> str:
    """This month as ``YYYY-MM`` (UTC)."""
    return (now or datetime.now(UTC)).strftime("%Y-%m")


def parse_as_of(value: str) -> str:
    """``value`` checked as ``YYYY-MM``; a ``ValueError`` says what is wrong and how to fix it."""
    text = str(value).strip()
    match = _AS_OF.fullmatch(text)
    if not match:
        raise ValueError(f"{value!r} is not a month: write YYYY-MM, e.g. {current_month()}")
    year, month = int(match["year"]), int(match["month"])
    if not 1 <= month <= 12:
        raise ValueError(f"{value!r}: the month must be 01 to 12")
    latest = int(current_month()[:4]) + 1
    if not EARLIEST_YEAR <= year <= latest:
        raise ValueError(f"{value!r}: the year must be between {EARLIEST_YEAR} and {latest}")
    return text


def as_of_label(as_of: str | None) -> str:
    """The month in Korean, as the prompts write it: ``2026-11`` → ``2026년 11월``."""
    if as_of:
        return _label(as_of)
    month = current_month()
    return f"{int(month[:4])}년 {int(month[5:7])}월"


@lru_cache(maxsize=64)  # every prompt of a build states the same month: checked once
def _label(as_of: str) -> str:
    month = parse_as_of(as_of)
    return f"{int(month[:4])}년 {int(month[5:7])}월"
