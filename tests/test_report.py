"""The run report: one self-contained HTML file with every chart, that a browser opens cleanly."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from finmcq.build import run_build
from finmcq.config import BuildSettings
from finmcq.errors import InputError
from finmcq.report import (
    CHART_IDS,
    SAMPLE_DROPPED,
    _cost_table,
    contamination_text,
    cost_figure,
    funnel_rows,
    render_report,
    sample_dropped,
    stage_estimates,
    write_report,
)
from finmcq.rundir import DroppedItem, find_run, load_run

from .conftest import REPO, chromium_or_skip

ARTIFACTS = REPO / ".artifacts"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo-like build (sample source, fake LLM) with some failed calls, so drops exist."""
    from finmcq.fake.server import FakeConfig, FakeLLMServer

    out = tmp_path_factory.mktemp("report") / "run"
    with FakeLLMServer(FakeConfig(rate_malformed=0.2)) as fake:
        run_build(BuildSettings(source="sample", questions=70, seed=7, out=out,
                                model="fake-finance-1", base_url=fake.base_url, max_retries=2),
                  progress=False)
    return out


@pytest.fixture(scope="module")
def report(run_dir: Path) -> Path:
    return write_report(run_dir)


# -- the file ----------------------------------------------------------------------------------


class _StrictHTML(HTMLParser):
    """Tracks open elements: every non-void element must be closed, in order."""

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                      "source", "track", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.doctype = ""
        self.ids: list[str] = []
        self.counts: dict[str, int] = {}
        self.external: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1
        values = dict(attrs)
        if values.get("id"):
            self.ids.append(str(values["id"]))
        for attr in ("src", "href"):
            if re.match(r"^(https?:)?//", values.get(attr) or ""):
                self.external.append(f"<{tag} {attr}={values[attr]}>")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else '-'}>")
            return
        self.stack.pop()


def parse(text: str) -> _StrictHTML:
    parser = _StrictHTML()
    parser.feed(text)
    parser.close()
    return parser


def test_report_is_written_beside_the_build_and_named_by_its_timestamp(
        run_dir: Path, report: Path) -> None:
    files = find_run(run_dir)
    assert report == run_dir / f"report_{files.timestamp}.html"
    size_mb = report.stat().st_size / 1e6
    assert 1 < size_mb < 8, size_mb  # plotly.js inline is most of it


def test_report_is_valid_self_contained_html_with_every_chart(report: Path) -> None:
    text = report.read_text("utf-8")
    page = parse(text)
    assert page.doctype.lower() == "doctype html"
    assert not page.problems, page.problems[:5]
    assert not page.stack, f"unclosed elements: {page.stack}"
    assert page.counts.get("html") == page.counts.get("head") == page.counts.get("body") == 1
    assert page.counts.get("title") == 1
    assert not page.external, f"the report must open without network: {page.external}"
    for name, div_id in CHART_IDS.items():
        assert page.ids.count(div_id) == 1, name
        assert re.search(r'Plotly\.newPlot\(\s*"' + div_id + '"', text), name
    # plotly.js itself is inline, once, in the head: every chart's script finds it loaded.
    from plotly.offline import get_plotlyjs

    bundle_start = get_plotlyjs()[:200]
    assert text.count(bundle_start) == 1
    assert text.index(bundle_start) < text.index("</head>")


class _Tables(HTMLParser):
    """The report's own tables, as rows of cell texts; scripts (plotly.js, chart data) and
    styles are skipped, so nothing is found inside the inlined library."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def own_tables(html: str) -> _Tables:
    tables = _Tables()
    tables.feed(html)
    return tables


def cost_rows(html: str) -> dict[str, dict[str, str]]:
    """The cost table of a report: stage -> column -> cell text."""
    rows = own_tables(html).rows
    header = next(r for r in rows if r[:2] == ["stage", "calls (est.)"])
    start = rows.index(header) + 1
    table: dict[str, dict[str, str]] = {}
    for row in rows[start:]:
        if len(row) != len(header):
            break
        table[row[0]] = dict(zip(header, row, strict=True))
    return table


def test_report_shows_samples_settings_licence_and_missing_estimates(
        run_dir: Path, report: Path) -> None:
    text = report.read_text("utf-8")
    run = load_run(run_dir)
    delivered_rows = re.findall(r'<span class="keyletter">([A-G])</span>', text)
    assert len(delivered_rows) == 20
    dropped = run.dropped()
    assert dropped, "the fixture's failed calls should have dropped some items"
    shown = sample_dropped(dropped)
    assert len(shown) == min(SAMPLE_DROPPED, len(dropped))
    for drop in shown:
        assert f"<code>{drop.item_id}</code>" in text
    for reason in {d.reason for d in dropped}:
        assert reason in text
    tables = own_tables(text)
    own_text = " ".join(tables.text)
    assert "CC BY-ND 4.0" in own_text and "derivatives" in own_text
    # The run details, read from the report's own tables (not from plotly.js, which contains
    # digits, split-like words and "n/a" of its own).
    details: dict[str, str] = {}
    for row in tables.rows:  # the Run table comes before Settings (same keys, build's inputs)
        if len(row) == 2:
            details.setdefault(row[0], row[1])
    assert details["seed"] == str(run.stats["seed"]) == "7"
    assert details["splits"] == ", ".join(run.stats["source"]["splits"]) == "file"
    assert ["verify", "fake-finance-1"] in tables.rows
    assert "contamination check was not run" in own_text
    # This build recorded an estimate: every stage has one, and the total is priced.
    costs = cost_rows(text)
    assert costs and all(row["USD (est.)"].startswith("$") for row in costs.values()), costs


def test_report_of_a_build_without_an_estimate_says_n_a(run_dir: Path, tmp_path: Path) -> None:
    """An older run's stats have no estimate: its columns say n/a, the actuals still show."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("report_*.html"))
    stats_file = next(copy.glob("processing_stats_*.json"))
    stats = json.loads(stats_file.read_text("utf-8"))
    stats.pop("estimate")
    stats.pop("estimate_vs_actual", None)
    stats_file.write_text(json.dumps(stats, ensure_ascii=False), "utf-8")
    costs = cost_rows(write_report(copy).read_text("utf-8"))
    stages = [name for name in costs if name != "total"]
    assert stages
    for name in stages:
        row = costs[name]
        assert row["calls (est.)"] == row["USD (est.)"] == "n/a", row
        assert row["USD"].startswith("$") and row["replies"] != "n/a", row
    assert costs["total"]["USD (est.)"] == "n/a"
    assert costs["total"]["USD"].startswith("$")


def test_funnel_rows_follow_the_stats() -> None:
    stats: dict[str, Any] = {
        "sources": 10, "questions": {"delivered": 5, "target": 5},
        "stages": {
            "relevance": {"in": 10, "out": 6, "drop_reasons": {"not_relevant": 4}},
            "rewrite": {"in": 6, "out": 5, "drop_reasons": {"llm_failed:max_attempts": 1}},
            "generate": {"in": 1, "out": 1, "drop_reasons": {}},
            "placement": {"in": 6, "out": 6, "drop_reasons": {}},
            "verify": {"in": 6, "out": 5, "drop_reasons": {"blind_mismatch": 1}},
            "solve": {"in": 5, "out": 5, "drop_reasons": {}},
            "dedupe": {"in": 5, "out": 5, "drop_reasons": {}},
        },
    }
    rows = funnel_rows(stats)
    assert [r[0] for r in rows] == ["source questions", "relevant", "rewritten", "generated",
                                    "verified", "solved", "delivered"]
    assert [r[1] for r in rows] == [10, 6, 5, 1, 5, 5, 5]
    assert rows[1][2] == {"relevance: not_relevant": 4}
    assert rows[4][2] == {"verify: blind_mismatch": 1}


def test_estimates_and_contamination_show_when_the_build_recorded_them() -> None:
    # finmcq.estimate's layout: per stage under "stages", USD as "usd", totals beside.
    stats: dict[str, Any] = {
        "questions": {"delivered": 1, "target": 1}, "cost_usd": {"total": 0.5},
        "usage_all_sessions": {"solve": {"prompt_tokens": 10, "completion_tokens": 20,
                                         "cost_usd": 0.5, "responses": 3}},
        "estimate": {"stages": {"solve": {"calls": 2.5, "prompt_tokens": 12,
                                          "completion_tokens": 18, "usd": 0.4}},
                     "total": {"usd": 0.4}}}
    assert stage_estimates(stats) == {"solve": {"calls": 2.5, "prompt_tokens": 12,
                                                "completion_tokens": 18, "cost_usd": 0.4,
                                                "reasoning_tokens": None}}
    names = [trace["name"] for trace in cost_figure(stats)["data"]]
    assert "estimate USD" in names and "actual USD" in names
    bare = cost_figure({"usage_all_sessions": {}})
    assert "estimate USD" not in [t["name"] for t in bare["data"]]
    table = _cost_table(stats)
    assert "$0.4000" in table and "$0.5000" in table and "n/a" not in table
    assert contamination_text({}) == "The contamination check was not run for this build."
    text = contamination_text({"contamination": {"status": "clean", "overlaps": 0}})
    assert "clean" in text and "overlaps: 0" in text


def test_dropped_sample_takes_every_reason_before_repeating_one() -> None:
    drops = [DroppedItem(f"a{i}", "verify", "llm_failed", "", None) for i in range(20)]
    drops += [DroppedItem("b", "relevance", "not_relevant", "", "q")]
    shown = sample_dropped(drops, 3)
    assert {d.reason for d in shown} == {"llm_failed", "not_relevant"} and len(shown) == 3


def test_a_folder_that_is_not_a_finished_run_is_a_clear_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        write_report(tmp_path / "nope")
    with pytest.raises(InputError, match="not a finished finmcq run"):
        write_report(tmp_path)
    (tmp_path / "processing_stats_20260101_000000.json").write_text(
        json.dumps({"status": "incomplete"}), "utf-8")
    with pytest.raises(InputError, match="did not deliver every question") as info:
        write_report(tmp_path)
    assert "--out" in str(info.value) and "\n" not in str(info.value)


def test_a_run_without_its_store_still_reports(run_dir: Path, tmp_path: Path) -> None:
    files = find_run(run_dir)
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in (files.stats, files.items, files.training_data):
        shutil.copy(path, copy / path.name)
    text = render_report(load_run(copy))
    assert "No item was dropped in this run (or the run has no finmcq.sqlite)" in text


# -- in a browser ------------------------------------------------------------------------------


class _DevTools:
    """Headless Chromium driven over the DevTools protocol: console errors, requests, screenshots.

    Chromium's own ``--screenshot`` flag cannot tell a console *error* from a log line, nor
    report failed resource loads; the protocol reports both.
    """

    def __init__(self, binary: str, profile: Path) -> None:
        import websocket

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        # suppress_origin: Chromium refuses DevTools websockets that send an Origin header.
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    def open(self, url: str, ready_js: str = "true", timeout: float = 60) -> list[str]:
        """Load ``url``, wait until ``ready_js`` is true; the problems the page caused."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not self.call("Runtime.evaluate", expression=f"document.readyState === 'complete'"
                            f" && Boolean({ready_js})", returnByValue=True)["result"]["value"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} was not ready within {timeout}s")
            time.sleep(0.2)
        self.call("Runtime.evaluate", expression="1")  # flush events queued meanwhile
        return self.problems()

    def problems(self) -> list[str]:
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append("uncaught: " + details.get("exception", {}).get(
                    "description", details.get("text", "")))
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append("console.error: " + " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if not url.startswith(("file:", "data:", "blob:", "about:")):
                    found.append(f"network request: {url}")
        return found

    def screenshot(self, path: Path, width: int = 1400) -> None:
        height = self.call("Page.getLayoutMetrics")["cssContentSize"]["height"]
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=int(height),
                  deviceScaleFactor=1, mobile=False)
        time.sleep(0.5)  # responsive charts re-layout to the new width
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[_DevTools]:
    chromium = chromium_or_skip("browser check")
    pytest.importorskip("websocket", reason="websocket-client is a test dependency")
    with tempfile.TemporaryDirectory(prefix="finmcq-chromium-") as profile:
        devtools = _DevTools(chromium, Path(profile))
        try:
            yield devtools
        finally:
            devtools.close()


def test_the_browser_check_catches_errors_and_requests(browser: _DevTools,
                                                       tmp_path: Path) -> None:
    """The check below can fail: a broken page is caught (errors, a request off the machine)."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head><title>x</title></head><body>"
                   "<img src=\"http://127.0.0.1:9/missing.png\">"
                   "<script>console.error('boom'); undefinedFunction();</script></body></html>",
                   "utf-8")
    problems = browser.open(bad.as_uri())
    time.sleep(0.5)
    problems = browser.problems()
    assert any("boom" in p for p in problems), problems
    assert any("undefinedFunction" in p for p in problems), problems
    assert any("network request: http://127.0.0.1:9" in p for p in problems), problems


def test_report_opens_in_headless_chromium_without_console_errors(
        browser: _DevTools, report: Path) -> None:
    ready = f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {len(CHART_IDS)}"
    problems = browser.open(report.resolve().as_uri(), ready_js=ready)
    drawn = browser.call("Runtime.evaluate", returnByValue=True, expression=(
        "Array.from(document.querySelectorAll('.plotly-graph-div'))"
        ".filter(d => d.querySelector('.main-svg')).map(d => d.id)"))["result"]["value"]
    ARTIFACTS.mkdir(exist_ok=True)
    browser.screenshot(ARTIFACTS / "report.png")
    shutil.copy(report, ARTIFACTS / "report.html")
    assert problems == []
    assert sorted(drawn) == sorted(CHART_IDS.values())
    assert (ARTIFACTS / "report.png").stat().st_size > 50_000
