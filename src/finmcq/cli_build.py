"""The build commands: ``build``, ``estimate`` and ``demo`` (registered by cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from finmcq.cli_common import (
    AsOfOpt,
    BatchOpt,
    BudgetOpt,
    CapabilitiesOpt,
    ConcurrencyOpt,
    ConfigOpt,
    EffortOpt,
    MaxAttemptsOpt,
    ModelOpt,
    PricesOpt,
    QuestionsOpt,
    SeedOpt,
    SourceOpt,
    SplitsOpt,
    StageEffortOpt,
    StageModelOpt,
    SubjectsOpt,
    _mix,
    _run_or_exit,
    _settings,
    _stage_efforts,
    _stage_models,
)


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


def register(app: typer.Typer) -> None:
    """Add ``build``, ``estimate`` and ``demo`` to ``app`` (``--help`` lists them in this order)."""
    app.command()(build)
    app.command()(estimate)
    app.command()(demo)
