"""`finmcq review` over real HTTP: listing, filters, paging, actions, audit trail, token, edits."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from finmcq.records import LETTERS
from finmcq.review.decisions import ReviewDecisions

from .conftest import PYTHON, subprocess_env
from .review_server import QUESTIONS, build_run, copy_run, items_of, request, serving

ROW = re.compile(r'<tr data-href="/item/(?P<id>[^"?]+)\?[^"]*" data-item="[^"]+"')


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run(tmp_path_factory.mktemp("review") / "run")


@pytest.fixture
def run_dir(built: Path, tmp_path: Path) -> Path:
    return copy_run(built, tmp_path / "run")


def listed(html: str) -> list[str]:
    return [m["id"] for m in ROW.finditer(html)]


def all_pages(url: str) -> list[str]:
    """Every item id of a filtered list, following the next-page links."""
    ids: list[str] = []
    next_url: str | None = url
    while next_url:
        status, html, _ = request(next_url)
        assert status == 200
        ids += listed(html)
        link = re.search(r'<a rel="next" href="([^"]+)"', html)
        next_url = url.split("/?")[0] + link[1].replace("&amp;", "&") if link else None
    return ids


def progress(html: str) -> tuple[int, int]:
    reviewed = re.search(r"<b data-reviewed>(\d+)</b>", html)
    total = re.search(r"<b data-total>(\d+)</b>", html)
    assert reviewed and total
    return int(reviewed[1]), int(total[1])


def test_the_list_pages_through_every_delivered_item_in_order(run_dir: Path) -> None:
    items = items_of(run_dir)
    with serving(run_dir) as url:
        status, html, _ = request(url + "/")
        assert status == 200
        assert progress(html) == (0, QUESTIONS)
        ids = all_pages(url + "/?size=7")  # 6 pages of 7 and one of 5
        # Back from the last page: the previous link shows the 7 before it.
        status, html, _ = request(f"{url}/?size=7&after=34")
        assert listed(html) == [item["item_id"] for item in items[35:]]
        link = re.search(r'<a rel="prev" href="([^"]+)"', html)
        assert link
        assert listed(request(url + link[1].replace("&amp;", "&"))[1]) == [
            item["item_id"] for item in items[28:35]]
    assert ids == [item["item_id"] for item in items]


def test_filters_show_exactly_the_matching_items(run_dir: Path) -> None:
    items = items_of(run_dir)
    letter = Counter(item["answer"] for item in items).most_common(1)[0][0]
    topic = items[0]["topic"]
    longest = [i["item_id"] for i in items if i["quality"]["key_is_longest"]]
    negative = [i["item_id"] for i in items if i["quality"]["negation_stem"]]
    with serving(run_dir) as url:
        assert all_pages(f"{url}/?answer={letter}") == [
            i["item_id"] for i in items if i["answer"] == letter]
        from urllib.parse import quote
        assert all_pages(f"{url}/?topic={quote(topic)}&origin=generate") == [
            i["item_id"] for i in items if i["topic"] == topic and i["origin"] == "generate"]
        assert all_pages(f"{url}/?flag=key_longest") == longest
        # Every flag against what the items file says (time-sensitive only when recorded).
        def grade_low(i: dict[str, Any]) -> bool:
            g = i["quality"].get("solution_grade")
            return bool(g) and min(g["correctness"], g["coverage"], g["grounding"]) < 4

        expected = {
            "judge_repaired": lambda i: bool((i["quality"].get("judge") or {}).get("repaired")),
            "key_longest": lambda i: bool(i["quality"]["key_is_longest"]),
            "negative_stem": lambda i: bool(i["quality"]["negation_stem"]),
            "time_sensitive": lambda i: bool(i["quality"].get("time_sensitive")),
            "low_grade": grade_low,
            "contaminated": lambda i: bool(i["quality"].get("contamination")),
        }
        for flag, test in expected.items():
            assert all_pages(f"{url}/?flag={flag}") == [
                i["item_id"] for i in items if test(i)], flag
        assert all_pages(f"{url}/?flag=negative_stem&flag=key_longest") == [
            i for i in longest if i in negative]
        # Text search, a substring of the question, options or id: two characters (a scan),
        # and longer (the trigram index), matched exactly as Python's `in` would.
        def text(item: dict[str, Any]) -> str:
            return " ".join([item["item_id"], item["question"],
                             *(item["options"][ch] for ch in LETTERS)]).casefold()

        stem = items[5]["question"]
        for needle in (stem[10:12], stem[10:16], stem[-8:], items[7]["options"]["C"][2:9],
                       items[3]["item_id"]):
            needle = needle.strip()  # the page trims the query
            found = all_pages(f"{url}/?q={quote(needle)}")
            assert found == [i["item_id"] for i in items if needle.casefold() in text(i)], needle
            assert found, needle
        assert all_pages(f"{url}/?q={quote('절대없는검색어')}") == []
        assert all_pages(f"{url}/?q={quote('%')}") == [
            i["item_id"] for i in items if "%" in text(i)]


def post(url: str, action: str, item_id: str, body: dict[str, Any]) -> tuple[int, str]:
    status, text, _ = request(f"{url}/action/{action}/{item_id}", body)
    return status, text


def test_actions_are_saved_at_once_with_their_time_and_survive_a_restart(run_dir: Path) -> None:
    items = items_of(run_dir)
    a, b, c = (items[i]["item_id"] for i in (0, 1, 2))
    with serving(run_dir) as url:
        assert post(url, "accept", a, {})[0] == 200
        status, text = post(url, "reject", b, {})
        assert status == 422 and "reason" in text  # a rejection needs its reason
        assert post(url, "reject", b, {"reason": "정답 근거가 부족함"})[0] == 200
        assert post(url, "comment", c, {"text": "수치 확인 필요"})[0] == 200
        # Saved at once: another connection sees the rows while the server still runs.
        db = sqlite3.connect(run_dir / "finmcq.sqlite")
        rows = db.execute("SELECT item_id, action, reason, ts FROM review_actions "
                          "ORDER BY id").fetchall()
        db.close()
        assert [(r[0], r[1], r[2]) for r in rows] == [
            (a, "accept", None), (b, "reject", "정답 근거가 부족함"),
            (c, "comment", "수치 확인 필요")]
        assert all(isinstance(r[3], float) and r[3] > 1.7e9 for r in rows)
    with serving(run_dir) as url:  # a restart of the command
        status, html, _ = request(url + "/")
        assert progress(html) == (2, QUESTIONS)
        assert listed(request(url + "/?state=rejected")[1]) == [b]
        assert listed(request(url + "/?state=accepted")[1]) == [a]
        page = request(f"{url}/item/{b}")[1]
        assert 'id="state">rejected<' in page and "정답 근거가 부족함" in page
        assert "수치 확인 필요" in request(f"{url}/item/{c}")[1]
    decisions = ReviewDecisions.load(run_dir)
    assert decisions.rejected == {b: "정답 근거가 부족함"}
    assert decisions.protects(a) and not decisions.protects(b) and not decisions.protects(c)


def edit_body(item: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {"question": item["question"], "options": [item["options"][ch] for ch in LETTERS],
            "answer": item["answer"], "solution": item["solution"]}
    body.update(changes)
    return body


def test_an_edit_that_fails_a_deterministic_check_is_refused_with_its_message(
        run_dir: Path) -> None:
    item = items_of(run_dir)[4]
    options = [item["options"][ch] for ch in LETTERS]
    key_text = item["options"][item["answer"]]
    duplicate = [*options[:6], options[0]]
    positional = [*options[:6], "위의 보기 모두 옳다"] if item["answer"] != "G" else [
        "위의 보기 모두 옳다", *options[1:]]
    cases = {
        "duplicate_option": edit_body(item, options=duplicate),
        "position_dependent_option": edit_body(item, options=positional),
        "answer_leaked_in_stem": edit_body(item, question=item["question"] + " " + key_text),
        "key_not_in_A_to_G": edit_body(item, answer="H"),
        "solution_wrong_letter": edit_body(
            item, solution=item["solution"].rsplit("정답은", 1)[0] + "정답은 "
            + ("A" if item["answer"] != "A" else "B") + "입니다."),
    }
    with serving(run_dir) as url:
        for check, body in cases.items():
            status, text = post(url, "edit", item["item_id"], body)
            assert status == 422, (check, text)
            assert check in text and "Refused by the check" in text, text
        assert post(url, "edit", item["item_id"], edit_body(item))[0] == 422  # changes nothing
        html = request(f"{url}/item/{item['item_id']}")[1]
        assert 'id="state">unreviewed<' in html
        good = edit_body(item, question=item["question"] + " (검수)")
        status, text = post(url, "edit", item["item_id"], good)
        assert status == 200, text
        html = request(f"{url}/item/{item['item_id']}")[1]
        assert 'id="state">edited<' in html and item["question"] + " (검수)" in html
    db = sqlite3.connect(run_dir / "finmcq.sqlite")
    actions = db.execute("SELECT action FROM review_actions").fetchall()
    db.close()
    assert actions == [("edit",)]  # refused edits left nothing behind


def test_actions_need_json_from_the_page_itself(run_dir: Path) -> None:
    item_id = items_of(run_dir)[0]["item_id"]
    with serving(run_dir) as url:
        status, _text, _ = request(f"{url}/action/accept/{item_id}", b"x=1",
                                   content_type="application/x-www-form-urlencoded")
        assert status == 415
        status, _text, _ = request(f"{url}/action/accept/{item_id}", {},
                                   headers={"Origin": "http://evil.example"})
        assert status == 403
        assert request(f"{url}/action/accept/nope.0", {})[0] == 404
        assert request(f"{url}/action/explode/{item_id}", {})[0] == 404
    assert not ReviewDecisions.load(run_dir)


def test_a_token_is_required_when_one_is_set(run_dir: Path) -> None:
    item_id = items_of(run_dir)[0]["item_id"]
    with serving(run_dir, token="s3cret-token") as url:
        assert request(url + "/")[0] == 403
        assert request(url + "/?token=wrong")[0] == 403
        assert request(url + "/static/review.js")[0] == 403
        assert request(f"{url}/action/accept/{item_id}", {})[0] == 403
        status, _html, headers = request(url + "/?token=s3cret-token")
        assert status == 200
        cookie = headers["set-cookie"].split(";")[0]
        assert "HttpOnly" in headers["set-cookie"] and "SameSite=strict" in headers["set-cookie"]
        status, _html, _ = request(url + "/item/" + item_id, headers={"Cookie": cookie})
        assert status == 200
        status, _text, _ = request(f"{url}/action/accept/{item_id}", {},
                                   headers={"Cookie": cookie})
        assert status == 200
    assert ReviewDecisions.load(run_dir).protects(item_id)


def test_the_dropped_tab_lists_drops_with_the_check_that_dropped_them(run_dir: Path) -> None:
    db = sqlite3.connect(run_dir / "finmcq.sqlite")
    drops = db.execute("SELECT item_id, reason FROM outcomes WHERE status = 'dropped'").fetchall()
    db.close()
    assert drops, "the sample build drops some source questions at relevance"
    reason = Counter(r for _i, r in drops).most_common(1)[0][0]
    with serving(run_dir) as url:
        html = request(url + "/?tab=dropped")[1]
        assert f'<td class="reason">{reason}</td>' in html
        ids = all_pages(f"{url}/?tab=dropped&reason={reason}")
        assert sorted(ids) == sorted(i for i, r in drops if r == reason)
        status, page, _ = request(f"{url}/item/{ids[0]}")
        assert status == 200 and reason in page


def url_line(stdout: Any) -> str:
    """The line where `finmcq review` prints its URL (after a line about reading the run)."""
    for _ in range(5):
        line = str(stdout.readline())
        if " at http" in line:
            return line
    return ""


def test_cli_serves_on_loopback_and_asks_before_serving_beyond_it(run_dir: Path) -> None:
    refused = subprocess.run([PYTHON, "-m", "finmcq.cli", "review", str(run_dir), "--host",
                              "0.0.0.0"], capture_output=True, text=True, env=subprocess_env(),
                             timeout=60)
    assert refused.returncode == 2
    assert "--allow-remote" in refused.stderr and "Traceback" not in refused.stderr
    proc = subprocess.Popen([PYTHON, "-m", "finmcq.cli", "review", str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env())
    try:
        assert proc.stdout is not None
        line = url_line(proc.stdout)
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)\s*$", line)
        assert match, line
        assert request(match[1])[0] == 200
    finally:
        proc.terminate()
        proc.wait(10)
    proc = subprocess.Popen([PYTHON, "-m", "finmcq.cli", "review", str(run_dir), "--host",
                             "0.0.0.0", "--allow-remote"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert proc.stdout is not None
        line = url_line(proc.stdout)
        match = re.search(r"at http://0\.0\.0\.0:(\d+)/\?token=(\S+)\s*$", line)
        assert match, line
        local = f"http://127.0.0.1:{match[1]}/"
        assert request(local)[0] == 403
        assert request(f"{local}?token={match[2]}")[0] == 200
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_folder_that_is_not_a_finished_run_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run([PYTHON, "-m", "finmcq.cli", "review", str(tmp_path / "nothing")],
                            capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_the_item_view_shows_checks_and_provenance(run_dir: Path) -> None:
    items = items_of(run_dir)
    rewrite = next(i for i in items if i["origin"] == "rewrite")
    generated = next(i for i in items if i["origin"] == "generate")
    import html as html_lib

    with serving(run_dir) as url:
        page = html_lib.unescape(request(f"{url}/item/{rewrite['item_id']}")[1])
        p = rewrite["provenance"]
        assert f"KMMLU {p['subject']} / {p['split']} / row {p['row_index']}" in page
        assert rewrite["source_question"] in page
        assert f'<li class="key" data-letter="{rewrite["answer"]}">' in page
        for letter in LETTERS:
            assert rewrite["options"][letter] in page
        assert rewrite["solution"].splitlines()[1] in page
        blind = rewrite["verification"]["blind_answers"]
        assert f"Blind solve: {', '.join(blind)} (matched the key)" in page
        for why in rewrite["quality"]["judge"]["why_wrong"].values():
            assert why in page
        page = request(f"{url}/item/{generated['item_id']}")[1]
        assert "Generated for the topic's quota (no source question)" in page
        assert request(f"{url}/item/nothing.0")[0] == 404
