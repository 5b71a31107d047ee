"""The ``finmcq`` command. Thin on purpose: it parses flags and calls library functions.

Heavy imports (datasets, openai, aiohttp) happen inside the commands so ``finmcq --help`` is fast.
Nothing in the package imports this module.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from finmcq.cli_eval import register as register_eval

app = typer.Typer(
    name="finmcq",
    help="Build a Korean financial-market 7-option MCQ fine-tuning dataset from KMMLU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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


@app.command()
def build(
    source: SourceOpt = None,
    subjects: SubjectsOpt = None,
    splits: SplitsOpt = None,
    questions: QuestionsOpt = None,
    model: ModelOpt = None,
    stage_model: StageModelOpt = None,
    base_url: Annotated[str | None, typer.Option(
        help="OpenAI-compatible base URL (vLLM, Ollama, llama.cpp, Azure...).")] = None,
    api_key_env: Annotated[str | None, typer.Option(
        help="Environment variable that holds the API key.")] = None,
    concurrency: ConcurrencyOpt = None,
    budget_usd: BudgetOpt = None,
    batch: BatchOpt = None,
    reasoning_effort: EffortOpt = None,
    stage_reasoning_effort: StageEffortOpt = None,
    capabilities: CapabilitiesOpt = None,
    seed: SeedOpt = None,
    as_of: AsOfOpt = None,
    out: Annotated[Path | None, typer.Option(
        help="Run directory; rerunning with the same one resumes.")] = None,
    max_attempts: MaxAttemptsOpt = None,
    prices: PricesOpt = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds before a request is retried.")
                       ] = None,
    max_retries: Annotated[int | None, typer.Option(
        help="Tries per request on 429/5xx/timeouts.")] = None,
    max_retry_wait: Annotated[float | None, typer.Option(
        help="Longest wait honoured from a server's Retry-After, in seconds (default 120); "
        "a run where every request is told to wait longer stops.")] = None,
    instruction: Annotated[str | None, typer.Option(
        help="First line of every prompt (default: 다음 문제를 읽고 정답으로 가장 알맞은 것을 "
        "고르시요.).")] = None,
    difficulty_mix: Annotated[str | None, typer.Option(
        help="Target shares easy,medium,hard, e.g. 30,50,20 (met within ±5 points).")] = None,
    second_answer_judge: Annotated[bool | None, typer.Option(
        "--second-answer-judge/--no-second-answer-judge",
        help="LLM judge confirms every distractor is wrong; repairs once, else drops "
        "(default on).")] = None,
    judge_model: Annotated[str | None, typer.Option(
        help="Model for the second-answer judge (default: --model).")] = None,
    verify_repair: Annotated[bool | None, typer.Option(
        "--verify-repair/--no-verify-repair",
        help="A rewrite the blind solve disagrees with is rewritten once with that feedback "
        "before its slot falls back to generation (default off).")] = None,
    blind_solves: Annotated[int | None, typer.Option(
        help="Self-consistency: k blind solves that must all find the key (default 1).")] = None,
    grade_solutions: Annotated[bool | None, typer.Option(
        "--grade-solutions/--no-grade-solutions",
        help="LLM judge scores each solution 1-5; below --min-solution-score it is "
        "regenerated once, then dropped (default off).")] = None,
    grade_model: Annotated[str | None, typer.Option(
        help="Model for solution grading (default: --model).")] = None,
    min_solution_score: Annotated[int | None, typer.Option(
        help="Lowest acceptable score on every criterion, 1-5 (default 3).")] = None,
    near_duplicate_threshold: Annotated[float | None, typer.Option(
        help="Jaccard of character 4-grams that makes a near duplicate (default 0.6).")] = None,
    contamination_check: Annotated[bool | None, typer.Option(
        "--contamination-check/--no-contamination-check",
        help="Compare with KMMLU test splits of the finance-adjacent subjects from --source "
        "(default on).")] = None,
    contamination_against: Annotated[list[Path] | None, typer.Option(
        "--contamination-against",
        help="Extra benchmark file to compare with (repeatable): KMMLU CSV/JSONL, JSON/JSONL/CSV "
        "with a question or prompt field, or one question per line.")] = None,
    contamination_threshold: Annotated[float | None, typer.Option(
        help="Share of a benchmark question's 4-grams found in an item that flags it "
        "(default 0.5).")] = None,
    drop_contaminated: Annotated[bool | None, typer.Option(
        "--drop-contaminated/--keep-contaminated",
        help="Drop and replace flagged items instead of only reporting them.")] = None,
    holdout: Annotated[float | None, typer.Option(
        help="Keep this share of the questions (e.g. 0.1) out of the training file, balanced "
        "over topics and letters, in heldout_{timestamp}.jsonl for `finmcq eval`.")] = None,
    config: ConfigOpt = None,
    progress: Annotated[bool | None, typer.Option(
        help="Live progress display (default: only on a terminal).")] = None,
) -> None:
    """Build the training set: KMMLU → relevance → rewrite/generate → verify → solve → pairs."""

    def action() -> None:
        from finmcq.build import run_build

        settings = _settings(
            config, source=source, subjects=subjects, splits=splits, questions=questions,
            model=model, base_url=base_url, api_key_env=api_key_env, concurrency=concurrency,
            seed=seed, out=out, max_attempts_per_question=max_attempts, prices=prices,
            timeout_s=timeout, max_retries=max_retries, max_retry_wait=max_retry_wait,
            instruction=instruction,
            difficulty_mix=_mix(difficulty_mix), second_answer_judge=second_answer_judge,
            judge_model=judge_model, blind_solves=blind_solves, grade_solutions=grade_solutions,
            verify_repair=verify_repair,
            grade_model=grade_model, min_solution_score=min_solution_score,
            near_duplicate_threshold=near_duplicate_threshold,
            contamination_check=contamination_check,
            contamination_against=contamination_against or None,
            contamination_threshold=contamination_threshold, drop_contaminated=drop_contaminated,
            stage_models=_stage_models(stage_model), budget_usd=budget_usd, batch=batch,
            reasoning_effort=reasoning_effort, capabilities=capabilities,
            stage_reasoning_efforts=_stage_efforts(stage_reasoning_effort), holdout=holdout,
            as_of=as_of,
        )
        result = run_build(settings, progress=progress)
        _report(result)

    _run_or_exit(action)


@app.command()
def estimate(
    source: SourceOpt = None,
    subjects: SubjectsOpt = None,
    splits: SplitsOpt = None,
    questions: QuestionsOpt = None,
    model: ModelOpt = None,
    stage_model: StageModelOpt = None,
    base_url: Annotated[str | None, typer.Option(
        help="OpenAI-compatible base URL (not contacted; accepted so build flags work).")] = None,
    concurrency: ConcurrencyOpt = None,
    seed: SeedOpt = None,
    out: Annotated[Path | None, typer.Option(
        help="Run directory; replies already in it give measured reply lengths.")] = None,
    max_attempts: MaxAttemptsOpt = None,
    prices: PricesOpt = None,
    budget_usd: BudgetOpt = None,
    batch: BatchOpt = None,
    reasoning_effort: EffortOpt = None,
    stage_reasoning_effort: StageEffortOpt = None,
    capabilities: CapabilitiesOpt = None,
    config: ConfigOpt = None,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Estimate calls, tokens and USD per stage of a build, without calling any LLM."""

    def action() -> None:
        from rich.console import Console

        from finmcq.estimate import estimate_json, estimate_with_history
        from finmcq.sources import load_source

        settings = _settings(
            config, source=source, subjects=subjects, splits=splits, questions=questions,
            model=model, stage_models=_stage_models(stage_model), base_url=base_url,
            concurrency=concurrency, seed=seed, out=out, max_attempts_per_question=max_attempts,
            prices=prices, budget_usd=budget_usd, batch=batch,
            reasoning_effort=reasoning_effort, capabilities=capabilities,
            stage_reasoning_efforts=_stage_efforts(stage_reasoning_effort),
        )
        sources = load_source(settings.source, settings.subjects, settings.splits)
        result = estimate_with_history(settings, sources)
        if json_output:
            typer.echo(estimate_json(result))
            return
        Console().print(result.render())
        if (settings.budget_usd is not None and result.usd is not None
                and result.usd > settings.budget_usd):
            typer.secho(f"note: the estimate (${result.usd:.2f}) is above --budget-usd "
                        f"(${settings.budget_usd:.2f}); the build would stop before finishing.",
                        fg="yellow", err=True)

    _run_or_exit(action)


def _report(result: Any) -> None:
    from finmcq.report import write_report

    typer.echo(f"{result.pairs} training pairs written (total cost so far ${result.cost_usd:.4f}):")
    for label, path in (("training data", result.training_data), ("items", result.items),
                        ("held out", result.heldout), ("stats", result.stats),
                        ("log", result.log)):
        if path is None:
            continue
        typer.echo(f"  {label:<13} {path}")
    typer.echo(f"  {'report':<13} {write_report(result.run_dir)}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("demo-run"),
    questions: Annotated[int, typer.Option(help="Questions to deliver.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed.")] = 42,
    as_of: AsOfOpt = None,
    defects: Annotated[float, typer.Option(
        help="Hostile fake: corrupt this share of answers, split over the 9 defect kinds, "
        "to watch the checks catch them.")] = 0.0,
) -> None:
    """Run the whole pipeline offline: bundled sample + built-in fake LLM → 2,000 pairs."""

    def action() -> None:
        from finmcq.build import run_build
        from finmcq.config import BuildSettings
        from finmcq.fake.server import FakeConfig, FakeLLMServer

        with FakeLLMServer(FakeConfig(latency_ms=0, seed=seed, defect_rate=defects)) as fake:
            typer.echo(f"fake LLM listening at {fake.base_url}")
            settings = BuildSettings(source="sample", questions=questions, seed=seed, out=out,
                                     model="fake-finance-1", base_url=fake.base_url,
                                     as_of=as_of)
            result = run_build(settings)
        _report(result)
        typer.secho("note: this content comes from finmcq's built-in FAKE LLM; it shows the "
                    "pipeline and the format, not real questions, and no money was spent (the "
                    "fake is priced like gpt-4o-mini to show the cost display). Point `finmcq "
                    "build` at a real model for real data.", fg="yellow")

    _run_or_exit(action)


@app.command()
def doctor(
    base_url: Annotated[str | None, typer.Option(
        help="OpenAI-compatible base URL (vLLM, Ollama, llama.cpp, Azure...).")] = None,
    model: Annotated[str | None, typer.Option(help="Model name to check.")] = None,
    api_key_env: Annotated[str | None, typer.Option(
        help="Environment variable that holds the API key.")] = None,
    reasoning_effort: EffortOpt = None,
    capabilities: CapabilitiesOpt = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with the build's settings; "
                                                "flags win.")] = None,
) -> None:
    """Check config, connectivity, model and structured output (one tiny request each)."""

    def action() -> bool:
        from finmcq.doctor import render_checks, run_doctor

        settings = _settings(config, base_url=base_url, model=model, api_key_env=api_key_env,
                             reasoning_effort=reasoning_effort, capabilities=capabilities)
        checks = run_doctor(settings)
        typer.echo(render_checks(checks))
        return any(check.failed for check in checks)

    if _run_or_exit(action):
        raise typer.Exit(1)


RunDirArg = Annotated[Path, typer.Argument(
    help="Run directory: the --out of a finished `finmcq build` or `finmcq demo`.")]


@app.command()
def report(run_dir: RunDirArg) -> None:
    """Write report_{timestamp}.html for a finished run: funnel, coverage, cost, samples."""

    def action() -> None:
        from finmcq.report import write_report

        typer.echo(f"report written: {write_report(run_dir)}")

    _run_or_exit(action)


@app.command()
def review(
    run_dir: RunDirArg,
    port: Annotated[int, typer.Option(help="Port to serve on (0: any free port).")] = 0,
    host: Annotated[str, typer.Option(
        help="Address to serve on. Anything but 127.0.0.1 needs --allow-remote and then "
        "requires the token printed in the URL.")] = "127.0.0.1",
    allow_remote: Annotated[bool, typer.Option(
        "--allow-remote", help="Allow a --host other than 127.0.0.1 (token required).")] = False,
) -> None:
    """Review a finished run in the browser: accept, reject, edit, comment (saved in the store).

    A rerun of `finmcq build --out RUN_DIR` then replaces rejected items, delivers edits and
    keeps accepted items.
    """
    from finmcq.errors import ConfigError

    def action() -> None:
        from finmcq.review.app import LOOPBACK, serve

        if host not in LOOPBACK and not allow_remote:
            raise ConfigError(f"--host {host} would serve the review beyond this machine",
                              fix="Add --allow-remote to do so on purpose (the URL then "
                              "carries a token), or leave --host at 127.0.0.1")
        with contextlib.suppress(KeyboardInterrupt):
            serve(run_dir, host=host, port=port, allow_remote=allow_remote, echo=typer.echo)

    _run_or_exit(action)


@app.command()
def export(
    run_dir: RunDirArg,
    out: Annotated[Path, typer.Option(help="Folder for the export and its README.md card.")],
    format: Annotated[str, typer.Option(
        "--format", help="hf (DatasetDict on disk), jsonl, parquet, chat (messages) or lm-eval "
        "(an lm-evaluation-harness task).")] = "hf",
    items: Annotated[bool, typer.Option(
        help="Also export the full items (everything about each question).")] = False,
    push_to_hub: Annotated[str | None, typer.Option(
        help="With --format hf: upload to this Hub dataset repo (OWNER/NAME) in one commit.",
        metavar="REPO")] = None,
) -> None:
    """Export a finished run's pairs (and items) for training, with a dataset card."""

    def action() -> None:
        from finmcq.export import export_run

        written = export_run(run_dir, format, out, include_items=items, push_to_hub=push_to_hub)
        typer.echo(f"exported {format} to {out}:")
        for path in written:
            typer.echo(f"  {path}")
        if push_to_hub:
            typer.echo(f"pushed to the Hub dataset repo {push_to_hub}")

    _run_or_exit(action)


@app.command()
def lint(
    file: Annotated[Path, typer.Argument(
        help="An items JSONL (question, options A-G, answer letter), a "
        "final_training_data_*.json, or a KMMLU CSV (question, A-D, answer 1-4).")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON: "
                                              "{items: [{index, id, problems}], stats}.")] = False,
) -> None:
    """Run every deterministic item check on a set and show its answer cues.

    Exit 0: nothing flagged; 1: some item flagged; 2: the file cannot be read.
    """

    def action() -> Any:
        from finmcq.lint import lint_set, render

        result = lint_set(file)
        if json_output:
            import json

            typer.echo(json.dumps(result.as_json(), ensure_ascii=False, indent=1))
        else:
            typer.echo(render(result))
        return result

    if _run_or_exit(action).flagged:
        raise typer.Exit(1)


@app.command("fake-llm")
def fake_llm(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8000,
    latency_ms: Annotated[int, typer.Option(help="Fixed latency per request.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the fake's choices.")] = 0,
    defects: Annotated[float, typer.Option(
        help="Corrupt this share of answers, split over the 9 defect kinds.")] = 0.0,
    defect: Annotated[list[str] | None, typer.Option(
        help="KIND=RATE for one defect kind (repeatable).")] = None,
    profile: Annotated[str, typer.Option(
        help="Validate, bill and answer like this kind of server: openai, openai-reasoning "
        "(GPT-5 family), azure, vllm, ollama, llamacpp, anthropic, gemini.")] = "openai",
    faults: Annotated[str, typer.Option(
        help="Transport faults, KIND=RATE,... (429, 500, 503, hang, malformed, length, "
        "broken_body, cut_body, not_json, not_utf8, empty_body, html_body, no_choices, "
        "empty_choices, null_message, content_filter, refusal).")] = "",
    retry_after_s: Annotated[float, typer.Option(
        help="Retry-After sent with 429 and 503 faults.")] = 1.0,
    answers: Annotated[str | None, typer.Option(
        help="Exam mode: answer eval questions with the key of this set (any --set of "
        "`finmcq eval`).", metavar="SET")] = None,
    accuracy: Annotated[float, typer.Option(
        help="Exam mode: share of questions answered right (drawn per question).")] = 1.0,
    unparseable: Annotated[float, typer.Option(
        help="Exam mode: share of letter answers in a non-strict form.")] = 0.0,
) -> None:
    """Serve the built-in fake OpenAI-compatible LLM until stopped (Ctrl+C)."""
    import argparse

    from finmcq.fake.config import parse_defect_rates, parse_faults
    from finmcq.fake.examinee import answer_key
    from finmcq.fake.server import FakeConfig, serve

    try:
        config = FakeConfig(latency_ms=latency_ms, seed=seed, defect_rate=defects,
                            defect_rates=parse_defect_rates(defect or []), profile=profile,
                            faults=parse_faults(faults), retry_after_s=retry_after_s,
                            answers=answers, accuracy=accuracy, unparseable=unparseable)
    except argparse.ArgumentTypeError as exc:
        raise typer.BadParameter(str(exc), param_hint="--faults") from None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--profile, --faults or --accuracy"
                                 ) from None
    if answers is not None:  # read the key now: a bad --answers fails before serving
        _run_or_exit(lambda: answer_key(answers))
    with contextlib.suppress(KeyboardInterrupt):
        serve(config, port=port)


register_eval(app, _run_or_exit)


def main() -> None:  # pragma: no cover - entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
