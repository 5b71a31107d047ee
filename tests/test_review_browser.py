"""The review loop end to end in a real browser (Playwright driving Debian's Chromium).

Open the page, filter, reject one item with a reason, edit another (after a refused edit), reload
and see both kept, run the build and see the rejected slot refilled and the edit in the training
file, then see the rejection on the dropped tab of the new build.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from finmcq.fake.server import FakeConfig, FakeLLMServer
from finmcq.records import LETTERS
from finmcq.review.decisions import slot_of

from .conftest import PYTHON, REPO, STEP1, chromium_or_skip, subprocess_env
from .review_server import QUESTIONS, build_run, items_of, pairs_of, serving, stats_of

ARTIFACTS = REPO / ".artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = chromium_or_skip("browser test")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is a test dependency")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-extensions",
                  "--no-first-run", "--disable-sync"])
        try:
            yield browser
        finally:
            browser.close()


def test_review_in_the_browser_then_rebuild(browser: Any, tmp_path: Path) -> None:
    # Playwright's sync API runs an event loop in this thread; the build runs in another.
    with ThreadPoolExecutor(1) as pool:
        run_dir = pool.submit(build_run, tmp_path / "run").result()
    items = items_of(run_dir)
    letter = max(LETTERS, key=lambda ch: (sum(i["answer"] == ch for i in items), ch))
    with_letter = [i for i in items if i["answer"] == letter]
    assert len(with_letter) >= 2
    rejected, edited = with_letter[0], with_letter[1]
    problems: list[str] = []
    page = browser.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed {r.url}"))
    page.set_default_timeout(20_000)
    with serving(run_dir) as url:
        page.goto(url + "/")
        assert page.locator("[data-reviewed]").inner_text() == "0"
        assert page.locator("[data-total]").inner_text() == str(QUESTIONS)
        # Filter by key letter: exactly that letter's items are listed.
        page.select_option("select[name=answer]", letter)
        page.click("#filters button[type=submit]")
        page.wait_for_url(f"**answer={letter}**")
        rows = page.locator("tr[data-item]")
        assert rows.count() == len(with_letter)
        assert page.locator("td.key").all_inner_texts() == [letter] * len(with_letter)
        # Keyboard: j moves to the first row, Enter opens it.
        page.keyboard.press("j")
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/item/{rejected['item_id']}**")
        assert page.locator("#question-text").inner_text() == rejected["question"]
        assert page.locator("li.key").get_attribute("data-letter") == letter
        # Reject with a reason: r opens the form.
        page.keyboard.press("r")
        page.fill("#reject-reason-input", "지문과 정답의 근거가 맞지 않음")
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelector('#state').textContent === 'rejected'")
        assert page.locator("[data-reviewed]").inner_text() == "1"
        # j goes to the next item of the filtered list.
        page.keyboard.press("j")
        page.wait_for_url(f"**/item/{edited['item_id']}**")
        # An edit that a deterministic check refuses shows the check's message; nothing saved.
        page.keyboard.press("e")
        page.fill("input[name=option-G]" if letter != "G" else "input[name=option-A]",
                  "위의 보기 모두 옳다")
        page.click("#edit-form button[type=submit]")
        page.wait_for_selector("#message.error")
        assert "position_dependent_option" in page.locator("#message").inner_text()
        assert page.locator("#state").inner_text() == "unreviewed"
        # A good edit: a new stem.
        page.reload()
        page.keyboard.press("e")
        new_question = edited["question"] + " (검수자가 고친 문장)"
        page.fill("textarea[name=question]", new_question)
        page.click("#edit-form button[type=submit]")
        page.wait_for_function("document.querySelector('#state').textContent === 'edited'")
        assert page.locator("#question-text").inner_text() == new_question
        # Reload: both decisions are still there, from the store.
        page.reload()
        assert page.locator("#state").inner_text() == "edited"
        assert page.locator("#question-text").inner_text() == new_question
        page.goto(f"{url}/item/{rejected['item_id']}")
        assert page.locator("#state").inner_text() == "rejected"
        assert page.locator("#reject-reason").inner_text() == "지문과 정답의 근거가 맞지 않음"
        assert page.locator("#history li[data-action=reject]").count() == 1
        page.goto(url + "/?state=rejected")
        assert page.locator("tr[data-item]").all_inner_texts()[0].split("\t")[1] == rejected[
            "item_id"]
        assert page.locator("[data-reviewed]").inner_text() == "2"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "review-list.png"), full_page=True)

    # The rebuild (the command a user runs) honours the review.
    with FakeLLMServer(FakeConfig()) as fake:
        result = subprocess.run(
            [PYTHON, "-m", "finmcq.cli", "build", "--source", "sample", "--questions",
             str(QUESTIONS), "--seed", "3", "--out", str(run_dir), "--model", "fake-finance-1",
             "--base-url", fake.base_url], capture_output=True, text=True,
            env=subprocess_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    after = items_of(run_dir)
    pairs = pairs_of(run_dir)
    assert len(after) == QUESTIONS and len(pairs) == 2 * QUESTIONS
    ids = [i["item_id"] for i in after]
    assert rejected["item_id"] not in ids
    refill = next(i for i in after if slot_of(i["item_id"]) == slot_of(rejected["item_id"]))
    assert refill["answer"] == letter and refill["topic"] == rejected["topic"]
    assert refill["question"] != rejected["question"]
    position = ids.index(edited["item_id"])
    match = STEP1.match(pairs[2 * position]["prompt"])
    assert match and match["question"] == new_question
    assert stats_of(run_dir)["review"]["replaced"] == 1

    # The page over the new build: the rejected item is on the dropped tab, with its reason.
    with serving(run_dir) as url:
        page.goto(url + "/?tab=dropped&stage=review")
        assert page.locator("td.reason").all_inner_texts() == ["rejected_in_review"]
        assert "지문과 정답의 근거가 맞지 않음" in page.locator("table.items").inner_text()
        page.goto(f"{url}/item/{edited['item_id']}")
        assert page.locator("#state").inner_text() == "edited"
        assert page.locator("#question-text").inner_text() == new_question
        page.goto(f"{url}/item/{refill['item_id']}")
        assert page.locator("#state").inner_text() == "unreviewed"
        assert page.locator("[data-reviewed]").inner_text() == "1"  # the edit; the reject left
    page.close()
    # Chromium logs the refused edit's 422 as a console error: the only one expected.
    refused = "the server responded with a status of 422"
    assert sum(refused in p for p in problems) <= 1, problems
    assert [p for p in problems if refused not in p] == [], problems
