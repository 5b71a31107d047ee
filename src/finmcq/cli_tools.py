"""The commands around a build: ``doctor``, ``report``, ``review``, ``export``, ``lint`` and
``fake-llm`` (registered by cli.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer

from finmcq.cli_common import CapabilitiesOpt, EffortOpt, _run_or_exit, _settings


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


def report(run_dir: RunDirArg) -> None:
    """Write report_{timestamp}.html for a finished run: funnel, coverage, cost, samples."""

    def action() -> None:
        from finmcq.report import write_report

        typer.echo(f"report written: {write_report(run_dir)}")

    _run_or_exit(action)


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


def register(app: typer.Typer) -> None:
    """Add ``doctor``, ``report``, ``review``, ``export``, ``lint`` and ``fake-llm`` to ``app``
    (``--help`` lists them in this order)."""
    app.command()(doctor)
    app.command()(report)
    app.command()(review)
    app.command()(export)
    app.command()(lint)
    app.command("fake-llm")(fake_llm)
