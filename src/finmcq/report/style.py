"""Colours, fonts and the page's CSS: the house style shared by the charts and the HTML."""

from __future__ import annotations

FONT = ("'Noto Sans CJK KR', 'Noto Sans KR', 'Apple SD Gothic Neo', 'Malgun Gothic', "
        "system-ui, sans-serif")
KEPT_COLOR = "#2f6fb3"
DROP_COLORS = ("#d9534f", "#f0ad4e", "#8e5ea2", "#e377c2", "#bcbd22", "#17becf", "#7f7f7f",
               "#ff7f0e", "#8c564b", "#9467bd")
ORIGIN_COLORS = {"rewrite": "#2f6fb3", "generate": "#7fb3e6"}
ESTIMATE_COLOR = "#b0b0b0"


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
