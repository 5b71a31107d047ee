"""What the ``finmcq`` commands share: option types, flag parsing, the error-to-exit-code wrapper.

Imported by cli.py and the cli_*.py command modules only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

R = TypeVar("R")


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _run_or_exit(action: Callable[[], R]) -> R:
    """Run ``action``; a finmcq error becomes one readable paragraph and an exit code."""
    from finmcq.errors import ConfigError, FinmcqError, InputError

    try:
        return action()
    except (InputError, ConfigError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    except FinmcqError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.secho("interrupted: everything received so far is saved; rerun with the same "
                    "--out to resume.", fg="yellow", err=True)
        raise typer.Exit(130) from None


SourceOpt = Annotated[str | None, typer.Option(
    help="Hub id (default HAERAE-HUB/KMMLU), a local folder in the hub layout, a .csv/.jsonl "
    "file in KMMLU's columns, or 'sample'.")]
SubjectsOpt = Annotated[str | None, typer.Option(
    help="Comma-separated KMMLU subjects (default Economics).")]
SplitsOpt = Annotated[str | None, typer.Option(
    help="Comma-separated splits (default train,dev,test; including test contaminates the "
    "benchmark).")]


STAGES = ("relevance", "rewrite", "generate", "verify", "judge", "solve", "grade")
StageModelOpt = Annotated[list[str] | None, typer.Option(
    "--stage-model", metavar="STAGE=MODEL",
    help="Model for one stage (relevance, rewrite, generate, verify, judge, solve, grade); "
    "repeat for several stages. Stages not named use --model.")]
EffortOpt = Annotated[str | None, typer.Option(
    "--reasoning-effort", metavar="LEVEL",
    help="reasoning_effort for models that take it: none, minimal, low, medium, high, xhigh "
    "(default: the model's own). More effort: more hidden reasoning tokens, billed as output.")]
StageEffortOpt = Annotated[list[str] | None, typer.Option(
    "--stage-reasoning-effort", metavar="STAGE=LEVEL",
    help="reasoning_effort for one stage (like --stage-model); repeatable.")]
CapabilitiesOpt = Annotated[Path | None, typer.Option(
    "--capabilities", metavar="FILE",
    help="TOML rules added to the model capability table (token-limit name, temperature, "
    "reasoning_effort values, response_format support); see src/finmcq/data/capabilities.toml.")]
BudgetOpt = Annotated[float | None, typer.Option(
    help="Stop cleanly before this run's spend (all sessions) would pass this many USD; rerun "
    "with the same --out and a larger budget to resume.")]
BatchOpt = Annotated[bool | None, typer.Option(
    "--batch/--no-batch", help="Send requests as OpenAI Batch API jobs: half the price, results "
    "within 24 h; rerun with the same --out to pick up results.")]


def _stage_models(values: list[str] | None) -> dict[str, str] | None:
    """``["solve=gpt-4o", ...]`` → ``{"solve": "gpt-4o"}``; a ConfigError names a bad one."""
    from finmcq.errors import ConfigError

    if not values:
        return None
    models: dict[str, str] = {}
    for value in values:
        stage, sep, model = (part.strip() for part in value.partition("="))
        if not sep or stage not in STAGES or not model:
            raise ConfigError(f"--stage-model {value!r} must be STAGE=MODEL",
                              fix=f"STAGE is one of {', '.join(STAGES)}")
        models[stage] = model
    return models


def _stage_efforts(values: list[str] | None) -> dict[str, str] | None:
    """``["solve=high", ...]`` → ``{"solve": "high"}``; a ConfigError names a bad one."""
    from finmcq.engine.capabilities import EFFORTS
    from finmcq.errors import ConfigError

    if not values:
        return None
    efforts: dict[str, str] = {}
    for value in values:
        stage, sep, level = (part.strip() for part in value.partition("="))
        if not sep or stage not in STAGES or level not in EFFORTS:
            raise ConfigError(f"--stage-reasoning-effort {value!r} must be STAGE=LEVEL",
                              fix=f"STAGE is one of {', '.join(STAGES)}; LEVEL one of "
                              f"{', '.join(EFFORTS)}")
        efforts[stage] = level
    return efforts


def _mix(value: str | None) -> tuple[float, float, float] | None:
    if value is None:
        return None
    parts = _csv(value) or []
    try:
        easy, medium, hard = (float(p) for p in parts)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: give three numbers easy,medium,hard, e.g. 30,50,20",
            param_hint="--difficulty-mix") from None
    return easy, medium, hard

AsOfOpt = Annotated[str | None, typer.Option(
    "--as-of", metavar="YYYY-MM", help="Reference month for rules and market facts in every "
    "prompt (default: the month the run directory was first built, else this month).")]
QuestionsOpt = Annotated[int | None, typer.Option(help="Questions to deliver (pairs = 2×).")]
ModelOpt = Annotated[str | None, typer.Option(help="Model name for every stage.")]
ConcurrencyOpt = Annotated[int | None, typer.Option(help="Requests in flight at most.")]
SeedOpt = Annotated[int | None, typer.Option(help="Seed for every random choice.")]
MaxAttemptsOpt = Annotated[int | None, typer.Option(
    help="Attempts (rewrite/generate) per question before giving up.")]
PricesOpt = Annotated[Path | None, typer.Option(help="TOML price table overriding ours.")]
ConfigOpt = Annotated[Path | None, typer.Option(
    help="TOML file with the same settings; flags win.")]


def _settings(config: Path | None, **flags: Any) -> Any:
    from finmcq.config import BuildSettings

    if "subjects" in flags:
        flags["subjects"] = _csv(flags["subjects"])
    if "splits" in flags:
        flags["splits"] = _csv(flags["splits"])
    return BuildSettings.from_sources(config, flags)
