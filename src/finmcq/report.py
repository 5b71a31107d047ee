"""The run report: one self-contained HTML file with charts, samples and the run's settings.

``write_report(run_dir)`` reads a finished run (see :mod:`finmcq.rundir`) and writes
``report_{timestamp}.html`` beside its other outputs. Charts are plotly figures; plotly.js is
embedded once, inline, so the file opens with no network (about 5 MB, almost all of it
plotly.js). Every number comes from the run's stats file, its items file or its SQLite store;
nothing is recomputed from LLM traffic that the stats already summarise.
"""

from __future__ import annotations

import html
import json
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finmcq import __version__
from finmcq.card import contamination_text, licence_notice, review_text
from finmcq.output import atomic_writer
from finmcq.quality import length_rank
from finmcq.records import LETTERS
from finmcq.rundir import DroppedItem, Run, load_run

SAMPLE_DELIVERED = 20
SAMPLE_DROPPED = 10
SOLUTION_EXCERPT = 420

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

LLM_STAGES: tuple[str, ...] = ("relevance", "rewrite", "generate", "verify", "solve")
FONT = ("'Noto Sans CJK KR', 'Noto Sans KR', 'Apple SD Gothic Neo', 'Malgun Gothic', "
        "system-ui, sans-serif")
KEPT_COLOR = "#2f6fb3"
DROP_COLORS = ("#d9534f", "#f0ad4e", "#8e5ea2", "#e377c2", "#bcbd22", "#17becf", "#7f7f7f",
               "#ff7f0e", "#8c564b", "#9467bd")
ORIGIN_COLORS = {"rewrite": "#2f6fb3", "generate": "#7fb3e6"}
ESTIMATE_COLOR = "#b0b0b0"


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


@dataclass
class ItemDigest:
    """What the report needs from the items, gathered in one pass over the items file.

    Per item only a few integers are kept (and full items only for the sample), so a report of
    a 100,000-question run needs megabytes, not the gigabytes of its items file.
    """

    n: int = 0
    by_origin: Counter[tuple[str, str]] = field(default_factory=Counter)
    ranks: list[int] = field(default_factory=list)
    question_lens: list[int] = field(default_factory=list)
    option_lens: list[int] = field(default_factory=list)
    solution_lens: list[int] = field(default_factory=list)
    licences: set[str] = field(default_factory=set)
    rewritten: int = 0
    samples: list[Mapping[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, items: Iterable[Mapping[str, Any]], total: int, seed: int,
           k: int = SAMPLE_DELIVERED) -> ItemDigest:
        """Digest ``items`` (``total`` of them); keep the seeded sample of ``k`` whole items."""
        chosen = set(random.Random(f"report:{seed}").sample(range(total), min(k, total)))
        digest = cls()
        for index, item in enumerate(items):
            digest.add(item)
            if index in chosen:
                digest.samples.append(item)
        return digest

    def add(self, item: Mapping[str, Any]) -> None:
        self.n += 1
        self.by_origin[(item["topic"], item.get("origin", "?"))] += 1
        self.ranks.append(key_length_rank(item))
        self.question_lens.append(len(item["question"]))
        self.option_lens.extend(len(text) for text in item["options"].values())
        self.solution_lens.append(len(item["solution"]))
        if item.get("provenance"):
            self.licences.add(str(item["provenance"].get("license")))
        self.rewritten += item.get("origin") == "rewrite"

    @property
    def key_longest_share(self) -> float:
        """Share of items whose key is (one of) the longest option(s): a common answer leak."""
        return sum(r == 1 for r in self.ranks) / len(self.ranks) if self.ranks else 0.0


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


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


# Figures are plain plotly.js figure dicts ({"data": [...], "layout": {...}}), not plotly's
# Python objects: those validate and deep-copy every property (the template alone once per
# figure), which cost ~0.4 s of CPU per build for seven small charts (issue 12). plotly.io
# still writes the HTML; what it receives is what plotly.js draws.
Figure = dict[str, Any]


def _figure(data: list[dict[str, Any]], title: str, height: int, *, top: int = 60,
            **layout: Any) -> Figure:
    """A figure in the house style; ``top`` leaves room for subplot titles under the title."""
    return {"data": data, "layout": {
        "title": {"text": title, "x": 0.01, "font": {"size": 16}},
        "template": _template(), "height": height, "font": {"family": FONT, "size": 13},
        "margin": {"l": 60, "r": 20, "t": top, "b": 50},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": -0.3, "x": 0},
        **layout,
    }}


_TEMPLATE: dict[str, Any] = {}


def _template() -> dict[str, Any]:
    """plotly's "plotly_white" template as plotly.js takes it (a name means nothing to it).

    Read from plotly's own JSON file; plotly.io's template registry gives the same dict but
    builds and validates a Template object on the way (~0.1 s).
    """
    if not _TEMPLATE:
        from importlib import resources

        try:
            text = (resources.files("plotly") / "package_data" / "templates"
                    / "plotly_white.json").read_text("utf-8")
            _TEMPLATE.update(json.loads(text))
        except (OSError, ValueError):  # another plotly layout: ask plotly.io
            import plotly.io as pio

            _TEMPLATE.update(pio.templates["plotly_white"].to_plotly_json())
    return _TEMPLATE


def _subplots(titles: Sequence[str]) -> dict[str, Any]:
    """Layout of one row of len(titles) subplots with their titles (as make_subplots lays
    them out: 0.2 / n horizontal spacing, titles centred above each plot)."""
    n = len(titles)
    spacing = 0.2 / n
    width = (1 - spacing * (n - 1)) / n
    layout: dict[str, Any] = {"annotations": []}
    for i, title in enumerate(titles):
        left = i * (width + spacing)
        suffix = str(i + 1) if i else ""
        layout[f"xaxis{suffix}"] = {"anchor": f"y{suffix}", "domain": [left, left + width]}
        layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "domain": [0.0, 1.0]}
        layout["annotations"].append({
            "text": title, "x": left + width / 2, "xref": "paper", "xanchor": "center",
            "y": 1.0, "yref": "paper", "yanchor": "bottom", "showarrow": False,
            "font": {"size": 16}})
    return layout


def _axes(row_col: int) -> dict[str, str]:
    """A trace's axes in subplot ``row_col`` (1-based, one row)."""
    suffix = str(row_col) if row_col > 1 else ""
    return {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}


def _hline(y: float, color: str) -> dict[str, Any]:
    """A dashed horizontal line across the plot at ``y`` (plotly's add_hline)."""
    return {"type": "line", "xref": "x domain", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y,
            "line": {"dash": "dash", "color": color}}


def _stage(stats: Mapping[str, Any], name: str) -> dict[str, Any]:
    stage = stats.get("stages", {}).get(name)
    return stage if isinstance(stage, dict) else {"in": 0, "out": 0, "drop_reasons": {}}


def funnel_rows(stats: Mapping[str, Any]) -> list[tuple[str, int, dict[str, int]]]:
    """(step, items kept, {drop reason: count}) for each step of the funnel, in order.

    A step's width is what reached it; kept plus dropped. Placement drops (an invalid 7-option
    item) happen just before verification and are shown there.
    """
    def reasons(*names: str) -> dict[str, int]:
        merged: dict[str, int] = {}
        for name in names:
            for reason, n in _stage(stats, name).get("drop_reasons", {}).items():
                merged[f"{name}: {reason}"] = int(n)
        return merged

    return [
        ("source questions", int(stats.get("sources", 0)), {}),
        ("relevant", int(_stage(stats, "relevance")["out"]), reasons("relevance")),
        ("rewritten", int(_stage(stats, "rewrite")["out"]), reasons("rewrite")),
        ("generated", int(_stage(stats, "generate")["out"]), reasons("generate")),
        ("verified", int(_stage(stats, "verify")["out"]), reasons("placement", "verify")),
        ("solved", int(_stage(stats, "solve")["out"]), reasons("solve")),
        ("delivered", int(stats["questions"]["delivered"]), reasons("dedupe")),
    ]


def funnel_figure(stats: Mapping[str, Any]) -> Figure:
    """A stacked funnel: what each step kept, and what it dropped, by reason."""
    rows = funnel_rows(stats)
    steps = [step for step, _, _ in rows]
    data: list[dict[str, Any]] = [{
        "type": "funnel", "name": "kept", "y": steps, "x": [kept for _, kept, _ in rows],
        "marker": {"color": KEPT_COLOR}, "textinfo": "value", "textposition": "inside",
        "connector": {"line": {"color": "#ddd"}},
        "hovertemplate": "%{y}: %{x} kept<extra></extra>",
    }]
    all_reasons = sorted({r for _, _, drops in rows for r in drops})
    for i, reason in enumerate(all_reasons):
        counts = [drops.get(reason, 0) for _, _, drops in rows]
        data.append({
            "type": "funnel", "name": f"dropped — {reason}", "y": steps, "x": counts,
            "marker": {"color": DROP_COLORS[i % len(DROP_COLORS)]},
            "text": [str(n) if n else "" for n in counts], "textinfo": "text",
            "textposition": "outside",
            "hovertemplate": "%{y}: %{x} dropped (" + reason + ")<extra></extra>",
        })
    return _figure(data, "Funnel: kept and dropped per step", 460 + 18 * len(all_reasons),
                   funnelmode="stack")


def topics_figure(stats: Mapping[str, Any], digest: ItemDigest) -> Figure:
    """Delivered items per topic (split by origin) against each topic's quota."""
    topics = list(stats.get("topics", {}))[::-1]  # plotly draws the first category lowest
    by_origin = digest.by_origin
    origins = sorted({origin for _, origin in by_origin})
    data: list[dict[str, Any]] = [
        {"type": "bar", "name": f"delivered ({origin})", "y": topics, "orientation": "h",
         "x": [by_origin[(t, origin)] for t in topics],
         "marker": {"color": ORIGIN_COLORS.get(origin, "#999")}}
        for origin in origins]
    data.append({
        "type": "scatter", "name": "quota", "y": topics,
        "x": [stats["topics"][t]["quota"] for t in topics], "mode": "markers",
        "marker": {"symbol": "line-ns-open", "size": 22, "color": "#c0392b",
                   "line": {"width": 3, "color": "#c0392b"}},
    })
    return _figure(data, "Topics: delivered against quota", 420, barmode="stack",
                   xaxis={"title": {"text": "items"}})


def difficulty_figure(stats: Mapping[str, Any]) -> Figure:
    """Delivered difficulty mix against the mix the settings asked for."""
    got: dict[str, int] = dict(stats.get("difficulty", {}))
    levels = ["easy", "medium", "hard"]
    levels += sorted(set(got) - set(levels))  # e.g. "unknown" for items without a difficulty
    delivered = int(stats["questions"]["delivered"])
    mix = stats.get("settings", {}).get("difficulty_mix") or []
    target = ([delivered * w / sum(mix) for w in mix] if len(mix) == 3 and sum(mix) > 0
              else [])
    counts = [got.get(lv, 0) for lv in levels]
    data: list[dict[str, Any]] = [{
        "type": "bar", "name": "delivered", "x": levels, "y": counts,
        "marker": {"color": KEPT_COLOR}, "text": [str(n) for n in counts],
        "textposition": "outside"}]
    if target:
        data.append({"type": "bar", "name": "asked (difficulty_mix)", "x": levels[:3],
                     "y": [round(v, 1) for v in target], "marker": {"color": ESTIMATE_COLOR}})
    return _figure(data, "Difficulty mix", 420, barmode="group",
                   yaxis={"title": {"text": "items"}})


def letters_figure(stats: Mapping[str, Any]) -> Figure:
    """How often each letter A–G is the key, against an even split."""
    letters = stats.get("letters", {})
    counts = [int(letters.get(ch, 0)) for ch in LETTERS]
    even = sum(counts) / len(LETTERS)
    data = [{"type": "bar", "x": list(LETTERS), "y": counts, "text": [str(n) for n in counts],
             "textposition": "inside", "marker": {"color": KEPT_COLOR}, "name": "key"}]
    return _figure(data, f"Answer letters A–G (dashed: even split, {even:.1f} each)", 420,
                   shapes=[_hline(even, "#c0392b")], showlegend=False,
                   yaxis={"title": {"text": "items"},
                          "range": [0, 1.15 * max([even, *counts]) or 1]})


def key_length_rank(item: Mapping[str, Any]) -> int:
    """The key's length rank among the item's 7 options (1 = longest), as the build measured
    it; equal lengths are ordered by a coin seeded by the item id."""
    recorded = (item.get("quality") or {}).get("key_length_rank")
    if isinstance(recorded, int):
        return recorded
    options = list(item["options"].values())
    return length_rank.key_length_rank(options, list(item["options"]).index(item["answer"]),
                                       item.get("item_id"))


def key_length_figure(digest: ItemDigest) -> Figure:
    """Where the key ranks by length; a model can learn 'pick the longest' if rank 1 dominates."""
    ranks = Counter(digest.ranks)
    n = max(1, digest.n)
    shares = [100 * ranks.get(r, 0) / n for r in range(1, 8)]
    labels = ["longest", *[f"{r}th" if r > 3 else ("2nd" if r == 2 else "3rd")
                           for r in range(2, 8)]]
    data = [{
        "type": "bar", "x": labels, "y": shares, "text": [f"{s:.1f}%" for s in shares],
        "textposition": "outside",
        "marker": {"color": ["#c0392b" if r == 1 else KEPT_COLOR for r in range(1, 8)]},
    }]
    spread = max((abs(s - 100 / 7) for s in shares), default=0.0)
    return _figure(data, f"Key's length rank: each rank within ±{spread:.1f} points of 14.3% "
                   "(dashed: no length cue)", 420, shapes=[_hline(100 / 7, "#555")],
                   xaxis={"title": {"text": "key's length rank among the 7 options"}},
                   yaxis={"title": {"text": "% of items"}}, showlegend=False)


def lengths_figure(digest: ItemDigest) -> Figure:
    """Histograms of question, option and solution lengths in characters."""
    series = {
        "question": digest.question_lens,
        "options (each)": digest.option_lens,
        "solution": digest.solution_lens,
    }
    layout = _subplots(list(series))
    data: list[dict[str, Any]] = []
    for col, (name, values) in enumerate(series.items(), start=1):
        data.append({"type": "histogram", "x": values, "name": name, "nbinsx": 30,
                     "marker": {"color": KEPT_COLOR}, **_axes(col)})
        layout["xaxis" + (str(col) if col > 1 else "")]["title"] = {"text": "characters"}
    layout["yaxis"]["title"] = {"text": "count"}
    return _figure(data, "Length histograms", 400, showlegend=False, bargap=0.05, top=90,
                   **layout)


def stage_estimates(stats: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The pre-run estimate per stage, when the build recorded one (else empty).

    Read from ``stats["estimate"]["stages"]`` (finmcq.estimate's layout) or from per-stage
    dicts at the top of ``stats["estimate"]``; USD may be ``usd`` or ``cost_usd``. Each entry
    comes back with ``calls``, ``prompt_tokens``, ``completion_tokens`` and ``cost_usd`` (any of
    them None when not estimated).
    """
    estimate = stats.get("estimate")
    if not isinstance(estimate, dict):
        return {}
    stages = estimate.get("stages")
    per_stage: dict[str, Any] = stages if isinstance(stages, dict) else estimate
    return {
        name: {"calls": v.get("calls"), "prompt_tokens": v.get("prompt_tokens"),
               "completion_tokens": v.get("completion_tokens"),
               "reasoning_tokens": v.get("reasoning_tokens"),
               "cost_usd": v.get("cost_usd", v.get("usd"))}
        for name, v in per_stage.items() if isinstance(v, dict) and name != "total"
    }


def stage_usage(stats: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Actual tokens and USD per LLM stage, over every session of the run."""
    usage = stats.get("usage_all_sessions") or stats.get("usage_this_session") or {}
    return {k: v for k, v in usage.items() if isinstance(v, dict)}


def _stages_with_usage(stats: Mapping[str, Any]) -> list[str]:
    seen = set(stage_usage(stats)) | set(stage_estimates(stats))
    return [s for s in LLM_STAGES if s in seen] + sorted(seen - set(LLM_STAGES))


def cost_figure(stats: Mapping[str, Any]) -> Figure:
    """Tokens and USD per stage: actual, and the estimate beside it where there is one."""
    stages = _stages_with_usage(stats)
    usage, estimate = stage_usage(stats), stage_estimates(stats)

    def values(source: dict[str, dict[str, Any]], key: str) -> list[float | None]:
        return [source.get(s, {}).get(key) for s in stages]

    def bar(name: str, y: list[float | None], color: str, col: int) -> dict[str, Any]:
        return {"type": "bar", "name": name, "x": stages, "y": y, "marker": {"color": color},
                **_axes(col)}

    # Each estimate bar stands right of its actual one: prompt, prompt est., completion, ...
    data: list[dict[str, Any]] = []
    for key, color, est_color in (("prompt_tokens", "#2f6fb3", "#9a9a9a"),
                                  ("completion_tokens", "#7fb3e6", "#cfcfcf")):
        label = key.split("_")[0]
        data.append(bar(f"actual {label}", values(usage, key), color, 1))
        if estimate:
            data.append(bar(f"estimate {label}", values(estimate, key), est_color, 1))
    data.append(bar("actual USD", values(usage, "cost_usd"), "#2e7d32", 2))
    if estimate:
        data.append(bar("estimate USD", values(estimate, "cost_usd"), "#a5d6a7", 2))
    title = ("Tokens and cost per stage: estimate vs actual" if estimate else
             "Tokens and cost per stage: actual (estimate: n/a, the build recorded none)")
    return _figure(data, title, 440, barmode="group", top=90,
                   **_subplots(["tokens", "cost (USD)"]))


def _figure_html(fig: Figure, div_id: str) -> str:
    import plotly.io as pio

    return str(pio.to_html(
        fig, validate=False, full_html=False, include_plotlyjs=False, div_id=div_id,
        default_width="100%",
        # No mode bar: it covers chart titles; zoom by dragging, reset by double-click.
        config={"displaylogo": False, "responsive": True, "displayModeBar": False},
    ))


# --------------------------------------------------------------------------------------------
# HTML pieces
# --------------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _section(title: str, lead: str, content: str) -> str:
    slug = title.lower().replace(" ", "-")
    return (f"<section id=\"{_e(slug)}\">\n<h2>{_e(title)}</h2>\n<p class=\"lead\">{_e(lead)}"
            f"</p>\n{content}\n</section>")


def _grid(cells: Iterable[str]) -> str:
    return "<div class=\"grid\">" + "".join(f"<div>{c}</div>" for c in cells) + "</div>"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table; cells are HTML already (escape text with ``_e`` first)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    class_attr = f" class=\"{cls}\"" if cls else ""
    return f"<table{class_attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _money(value: Any) -> str:
    return f"${value:,.4f}" if isinstance(value, int | float) else "n/a"


def _count(value: Any) -> str:
    # Estimates are expected values (35.2 calls): whole numbers read better beside actuals.
    return f"{value:,.0f}" if isinstance(value, int | float) else "n/a"


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "n/a"


def _is_fake(stats: Mapping[str, Any]) -> bool:
    return any(str(m).startswith("fake-") for m in stats.get("models", {}).values())


def _header(run: Run, digest: ItemDigest) -> str:
    stats = run.stats
    q = stats["questions"]
    relevance = _stage(stats, "relevance")
    kpis = [
        ("delivered", f"{q['delivered']:,} / {q['target']:,}"),
        ("training pairs", _count(stats.get("pairs"))),
        ("source questions", _count(stats.get("sources"))),
        ("relevant", f"{relevance['out']:,} of {relevance['in']:,}"),
        ("cost (all sessions)", _money(stats.get("cost_usd", {}).get("total"))),
        ("wall time", f"{stats.get('wall_time_s', 0):,.1f} s"),
        ("key is longest option", f"{100 * digest.key_longest_share:.1f}%"),
        ("negative stems", _pct(stats.get("negative_stems", {}).get("share"))),
        ("time-sensitive keys", _count(stats.get("time_sensitive", {}).get("count"))),
        ("rules as of", stats.get("as_of") or stats.get("settings", {}).get("as_of") or "—"),
    ]
    cards = "".join(f"<div class=\"kpi\"><div class=\"v\">{_e(v)}</div>"
                    f"<div class=\"k\">{_e(k)}</div></div>" for k, v in kpis)
    fake = ("<p class=\"note\">This run used finmcq's built-in <b>fake LLM</b>: it shows the "
            "pipeline and the format, not real questions.</p>" if _is_fake(stats) else "")
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<header>\n<h1>finmcq run report</h1>\n"
        f"<p class=\"meta\">{_e(run.run_dir)} · build {_e(run.timestamp)} · finmcq "
        f"{_e(stats.get('finmcq_version', '?'))} · report made {_e(made)} by finmcq "
        f"{_e(__version__)}</p>\n{fake}<div class=\"kpis\">{cards}</div>\n</header>"
    )


def _stage_table(stats: Mapping[str, Any]) -> str:
    rows = []
    for name, stage in stats.get("stages", {}).items():
        reasons = ", ".join(f"{r} × {n}" for r, n in stage.get("drop_reasons", {}).items())
        retried = ", ".join(f"{r} × {n}" for r, n in stage.get("retried", {}).items())
        rows.append([_e(name), _count(stage.get("in")), _count(stage.get("out")),
                     _count(stage.get("dropped")), _e(reasons or "—"), _e(retried or "—")])
    return _table(["stage", "in", "out", "dropped", "drop reasons", "retried"], rows, "num")


def _cost_table(stats: Mapping[str, Any]) -> str:
    usage, estimate = stage_usage(stats), stage_estimates(stats)
    rows = []
    # Hidden reasoning tokens (part of completion tokens): columns only when a model reasoned.
    reasoned = any(row.get("reasoning_tokens") for part in (usage, estimate)
                   for row in part.values())
    for stage in _stages_with_usage(stats):
        act, est = usage.get(stage, {}), estimate.get(stage, {})
        rows.append([
            _e(stage), _count(est.get("calls")),
            _count(act.get("responses", act.get("requests"))),
            _count(est.get("prompt_tokens")), _count(act.get("prompt_tokens")),
            _count(est.get("completion_tokens")), _count(act.get("completion_tokens")),
            *([_count(est.get("reasoning_tokens") or 0), _count(act.get("reasoning_tokens") or 0)]
              if reasoned else []),
            _money(est.get("cost_usd")), _money(act.get("cost_usd")),
        ])
    est_costs = [v.get("cost_usd") for v in estimate.values()]
    # A stage whose model has no price has no USD estimate: then the total is unknown too.
    priced = [float(c) for c in est_costs if isinstance(c, int | float)]
    total_est = sum(priced) if est_costs and len(priced) == len(est_costs) else None
    blanks = 8 if reasoned else 6
    rows.append(["<b>total</b>", *[""] * blanks, _money(total_est),
                 _money(stats.get("cost_usd", {}).get("total"))])
    reasoning = ["of which reasoning (est.)", "of which reasoning"] if reasoned else []
    return _table(["stage", "calls (est.)", "replies", "prompt tokens (est.)", "prompt tokens",
                   "completion tokens (est.)", "completion tokens", *reasoning, "USD (est.)",
                   "USD"], rows, "num")


def sample_dropped(dropped: Sequence[DroppedItem], k: int = SAMPLE_DROPPED) -> list[DroppedItem]:
    """Up to ``k`` drops, taking one per (stage, reason) in turn so rare reasons show up."""
    groups: dict[tuple[str, str], list[DroppedItem]] = {}
    for drop in dropped:
        groups.setdefault((drop.stage, drop.reason), []).append(drop)
    queues = [groups[key] for key in sorted(groups)]
    chosen: list[DroppedItem] = []
    depth = 0
    while len(chosen) < k and any(depth < len(q) for q in queues):
        chosen += [q[depth] for q in queues if depth < len(q)][: k - len(chosen)]
        depth += 1
    return chosen


def _excerpt(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + " …"


_KEY_CLASS = ' class="key"'


def _delivered_table(samples: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for n, item in enumerate(samples, start=1):
        options = "".join(
            f"<li{_KEY_CLASS if letter == item['answer'] else ''}><b>{letter}.</b> {_e(text)}</li>"
            for letter, text in item["options"].items())
        about = (f"<div class=\"about\"><span class=\"keyletter\">{_e(item['answer'])}</span> "
                 f"<code>{_e(item['item_id'])}</code> · {_e(item['topic'])} · "
                 f"{_e(item.get('difficulty') or '—')} · {_e(item.get('origin', '?'))}</div>")
        rows.append([str(n), about + f"<div class=\"q\">{_e(item['question'])}</div>",
                     f"<ol class=\"opts\">{options}</ol>",
                     f"<div class=\"sol\">{_e(_excerpt(item['solution'], SOLUTION_EXCERPT))}"
                     "</div>"])
    return _table(["#", "key · item · topic · difficulty · origin / question", "options",
                   "solution (excerpt)"], rows, "samples delivered")


def _dropped_table(dropped: Sequence[DroppedItem]) -> str:
    if not dropped:
        return "<p>No item was dropped in this run (or the run has no finmcq.sqlite).</p>"
    chosen = sample_dropped(dropped)
    by_stage = Counter(d.stage for d in dropped)
    summary = ", ".join(f"{stage} {n}" for stage, n in sorted(by_stage.items()))
    rows = [[str(n), f"<code>{_e(d.item_id)}</code>", _e(d.stage),
             f"<b>{_e(d.reason)}</b>", _e(_excerpt(d.detail, 300) or "—"),
             _e(_excerpt(d.question, 300)) if d.question else "<i>not recorded</i>"]
            for n, d in enumerate(chosen, start=1)]
    return (f"<p>{len(dropped):,} drops recorded ({_e(summary)}).</p>"
            + _table(["#", "item", "stage", "reason", "detail", "question"], rows, "samples"))


def _time_sensitive_text(stats: Mapping[str, Any]) -> str:
    ts = stats.get("time_sensitive")
    if not isinstance(ts, Mapping):
        return "not recorded"
    if not ts.get("judged"):
        return "not judged (second-answer judge off)"
    return (f"{ts.get('count', 0):,} of {ts.get('judged', 0):,} items rest on a dated rule "
            "(quality.time_sensitive in the items file); refresh them when rules change")


def _kv(rows: Iterable[tuple[str, Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, dict | list):
            return f"<code>{_e(json.dumps(value, ensure_ascii=False))}</code>"
        return _e("—" if value is None else value)

    return _table(["", ""], ([_e(k), cell(v)] for k, v in rows), "kv")


def _run_details(run: Run, digest: ItemDigest) -> str:
    stats = run.stats
    source = stats.get("source", {})
    warning = source.get("warning")
    general = [
        ("seed", stats.get("seed")),
        ("rules and market facts as of", stats.get("as_of")),
        ("time-sensitive keys (judge)", _time_sensitive_text(stats)),
        ("negative stems", _pct(stats.get("negative_stems", {}).get("share"))),
        ("source dataset", source.get("dataset")),
        ("subjects", ", ".join(source.get("subjects", []))),
        ("splits", ", ".join(source.get("splits", []))),
        ("source questions", source.get("questions")),
        ("splits warning", warning),
        ("files", ", ".join(p.name for p in (run.files.stats, run.files.items,
                                             run.files.training_data))),
        ("peak requests in flight", stats.get("peak_in_flight")),
        ("retries by cause", stats.get("retries_by_cause") or "none"),
        ("human review", review_text(stats)),
    ]
    models = _table(["stage", "model"], ([_e(k), _e(v)] for k, v in
                                         stats.get("models", {}).items()), "kv")
    settings = _kv(sorted(stats.get("settings", {}).items()))
    return (
        "<div class=\"grid\"><div><h3>Run</h3>" + _kv(general) + "<h3>Models</h3>" + models
        + "<h3>Contamination</h3><p>" + _e(contamination_text(stats)) + "</p>"
        + "<h3>Licence</h3><p class=\"licence\">" + _e(licence_notice(
            sorted(digest.licences), digest.rewritten, digest.n - digest.rewritten))
        + "</p></div><div><h3>Settings</h3>" + settings + "</div></div>"
    )


_CSS = f"""
:root {{ --fg: #1d2733; --muted: #5b6775; --line: #e3e8ee; --accent: {KEPT_COLOR}; }}
* {{ box-sizing: border-box; }}
body {{ margin: 0; font-family: {FONT}; color: var(--fg); background: #f6f8fa;
       line-height: 1.5; font-size: 14px; }}
main {{ max-width: 1360px; margin: 0 auto; padding: 24px 28px 60px; }}
header h1 {{ margin: 0 0 4px; font-size: 26px; }}
.meta {{ color: var(--muted); margin: 0 0 12px; word-break: break-all; }}
.note {{ background: #fff7e0; border: 1px solid #f0d48a; padding: 8px 12px; border-radius: 6px; }}
.kpis {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px;
        margin: 12px 0 8px; }}
.kpi {{ background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px; }}
.kpi .v {{ font-size: 20px; font-weight: 700; }}
.kpi .k {{ color: var(--muted); font-size: 12px; text-transform: uppercase; }}
section {{ background: #fff; border: 1px solid var(--line); border-radius: 10px;
          padding: 16px 20px; margin: 20px 0; }}
section h2 {{ margin: 0 0 2px; font-size: 20px; }}
.lead {{ color: var(--muted); margin: 0 0 10px; }}
h3 {{ font-size: 15px; margin: 14px 0 6px; }}
.grid {{ display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }}
.grid > div {{ min-width: 0; }}
table {{ border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 13px; }}
th, td {{ border-bottom: 1px solid var(--line); padding: 6px 8px; text-align: left;
         vertical-align: top; }}
th {{ background: #f0f3f6; font-weight: 600; }}
table.num td:not(:first-child):not(:nth-last-child(-n+2)) {{ text-align: right; }}
table.kv td:first-child {{ color: var(--muted); white-space: nowrap; width: 30%; }}
table.kv thead {{ display: none; }}
table.kv code {{ word-break: break-all; font-size: 12px; }}
table.delivered td:nth-child(2) {{ width: 34%; }}
table.delivered td:nth-child(3) {{ width: 30%; }}
.about {{ color: var(--muted); font-size: 12px; margin-bottom: 4px; }}
ol.opts {{ list-style: none; margin: 0; padding: 0; }}
ol.opts li {{ padding: 1px 4px; border-radius: 4px; }}
ol.opts li.key {{ background: #e3f1e4; font-weight: 600; }}
.keyletter {{ display: inline-block; background: #2e7d32; color: #fff; border-radius: 4px;
             padding: 0 8px; font-weight: 700; }}
.sol {{ white-space: pre-wrap; color: #333; font-size: 12px; }}
.licence {{ background: #f7f3ff; border-left: 4px solid #8e5ea2; padding: 8px 12px; }}
code {{ font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 12px; }}
"""
