"""The report's charts as plain plotly.js figure dicts, and their HTML.

One function per chart (funnel, topics, difficulty, letters, key length rank, lengths, cost),
each taking the stats document and/or the :class:`~finmcq.report.digest.ItemDigest`; the house
layout (:func:`_figure`, plotly's "plotly_white" template, one-row subplots) and
:func:`_figure_html`, which lets plotly.io write a chart's ``<div>`` without plotly.js.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from finmcq.records import LETTERS
from finmcq.report.digest import ItemDigest
from finmcq.report.stats import _stages_with_usage, funnel_rows, stage_estimates, stage_usage
from finmcq.report.style import (
    DROP_COLORS,
    ESTIMATE_COLOR,
    FONT,
    KEPT_COLOR,
    ORIGIN_COLORS,
)

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
