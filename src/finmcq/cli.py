"""The ``finmcq`` command. Thin on purpose: it parses flags and calls library functions.

Heavy imports (datasets, openai, aiohttp) happen inside the commands so ``finmcq --help`` is fast.
Nothing in the package imports this module. The commands live in cli_build.py, cli_tools.py
and cli_eval.py; shared option types and helpers in cli_common.py.
"""

from __future__ import annotations

import sys

import typer

from finmcq import cli_build, cli_tools
from finmcq.cli_common import _run_or_exit
from finmcq.cli_eval import register as register_eval

app = typer.Typer(
    name="finmcq",
    help="Build a Korean financial-market 7-option MCQ fine-tuning dataset from KMMLU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

cli_build.register(app)
cli_tools.register(app)
register_eval(app, _run_or_exit)


def main() -> None:  # pragma: no cover - entry point
    try:
        app()
    except SystemExit as done:
        _exit_now(done.code)
    _exit_now(0)


def _exit_now(code: object) -> None:
    """Leave without the interpreter's teardown: a build's heap (its store rows, indexes and
    modules) took ~0.14 s to tear down after the last file was written, for nothing. Every file
    is closed by then; the streams and logging handlers are flushed here."""
    import logging
    import os

    status = code if isinstance(code, int) else (0 if code is None else 1)
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # what SystemExit would print for a message
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 1  # e.g. stdout closed by the reader: say so in the status
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
