"""A rebuild honours the review: rejected items replaced, edits delivered, accepted ones kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from finmcq.build import run_build
from finmcq.card import dataset_card
from finmcq.fake.server import FakeConfig, FakeLLMServer
from finmcq.pipeline import Pipeline
from finmcq.records import LETTERS
from finmcq.report import write_report
from finmcq.review.decisions import ItemEdit, ReviewDecisions, ReviewLog, open_review_db, slot_of

from .conftest import STEP1
from .review_server import (
    QUESTIONS,
    build_run,
    copy_run,
    items_of,
    pairs_of,
    review_settings,
    stats_of,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run(tmp_path_factory.mktemp("review-build") / "run")


def options_of(item: dict[str, Any]) -> list[str]:
    return [item["options"][ch] for ch in LETTERS]


def rebuild(run_dir: Path, **kw: Any) -> None:
    with FakeLLMServer(FakeConfig()) as fake:
        run_build(review_settings(run_dir, fake.base_url, **kw), progress=False)


def test_a_rebuild_replaces_rejected_delivers_edits_and_keeps_accepted(
        built: Path, tmp_path: Path) -> None:
    run_dir = copy_run(built, tmp_path / "run")
    before = items_of(run_dir)
    rejected_rewrite = next(i for i in before if i["origin"] == "rewrite")
    rejected_generated = next(i for i in before if i["origin"] == "generate")
    edited_key, edited_text, accepted = [i for i in before if i["item_id"] not in (
        rejected_rewrite["item_id"], rejected_generated["item_id"])][:3]
    log = ReviewLog(open_review_db(run_dir))
    log.record(rejected_rewrite["item_id"], "reject", reason="출처와 다른 사실")
    log.record(rejected_generated["item_id"], "reject", reason="너무 쉬움")
    # An edit that moves the key: the options are swapped, so the item must be re-solved.
    options = options_of(edited_key)
    old = LETTERS.index(edited_key["answer"])
    new = (old + 3) % 7
    options[old], options[new] = options[new], options[old]
    log.record(edited_key["item_id"], "edit", edit=ItemEdit(
        edited_key["question"], tuple(options), LETTERS[new]))
    # An edit of the stem and the solution text only: delivered as written, not re-solved.
    new_solution = edited_text["solution"].replace(
        "[문제 분석]\n", "[문제 분석]\n검수자 보충: 용어 정의 확인.\n")
    log.record(edited_text["item_id"], "edit", edit=ItemEdit(
        edited_text["question"] + " (검수 수정)", tuple(options_of(edited_text)),
        edited_text["answer"], new_solution))
    log.record(accepted["item_id"], "accept")
    log.db.close()

    rebuild(run_dir)
    after = items_of(run_dir)
    pairs = pairs_of(run_dir)
    stats = stats_of(run_dir)
    by_id = {i["item_id"]: i for i in after}
    by_slot = {slot_of(i["item_id"]): i for i in after}

    # Exactly the requested count, still in the promised format.
    assert len(after) == QUESTIONS and len(pairs) == 2 * QUESTIONS
    for rejected in (rejected_rewrite, rejected_generated):
        assert rejected["item_id"] not in by_id
        replacement = by_slot[slot_of(rejected["item_id"])]  # same slot ...
        assert replacement["topic"] == rejected["topic"]  # ... topic ...
        assert replacement["answer"] == rejected["answer"]  # ... and key letter
        assert replacement["origin"] == "generate"  # a new generation
        assert replacement["question"] != rejected["question"]
    # The edit that moved the key: delivered as edited, with a new solution for the new key.
    moved = by_id[edited_key["item_id"]]
    assert moved["answer"] == LETTERS[new] and options_of(moved) == options
    assert moved["review"] == "edited"
    assert moved["solution"].rstrip().endswith(f"정답은 {LETTERS[new]}입니다.")
    assert moved["solution"] != edited_key["solution"]
    # The stem/solution edit: in the training file exactly as written.
    text = by_id[edited_text["item_id"]]
    assert text["question"] == edited_text["question"] + " (검수 수정)"
    assert text["solution"] == new_solution
    index = [i["item_id"] for i in after].index(edited_text["item_id"])
    step1, step2 = pairs[2 * index], pairs[2 * index + 1]
    match = STEP1.match(step1["prompt"])
    assert match and match["question"] == edited_text["question"] + " (검수 수정)"
    assert step1["response"] == new_solution and step2["response"] == edited_text["answer"]
    # Accepted: identical.
    kept = by_id[accepted["item_id"]]
    assert kept["review"] == "accepted"
    for field in ("question", "options", "answer", "solution"):
        assert kept[field] == accepted[field]
    # Everything else is the same build as before (determinism = resume), except a slot the
    # end-of-run rank rebalance redrafted because the replacements shifted the key ranks: such
    # a redraft is recorded as a 'rebalance' outcome of the item delivered before.
    touched = {slot_of(i["item_id"]) for i in (rejected_rewrite, rejected_generated,
                                                 edited_key, edited_text)}
    db = sqlite3.connect(run_dir / "finmcq.sqlite")
    rebalanced = {item_id for (item_id,) in db.execute(
        "SELECT item_id FROM outcomes WHERE stage = 'rebalance'")}
    db.close()
    before_ids = {i["item_id"] for i in before}
    redrafted = {slot_of(i) for i in rebalanced & before_ids}
    assert redrafted.isdisjoint(slot_of(i["item_id"]) for i in (edited_key, edited_text, accepted))
    for old_item, new_item in zip(before, after, strict=True):
        assert slot_of(old_item["item_id"]) == slot_of(new_item["item_id"])
        if slot_of(old_item["item_id"]) in touched | redrafted:
            continue
        assert new_item["item_id"] == old_item["item_id"]
        assert new_item["question"] == old_item["question"]
    # Stats, report and card say what the review did.
    assert stats["review"] == {"reviewed": 5, "rejected": 2, "accepted": 1, "edited": 2,
                               "replaced": 2, "re_solved": 1}
    card = dataset_card(run_dir)
    assert "5 items were reviewed by a person" in card and "2 edited" in card
    assert "2 rejected slots replaced" in card
    report = write_report(run_dir).read_text("utf-8")
    assert "5 items were reviewed by a person" in report
    # The rejected items are recorded as dropped by the review, with the reviewer's reason.
    db = sqlite3.connect(run_dir / "finmcq.sqlite")
    drops = dict(db.execute("SELECT item_id, payload FROM outcomes WHERE stage = 'review'"))
    db.close()
    assert set(drops) == {rejected_rewrite["item_id"], rejected_generated["item_id"]}
    assert "너무 쉬움" in drops[rejected_generated["item_id"]]

    # A second rebuild changes nothing more: edits are not applied twice, nothing re-solved.
    rebuild(run_dir)
    again = items_of(run_dir)
    assert [(i["item_id"], i["question"], i["solution"]) for i in again] == [
        (i["item_id"], i["question"], i["solution"]) for i in after]


def test_accepted_items_are_never_regenerated_even_with_another_model(
        built: Path, tmp_path: Path) -> None:
    run_dir = copy_run(built, tmp_path / "run")
    before = items_of(run_dir)
    log = ReviewLog(open_review_db(run_dir))
    accepted = before[::5]
    for item in accepted:
        log.record(item["item_id"], "accept")
    log.db.close()
    # Another model name misses the whole reply cache: every unreviewed slot is built anew.
    rebuild(run_dir, model="gpt-4o-mini")
    after = {i["item_id"]: i for i in items_of(run_dir)}
    for item in accepted:
        assert after[item["item_id"]]["question"] == item["question"]
        assert after[item["item_id"]]["solution"] == item["solution"]
    assert stats_of(run_dir)["review"]["accepted"] == len(accepted)
    # The test means something: the other model did rebuild the items nobody accepted.
    kept_ids = {i["item_id"] for i in accepted}
    old_questions = {i["question"] for i in before if i["item_id"] not in kept_ids}
    new_questions = {i["question"] for i in after.values() if i["item_id"] not in kept_ids}
    assert len(old_questions & new_questions) < len(old_questions) / 2


def test_dedupe_drops_the_unreviewed_one_of_two_duplicates() -> None:
    decisions = ReviewDecisions(kept={"s000003": ("s000003.0", None),
                                      "s000005": ("s000005.1", None)})
    pipeline = Pipeline.__new__(Pipeline)
    pipeline.review = decisions
    ids = ["s000001.0", "s000003.0", "s000004.0", "s000005.1"]
    assert pipeline._dedupe_loser(ids, 2, 0) == (2, 0)  # neither kept: the later one goes
    assert pipeline._dedupe_loser(ids, 1, 0) == (0, 1)  # the later one was kept
    assert pipeline._dedupe_loser(ids, 3, 1) == (None, 1)  # both kept: both stay
