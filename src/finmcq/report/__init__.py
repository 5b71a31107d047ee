"""The run report: one self-contained HTML file with charts, samples and the run's settings.

``write_report(run_dir)`` reads a finished run (see :mod:`finmcq.rundir`) and writes
``report_{timestamp}.html`` beside its other outputs. Charts are plotly figures; plotly.js is
embedded once, inline, so the file opens with no network (about 5 MB, almost all of it
plotly.js). Every number comes from the run's stats file, its items file or its SQLite store;
nothing is recomputed from LLM traffic that the stats already summarise.

Where each part lives: :mod:`.digest` (one pass over the items: :class:`ItemDigest`),
:mod:`.stats` (what is read from the stats document: funnel steps, usage and estimate per
stage), :mod:`.figures` (the charts as plotly.js figure dicts), :mod:`.sections` (escaping,
tables, the header and the other HTML sections) and :mod:`.style` (colours, fonts, CSS). This
module assembles the page; everything others use is importable from here.
"""

from __future__ import annotations

from pathlib import Path

from finmcq.card import contamination_text
from finmcq.output import atomic_writer
from finmcq.report.digest import SAMPLE_DELIVERED, ItemDigest, key_length_rank
from finmcq.report.figures import (
    Figure,
    _figure_html,
    cost_figure,
    difficulty_figure,
    funnel_figure,
    key_length_figure,
    lengths_figure,
    letters_figure,
    topics_figure,
)
from finmcq.report.sections import (
    SAMPLE_DROPPED,
    SOLUTION_EXCERPT,
    _cost_table,
    _delivered_table,
    _dropped_table,
    _e,
    _grid,
    _header,
    _run_details,
    _section,
    _stage_table,
    sample_dropped,
)
from finmcq.report.stats import LLM_STAGES, funnel_rows, stage_estimates, stage_usage
from finmcq.report.style import _CSS
from finmcq.rundir import Run, load_run

__all__ = ["CHART_IDS", "LLM_STAGES", "SAMPLE_DELIVERED", "SAMPLE_DROPPED", "SOLUTION_EXCERPT",
           "Figure", "ItemDigest", "contamination_text", "cost_figure", "difficulty_figure",
           "funnel_figure", "funnel_rows", "key_length_figure", "key_length_rank",
           "lengths_figure", "letters_figure", "render_report", "sample_dropped",
           "stage_estimates", "stage_usage", "topics_figure", "write_report"]


# The div id of every chart, in page order; tests and readers look charts up by these.
CHART_IDS: dict[str, str] = {
    "funnel": "chart-funnel",
    "topics": "chart-topics",
    "difficulty": "chart-difficulty",
    "letters": "chart-letters",
    "key_length": "chart-key-length",
    "lengths": "chart-lengths",
    "cost": "chart-cost",
}


def write_report(run_dir: Path) -> Path:
    """Write ``report_{timestamp}.html`` for the newest finished build in ``run_dir``.

    Raises ``InputError`` when ``run_dir`` is not a finished run. Returns the report's path.
    """
    run = load_run(run_dir)
    path = run.run_dir / f"report_{run.timestamp}.html"
    text = render_report(run)
    with atomic_writer(path) as handle:
        handle.write(text)
    return path


def render_report(run: Run) -> str:
    """The report of ``run`` as one HTML document."""
    from plotly.offline import get_plotlyjs  # heavy: only when a report is made

    stats = run.stats
    digest = ItemDigest.of(run.iter_items(), int(stats["questions"]["delivered"]),
                           int(stats.get("seed", 0)))
    figures = {
        "funnel": funnel_figure(stats),
        "topics": topics_figure(stats, digest),
        "difficulty": difficulty_figure(stats),
        "letters": letters_figure(stats),
        "key_length": key_length_figure(digest),
        "lengths": lengths_figure(digest),
        "cost": cost_figure(stats),
    }
    charts = {name: _figure_html(fig, CHART_IDS[name]) for name, fig in figures.items()}
    body = "\n".join([
        _header(run, digest),
        _section("Funnel", "From source questions to delivered items, with every drop reason.",
                 charts["funnel"] + _stage_table(stats)),
        _section("Coverage", "Topics against their quotas, difficulty, answer letters, and "
                 "whether the key gives itself away by its length (its rank among the 7 "
                 "options by length should be spread evenly).",
                 _grid([charts["topics"], charts["difficulty"], charts["letters"],
                        charts["key_length"]])),
        _section("Lengths and cost", "Characters per question, option and solution; tokens and "
                 "USD per stage, estimate against actual.",
                 charts["lengths"] + charts["cost"] + _cost_table(stats)),
        _section(f"{SAMPLE_DELIVERED} delivered items",
                 "A seeded sample; the key is highlighted.",
                 _delivered_table(digest.samples)),
        _section(f"{SAMPLE_DROPPED} dropped items", "One per drop reason in turn, with the "
                 "reason each was dropped.", _dropped_table(run.dropped())),
        _section("Run", "Settings, models, seed, sources and licence.", _run_details(run, digest)),
    ])
    title = f"finmcq report — {run.run_dir.name} ({run.timestamp})"
    return (
        "<!DOCTYPE html>\n<html lang=\"ko\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n"
        # plotly.js once, inline and before every chart: the file needs no network.
        f"<script type=\"text/javascript\">{get_plotlyjs()}</script>\n"
        f"</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
