"""The report's HTML apart from the charts: escaping, tables and the page's sections.

The header with its key figures, the per-stage and cost tables, the delivered and dropped
samples, and the run details (settings, models, contamination, licence). Cells are built as
HTML strings; every text from a run passes through :func:`_e` first.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from finmcq import __version__
from finmcq.card import contamination_text, licence_notice, review_text
from finmcq.report.digest import ItemDigest
from finmcq.report.stats import _stage, _stages_with_usage, stage_estimates, stage_usage
from finmcq.rundir import DroppedItem, Run

SAMPLE_DROPPED = 10
SOLUTION_EXCERPT = 420


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
