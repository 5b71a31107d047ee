"""The ``finmcq eval`` command (registered by cli.py; kept apart so cli.py stays small).

Thin like cli.py: it parses flags and calls :func:`finmcq.evaluate.run_eval`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

RunOrExit = Callable[[Callable[[], Any]], Any]


def register(app: typer.Typer, run_or_exit: RunOrExit) -> None:
    """Add ``eval`` to ``app``; ``run_or_exit`` turns finmcq errors into messages and codes."""

    @app.command("eval")
    def eval_command(
        model: Annotated[str, typer.Option(help="The model under test (as the server names it).")],
        set_: Annotated[str, typer.Option(
            "--set", help="A run directory (its held-out questions if it has them, else its "
            "items), a heldout_*/items_*.jsonl or final_training_data_*.json file, or KMMLU: "
            "kmmlu / HAERAE-HUB/KMMLU / a local folder / a KMMLU-column .csv.")],
        base_url: Annotated[str | None, typer.Option(
            help="OpenAI-compatible base URL (vLLM, Ollama, llama.cpp...).")] = None,
        api_key_env: Annotated[str, typer.Option(
            help="Environment variable that holds the API key.")] = "OPENAI_API_KEY",
        limit: Annotated[int | None, typer.Option(
            help="Ask only a seeded sample of this many questions.")] = None,
        out: Annotated[Path | None, typer.Option(
            help="Folder for eval_{timestamp}.json/.html and the eval's cache (default: "
            "RUN_DIR/eval for a run, else ./finmcq-eval); rerunning resumes.")] = None,
        variant: Annotated[list[str] | None, typer.Option(
            help="two_step and/or direct (repeatable; default both).")] = None,
        subjects: Annotated[str | None, typer.Option(
            help="KMMLU sets: comma-separated subjects (default: the six finance-adjacent "
            "ones).")] = None,
        splits: Annotated[str | None, typer.Option(
            help="KMMLU sets: comma-separated splits (default test).")] = None,
        concurrency: Annotated[int, typer.Option(help="Requests in flight at most.")] = 32,
        temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.0,
        reasoning_max_tokens: Annotated[int, typer.Option(
            help="max_tokens of the step-1 reasoning.")] = 2048,
        answer_max_tokens: Annotated[int, typer.Option(
            help="max_tokens of a letter answer (raise it for reasoning models).")] = 16,
        system: Annotated[str | None, typer.Option(
            help="System message before the two-step prompts (e.g. the one a chat export "
            "trained with).")] = None,
        budget_usd: Annotated[float | None, typer.Option(
            help="Stop cleanly before the eval's spend would pass this many USD.")] = None,
        prices: Annotated[Path | None, typer.Option(help="TOML price table overriding ours.")
                          ] = None,
        seed: Annotated[int, typer.Option(help="Seed of the --limit sample.")] = 0,
        progress: Annotated[bool | None, typer.Option(
            help="Live progress display (default: only on a terminal).")] = None,
    ) -> None:
        """Measure a model on a set: two-step (reasoning, then the letter) and direct."""

        def action() -> None:
            from finmcq.evaluate import EvalSettings, default_out, load_eval_set, run_eval

            def names(value: str | None) -> list[str] | None:
                return [v.strip() for v in value.split(",") if v.strip()] if value else None

            eval_set = load_eval_set(set_, limit=limit, seed=seed, subjects=names(subjects),
                                     splits=names(splits))
            settings = EvalSettings(
                model=model, base_url=base_url, api_key_env=api_key_env,
                variants=tuple(variant or ("two_step", "direct")), concurrency=concurrency,
                temperature=temperature, reasoning_max_tokens=reasoning_max_tokens,
                answer_max_tokens=answer_max_tokens, budget_usd=budget_usd, prices=prices,
                system=system, seed=seed)
            if eval_set.note:
                typer.secho(f"note: {eval_set.note}", fg="yellow", err=True)
            result = run_eval(settings, eval_set, out or default_out(set_), progress=progress)
            _print_summary(result.document)
            typer.echo(f"  json  {result.json_path}\n  html  {result.html_path}")

        run_or_exit(action)


def _print_summary(doc: dict[str, Any]) -> None:
    s = doc["set"]
    typer.echo(f"{doc['model']} on {s['name']} ({s['kind']}, {s['questions']} questions):")
    for variant, data in doc["variants"].items():
        o = data["overall"]
        low, high = o["ci95"]
        typer.echo(f"  {variant:<9} accuracy {100 * (o['accuracy'] or 0):5.1f} % "
                   f"(95 % CI {100 * low:.1f}–{100 * high:.1f}), unparseable {o['unparseable']}, "
                   f"failed {o['failed']}")
    typer.echo(f"  cost ${doc['usage']['cost_usd']['this_session']:.4f} this session")
