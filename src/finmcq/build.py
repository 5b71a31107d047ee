"""``finmcq build`` as a library call: load, run the pipeline, write the run's files."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finmcq import __version__, aio
from finmcq.asof import current_month, parse_as_of
from finmcq.config import BuildSettings
from finmcq.engine.client import LLMEngine
from finmcq.engine.cost import PriceTable
from finmcq.engine.progress import StageProgress
from finmcq.engine.runlog import close_run_log, open_run_log, run_timestamp
from finmcq.engine.store import RunStore
from finmcq.errors import FinmcqError
from finmcq.estimate import Estimate, compare, estimate_with_history
from finmcq.holdout import choose_holdout, holdout_stats
from finmcq.output import (
    pause_for_test,
    remove_stale_temp_files,
    row_writer,
    write_json,
    write_jsonl,
)
from finmcq.pipeline import BuildOutcome, Delivered, Pipeline
from finmcq.pipeline.stats import Tally
from finmcq.review.decisions import ReviewDecisions
from finmcq.sources import describe_splits, load_source
from finmcq.stages.assemble import PromptTemplate, training_pairs

log = logging.getLogger("finmcq.build")


class IncompleteBuildError(FinmcqError):
    """The sources and allowed retries could not fill every slot."""


@dataclass(frozen=True)
class BuildResult:
    run_dir: Path
    timestamp: str
    training_data: Path
    items: Path
    stats: Path
    log: Path
    pairs: int
    cost_usd: float
    heldout: Path | None = None  # --holdout: the held-out questions


def run_build(settings: BuildSettings, *, progress: bool | None = None) -> BuildResult:
    """Run a whole build. Raises ``FinmcqError`` subclasses with user-facing messages.

    Input is loaded and validated, and the API key resolved, before anything is written.
    """
    engine_config = settings.engine_config()
    engine_config.resolve_api_key()  # fail on a missing key before touching the disk
    pause_for_test("load")
    sources = load_source(settings.source, settings.subjects, settings.splits)
    return aio.run(_build(settings, sources, progress))


async def _build(settings: BuildSettings, sources: list[Any],
                 progress: bool | None) -> BuildResult:
    started = time.monotonic()
    store = RunStore(settings.out)
    remove_stale_temp_files(settings.out)  # safe: we hold the run lock
    timestamp = run_timestamp()
    handler = open_run_log(settings.out, timestamp)
    engine: LLMEngine | None = None
    try:
        settings = resolve_as_of(settings, store)
        prices = PriceTable.load(settings.prices)
        if settings.batch:  # a stage's whole wave must wait in one batch, not C at a time
            settings = settings.model_copy(update={"concurrency": max(
                settings.concurrency, min(10_000, 2 * settings.questions + len(sources)))})
        if settings.batch:
            from finmcq.engine.batch import BatchEngine  # imports the openai SDK: only here

            engine = BatchEngine(settings.engine_config(), store, prices)
        else:
            engine = LLMEngine(settings.engine_config(), store, prices)
        estimate = estimate_with_history(settings, sources, store=store)
        log.info("estimate before any LLM call:\n%s", estimate.as_text())
        prices.warn_if_stale([s.model for s in estimate.stages.values()])
        subjects = sorted({q.provenance.subject for q in sources})
        splits = sorted({q.provenance.split for q in sources})
        warning = describe_splits(splits)
        if warning:
            log.warning(warning)
        log.info("finmcq %s build: %d source questions from %s (%s; splits %s), target %d "
                 "questions, model %s, concurrency %d, seed %d", __version__, len(sources),
                 settings.source, ",".join(subjects), ",".join(splits),
                 settings.questions, settings.model, settings.concurrency, settings.seed)
        store.set_meta("settings", settings.model_dump_json())
        meter = engine.meter
        # The "deliver" row is the whole build: it shows the total spent so far.
        with StageProgress(lambda stage: meter.total_cost if stage == "deliver"
                           else meter.stage(stage).cost_usd, enabled=progress,
                           reasoning_of=lambda stage: meter.reasoning_tokens if stage == "deliver"
                           else meter.stage(stage).reasoning_tokens) as bar:
            engine.notify = bar.note
            pipeline = Pipeline(settings, engine, store, bar,
                                review=ReviewDecisions.load(settings.out))
            outcome = await pipeline.run(sources)
        source_info = {"dataset": settings.source, "subjects": subjects, "splits": splits,
                       "questions": len(sources), "warning": warning}
        return _write_outputs(settings, outcome, store, engine, timestamp,
                              time.monotonic() - started, source_info, estimate)
    finally:
        if engine is not None:
            await engine.aclose()
        close_run_log(handler)
        store.close()


def resolve_as_of(settings: BuildSettings, store: RunStore) -> BuildSettings:
    """``settings`` with its reference month filled in when the user gave none.

    A rerun in the same run directory keeps the month it was first built with: the month is in
    every prompt, so a new one would miss the cache and pay for every reply again.
    """
    if settings.as_of:
        return settings
    month = current_month()
    stored = store.get_meta("settings")
    if stored:
        # A store from before --as-of, or a damaged row: this month.
        with contextlib.suppress(ValueError, KeyError, TypeError):
            month = parse_as_of(json.loads(stored)["as_of"])
    return settings.model_copy(update={"as_of": month})


def _item_record(d: Delivered, store: RunStore) -> dict[str, Any]:
    item = d.item
    usage = store.item_usage(item.item_id, item.source.uid if item.source else None)
    return {
        "item_id": item.item_id,
        "topic": item.topic.value,
        "difficulty": item.difficulty.value if item.difficulty else None,
        "origin": item.origin,
        "question": item.question,
        "options": dict(zip("ABCDEFG", item.options, strict=True)),
        "answer": item.answer,
        "verification": d.verification.model_dump(),
        "quality": d.quality,
        "solution": d.solution.text,
        "provenance": item.source.provenance.model_dump() if item.source else None,
        "source_question": item.source.question if item.source else None,
        "review": d.review,
        "tokens": {"prompt": usage["prompt_tokens"], "completion": usage["completion_tokens"]},
        "cost_usd": round(usage["cost_usd"], 6),
    }


def _write_outputs(settings: BuildSettings, outcome: BuildOutcome, store: RunStore,
                   engine: LLMEngine, timestamp: str, wall_s: float,
                   source_info: dict[str, Any], estimate: Estimate) -> BuildResult:
    run_dir = settings.out
    pause_for_test("assemble")
    template = PromptTemplate(instruction=settings.instruction)

    def full_stats(tally: Tally | None) -> dict[str, Any]:
        stats = _stats(settings, outcome, store, engine, wall_s, source_info, tally)
        stats = {"estimate": estimate.as_dict(), **stats,
                 "estimate_vs_actual": compare(estimate, stats)}
        batch_stats = getattr(engine, "batch_stats", None)  # BatchEngine only
        if batch_stats is not None:
            stats["batch"] = batch_stats()
        return stats

    stats_path = run_dir / f"processing_stats_{timestamp}.json"
    log_path = run_dir / f"processing_{timestamp}.log"
    if not outcome.complete:
        stats = full_stats(None)
        write_json(stats_path, stats)
        _log_stage_summaries(stats)
        missing = outcome.target - len(outcome.delivered)
        message = (
            f"Only {len(outcome.delivered)} of {outcome.target} questions passed every check "
            f"({missing} slots used up their {settings.max_attempts_per_question} attempts); no "
            f"training file was written, since it must hold exactly {2 * outcome.target} pairs"
        )
        log.error(message)
        raise IncompleteBuildError(
            message, where=str(stats_path),
            fix="Rerun with the same --out and a higher --max-attempts to resume: replies "
            "received so far are reused at no cost",
        )

    # Every file from one pass over the delivered items (each pass decodes them from the store).
    held = choose_holdout(((d.item.item_id, d.item.topic.value, d.item.answer)
                           for d in outcome.delivered), settings.holdout, settings.seed
                          ) if settings.holdout else frozenset()
    data_path = run_dir / f"final_training_data_{timestamp}.json"
    items_path = run_dir / f"items_{timestamp}.jsonl"
    heldout_records: list[dict[str, Any]] = []
    tally = Tally()  # the stats' counts, from the same pass
    with row_writer(data_path, array=True) as pairs_out, \
            row_writer(items_path, array=False) as items_out:
        for d in outcome.delivered:
            tally.add(d)
            if d.item.item_id in held:  # --holdout: kept apart, with its step-1 prompt
                heldout_records.append({**_item_record(d, store),
                                        "prompt": template.step1(d.item)})
                continue
            items_out.add(_item_record(d, store))
            for pair in training_pairs(d.item, d.solution, template):
                pairs_out.add(pair.model_dump())
    n_items, n_pairs = items_out.count, pairs_out.count
    assert n_pairs == 2 * n_items == 2 * (outcome.target - len(held))
    stats = full_stats(tally)
    if held:
        heldout_path = run_dir / f"heldout_{timestamp}.jsonl"
        write_jsonl(heldout_path, heldout_records)
        stats["pairs"] = n_pairs
        stats["holdout"] = holdout_stats(settings.holdout, heldout_records, heldout_path.name,
                                         n_items)
    write_json(stats_path, stats)
    _log_stage_summaries(stats)
    review = stats.get("review") or {}
    if review.get("reviewed"):
        log.info("review: %d decisions read; %d accepted and %d edited items kept, %d rejected "
                 "slots replaced, %d edits re-solved", review["reviewed"], review["accepted"],
                 review["edited"], review["replaced"], review["re_solved"])
    log.info("wrote %d pairs to %s (%.1fs, $%.4f this session)", n_pairs, data_path.name,
             wall_s, engine.meter.session_cost)
    return BuildResult(run_dir=run_dir, timestamp=timestamp, training_data=data_path,
                       items=items_path, stats=stats_path, log=log_path, pairs=n_pairs,
                       cost_usd=engine.meter.total_cost,
                       heldout=run_dir / f"heldout_{timestamp}.jsonl" if held else None)


def _stats(settings: BuildSettings, outcome: BuildOutcome, store: RunStore, engine: LLMEngine,
           wall_s: float, source_info: dict[str, Any], tally: Tally | None) -> dict[str, Any]:
    meter = engine.meter
    all_time = store.usage_by_stage()
    reasoning_all = store.reasoning_by_stage()
    for stage, row in all_time.items():
        row["reasoning_tokens"] = reasoning_all.get(stage, 0)
    settings_dump = json.loads(settings.model_dump_json())
    return {
        "finmcq_version": __version__,
        "status": "complete" if outcome.complete else "incomplete",
        "questions": {"target": outcome.target, "delivered": len(outcome.delivered),
                      "unfilled_slots": outcome.unfilled},
        "pairs": 2 * len(outcome.delivered) if outcome.complete else 0,
        "seed": settings.seed,
        "as_of": settings.as_of,
        "source": source_info,
        "models": {stage: settings.engine_config().model_for(stage)
                   for stage in ("relevance", "rewrite", "generate", "verify", "solve")},
        **outcome.stats_for(tally),
        "usage_this_session": meter.as_dict(),
        "usage_all_sessions": all_time,
        "cost_usd": {"this_session": round(meter.session_cost, 6),
                     "total": round(store.total_cost(), 6)},
        "reasoning_tokens": {"this_session": meter.reasoning_tokens,
                             "all_sessions": sum(reasoning_all.values()),
                             "per_stage": dict(sorted(reasoning_all.items()))},
        "request_shapes": {model: engine.shaper.describe(model)
                           for model in sorted({settings.engine_config().model_for(s) for s in
                                                ("relevance", "rewrite", "generate", "verify",
                                                 "judge", "solve", "grade")})},
        "request_shape_changes": engine.shaper.changes(),
        "retries_by_cause": _retries(meter.as_dict()),
        "peak_in_flight": engine.peak_in_flight,
        "wall_time_s": round(wall_s, 3),
        "settings": settings_dump,
    }


def _retries(usage: dict[str, Any]) -> dict[str, int]:
    total: dict[str, int] = {}
    for stage in usage.values():
        for cause, n in stage["retries"].items():
            total[cause] = total.get(cause, 0) + n
    return dict(sorted(total.items()))


def _log_stage_summaries(stats: dict[str, Any]) -> None:
    """One line per stage in the run log: in/out, drop reasons, calls, tokens, USD."""
    usage = stats.get("usage_this_session", {})
    for name, stage in stats.get("stages", {}).items():
        u = usage.get(name, {})
        reasons = ", ".join(f"{k} {v}" for k, v in stage.get("drop_reasons", {}).items())
        log.info("stage %-13s in %d out %d dropped %d%s | requests %d, cache hits %d, tokens "
                 "%d/%d (reasoning %d), $%.4f", name, stage["in"], stage["out"], stage["dropped"],
                 f" ({reasons})" if reasons else "", u.get("requests", 0), u.get("cache_hits", 0),
                 u.get("prompt_tokens", 0), u.get("completion_tokens", 0),
                 u.get("reasoning_tokens", 0), u.get("cost_usd", 0.0))
