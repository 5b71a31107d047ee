"""``finmcq eval``: measure a model on a set in the format the training pairs teach.

:func:`run_eval` is the library call behind the command: read the set
(:mod:`~finmcq.evaluate.sets`), ask the model (:mod:`~finmcq.evaluate.runner`), score it strictly
with Wilson intervals (:mod:`~finmcq.evaluate.scoring`) and write ``eval_{timestamp}.json`` and
``eval_{timestamp}.html`` (:mod:`~finmcq.evaluate.report`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finmcq import aio
from finmcq.engine.runlog import close_run_log, open_log_file, run_timestamp
from finmcq.errors import ConfigError
from finmcq.evaluate.report import eval_document, eval_html
from finmcq.evaluate.runner import VARIANTS, EvalSettings, examine
from finmcq.evaluate.sets import EvalSet, load_eval_set
from finmcq.output import atomic_writer, write_json

log = logging.getLogger("finmcq.eval")

__all__ = ["EvalResult", "EvalSettings", "default_out", "load_eval_set", "run_eval"]


@dataclass(frozen=True)
class EvalResult:
    json_path: Path
    html_path: Path
    document: dict[str, Any]


def default_out(set_spec: str) -> Path:
    """Where an eval writes by default: ``RUN_DIR/eval`` for a run, else ``./finmcq-eval``."""
    path = Path(set_spec).expanduser()
    if path.is_dir() and any(path.glob("processing_stats_*.json")):
        return path / "eval"
    return Path("finmcq-eval")


def run_eval(settings: EvalSettings, eval_set: EvalSet, out: Path, *,
             progress: bool | None = None) -> EvalResult:
    """Ask, score and write. ``out`` holds the eval's cache (``finmcq.sqlite``) and outputs."""
    unknown = [v for v in settings.variants if v not in VARIANTS]
    if unknown or not settings.variants:
        raise ConfigError(f"unknown eval variant(s) {', '.join(unknown) or '(none)'}",
                          fix=f"Choose from {', '.join(VARIANTS)}")
    for name, value, low in (("--concurrency", settings.concurrency, 1),
                             ("--reasoning-max-tokens", settings.reasoning_max_tokens, 1),
                             ("--answer-max-tokens", settings.answer_max_tokens, 1)):
        if value < low:
            raise ConfigError(f"{name} {value} must be at least {low}", fix=f"Give a larger {name}")
    if not 0.0 <= settings.temperature <= 2.0:
        raise ConfigError(f"--temperature {settings.temperature} is outside 0-2",
                          fix="Give a temperature between 0 and 2")
    settings.engine_config().resolve_api_key()  # a missing key fails before anything is written
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Cannot create the eval folder {out}: {exc.strerror}",
                          fix="Choose another --out") from None
    started = time.monotonic()
    timestamp = run_timestamp()
    handler = open_log_file(out / f"eval_{timestamp}.log")
    try:
        log.info("finmcq eval: model %s on %s (%s, %d questions), variants %s", settings.model,
                 eval_set.name, eval_set.kind, len(eval_set.items), ",".join(settings.variants))
        results, usage = aio.run(examine(settings, eval_set.items, out, progress))
    finally:
        close_run_log(handler)
    doc = eval_document(eval_set, settings, results, usage, timestamp,
                        time.monotonic() - started)
    json_path = out / f"eval_{timestamp}.json"
    html_path = out / f"eval_{timestamp}.html"
    write_json(json_path, doc)
    with atomic_writer(html_path) as handle:
        handle.write(eval_html(doc))
    return EvalResult(json_path=json_path, html_path=html_path, document=doc)
