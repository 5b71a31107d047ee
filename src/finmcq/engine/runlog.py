"""Run logging: one ``processing_{timestamp}.log`` per run in the run directory."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path


def run_timestamp() -> str:
    """The timestamp that names a run's output files (UTC, sortable, filesystem-safe)."""
    return datetime.now(UTC).strftime("%Y%m%d_%H%M%S")


_SECRETS: set[str] = set()


def register_secret(secret: str | None) -> None:
    """Never let ``secret`` reach a log file: every run-log handler masks it."""
    if secret and len(secret) >= 6:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """Handler filter (handlers see records from child loggers; logger filters do not)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


def open_log_file(path: Path) -> logging.Handler:
    """Attach a file handler writing to ``path`` to the ``finmcq`` logger, secrets masked.

    The caller removes it with :func:`close_run_log` when its work ends.
    """
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setLevel(logging.INFO)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("finmcq")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler


def open_run_log(run_dir: Path, timestamp: str) -> logging.Handler:
    """The build's ``processing_{timestamp}.log`` (see :func:`open_log_file`)."""
    return open_log_file(run_dir / f"processing_{timestamp}.log")


def close_run_log(handler: logging.Handler) -> None:
    logging.getLogger("finmcq").removeHandler(handler)
    handler.close()
