"""The eval's outputs: ``eval_{timestamp}.json`` (every figure and every reply) and a page.

The HTML page is self-contained (no script, no network): per variant the overall accuracy with
its 95 % Wilson interval, the unparseable and failed counts, and tables by topic and by
difficulty whose bars draw each interval.
"""

from __future__ import annotations

import html
from typing import Any

from finmcq import __version__
from finmcq.evaluate.runner import EvalSettings, ItemResult
from finmcq.evaluate.scoring import breakdown, score
from finmcq.evaluate.sets import EvalSet

STRICT_FORMAT = ("an answer counts when the reply, stripped of surrounding whitespace, is exactly "
                 "one letter A-G, optionally followed by one period; anything else is "
                 "unparseable and scored wrong")
VARIANT_TITLES = {
    "two_step": "two-step (reasoning, then the letter given that reasoning)",
    "direct": "direct (the letter alone, no reasoning)",
}


def eval_document(eval_set: EvalSet, settings: EvalSettings, results: list[ItemResult],
                  usage: dict[str, Any], timestamp: str, wall_s: float) -> dict[str, Any]:
    """Everything the eval measured, as plain JSON data."""
    variants: dict[str, Any] = {}
    for variant in settings.variants:
        pairs = [(r.item, r.outcomes[variant]) for r in results if variant in r.outcomes]
        variants[variant] = {
            "overall": score(o for _, o in pairs).as_dict(),
            "by_topic": {k: v.as_dict() for k, v in breakdown(pairs, lambda i: i.topic).items()},
            "by_difficulty": {k: v.as_dict() for k, v in
                              breakdown(pairs, lambda i: i.difficulty,
                                        ("easy", "medium", "hard")).items()},
        }
    return {
        "finmcq_version": __version__,
        "timestamp": timestamp,
        "model": settings.model,
        "set": {"name": eval_set.name, "kind": eval_set.kind, "questions": len(results),
                "note": eval_set.note},
        "strict_format": STRICT_FORMAT,
        "variants": variants,
        "usage": usage,
        "wall_time_s": round(wall_s, 3),
        "settings": settings.as_dict(),
        "items": [r.as_dict() for r in results],
    }


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _row(label: str, s: dict[str, Any]) -> str:
    low, high = s["ci95"]
    acc = s["accuracy"]
    bar = (f'<div class="bar"><div class="ci" style="left:{100 * low:.1f}%;'
           f'width:{100 * (high - low):.1f}%"></div>'
           + (f'<div class="pt" style="left:{100 * acc:.1f}%"></div>' if acc is not None else "")
           + "</div>")
    return (f"<tr><td>{html.escape(label)}</td><td class=num>{s['n']}</td>"
            f"<td class=num>{_pct(acc)}</td><td class=num>{_pct(low)} – {_pct(high)}</td>"
            f"<td>{bar}</td><td class=num>{s['unparseable']}</td>"
            f"<td class=num>{s['failed']}</td><td class=num>{s['truncated']}</td></tr>")


def _table(title: str, rows: dict[str, dict[str, Any]]) -> str:
    if not rows:
        return ""
    head = ("<tr><th></th><th>n</th><th>accuracy</th><th>95 % CI (Wilson)</th><th>0 – 100 %</th>"
            "<th>unparseable</th><th>failed</th><th>cut off</th></tr>")
    body = "".join(_row(label, s) for label, s in rows.items())
    return f"<h3>{html.escape(title)}</h3><table>{head}{body}</table>"


def eval_html(doc: dict[str, Any]) -> str:
    """The page for an eval document."""
    sections = []
    for variant, data in doc["variants"].items():
        sections.append(
            f"<h2>{html.escape(VARIANT_TITLES.get(variant, variant))}</h2>"
            + _table("overall", {"all questions": data["overall"]})
            + _table("by topic", data["by_topic"])
            + _table("by difficulty", data["by_difficulty"]))
    cost = doc["usage"]["cost_usd"]
    note = doc["set"]["note"]
    return f"""<!doctype html>
<html lang="ko"><head><meta charset="utf-8">
<title>finmcq eval: {html.escape(doc['model'])}</title>
<style>
body {{ font-family: system-ui, "Noto Sans CJK KR", sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.bar {{ position: relative; width: 240px; height: 12px; background: #f1f1f1; }}
.ci {{ position: absolute; top: 0; height: 12px; background: #9ecae1; }}
.pt {{ position: absolute; top: -2px; width: 2px; height: 16px; background: #08519c; }}
.note {{ background: #fff4ce; padding: 6px 10px; }}
</style></head><body>
<h1>finmcq eval</h1>
<p>model <b>{html.escape(doc['model'])}</b> on <b>{html.escape(doc['set']['name'])}</b>
({html.escape(doc['set']['kind'])}, {doc['set']['questions']} questions) ·
{html.escape(doc['timestamp'])} · ${cost['this_session']:.4f} this session
(${cost['total']:.4f} in this --out) · finmcq {html.escape(doc['finmcq_version'])}</p>
{f'<p class="note">{html.escape(note)}</p>' if note else ''}
<p>Answers are parsed strictly: {html.escape(doc['strict_format'])}. <i>failed</i>: no reply after
every retry (scored wrong); <i>cut off</i>: a reply stopped at its max_tokens.</p>
{''.join(sections)}
</body></html>
"""
