"""Review page benchmark: page times over a run of 100,000 delivered items.

Writes a synthetic run directory (``items_{ts}.jsonl`` with N made-up items, a stats file, and a
run store with N/3 dropped outcomes), opens the review app on it under uvicorn on 127.0.0.1 and
times real HTTP requests: the first page, a page deep in the list (keyset: ``after=``), every
kind of filter, a rare and a common text search, the dropped tab, an item view and an action.
Prints the index build time and, per request, the median and worst of several tries.

    python bench/review.py                     # 100,000 items
    python bench/review.py --items 10000

Target: every page well under 1 s at 100,000 items on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from finmcq.engine.store import RunStore  # noqa: E402
from finmcq.records import LETTERS, MARKET_TOPICS  # noqa: E402

WORDS = ("금리", "채권", "주가", "선물", "옵션", "환율", "변동성", "유동성", "신용", "스프레드",
         "헤지", "배당", "수익률", "듀레이션", "베이시스", "증거금", "포트폴리오", "위험", "규제",
         "공시", "상장", "매도", "매수", "가격", "거래량", "지수", "만기", "이자", "할인",
         "프리미엄")


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_run(run_dir: Path, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    ts = "20260101_000000"
    store = RunStore(run_dir)
    with (run_dir / f"items_{ts}.jsonl").open("w", encoding="utf-8") as out:
        for i in range(n):
            answer = LETTERS[i % 7]
            options = {ch: f"{sentence(rng, 5)} {i}-{ch}" for ch in LETTERS}
            record = {
                "item_id": f"s{i:06d}.0", "topic": MARKET_TOPICS[i % 8].value,
                "difficulty": ("easy", "medium", "hard")[i % 3],
                "origin": "rewrite" if i % 3 else "generate",
                "question": sentence(rng, 30) + (" 희귀검색어" if i == n // 2 else "") + "?",
                "options": options, "answer": answer,
                "verification": {"blind_answer": answer, "blind_answers": [answer],
                                 "passed": True, "difficulty": "medium"},
                "quality": {"key_is_longest": i % 9 == 0, "negation_stem": i % 5 == 0,
                            "judge": {"repaired": ["B"] if i % 50 == 0 else [],
                                      "why_wrong": {ch: sentence(rng, 8) for ch in LETTERS
                                                    if ch != answer}},
                            "solution_grade": None,
                            "contamination": {"benchmark": "x"} if i % 1000 == 0 else None},
                "solution": "\n".join(sentence(rng, 20) for _ in range(12)),
                "provenance": None, "source_question": None,
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    store.close()
    db = sqlite3.connect(run_dir / "finmcq.sqlite")
    with db:  # one transaction: the bench is about the page, not about writing the fixture
        db.executemany(
            "INSERT INTO outcomes(item_id, stage, status, reason, payload, updated_at) "
            "VALUES (?, ?, 'dropped', ?, ?, ?)",
            ((f"d{i:06d}.1", ("shape", "verify", "judge")[i % 3],
              ("duplicate_option", "blind_solve_mismatch", "distractor_defensible")[i % 3],
              json.dumps({"detail": sentence(rng, 4)}, ensure_ascii=False), float(i))
             for i in range(n // 3)))
    db.close()
    (run_dir / f"processing_stats_{ts}.json").write_text(json.dumps({"status": "complete"}))
    (run_dir / f"final_training_data_{ts}.json").write_text("[]")


def timed(url: str, tries: int) -> tuple[float, float, int]:
    import urllib.request

    times = []
    size = 0
    for _ in range(tries):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as response:
            size = len(response.read())
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--tries", type=int, default=5)
    args = parser.parse_args()
    from tests.review_server import request, serving

    with tempfile.TemporaryDirectory(prefix="finmcq-review-bench-") as tmp:
        run_dir = Path(tmp) / "run"
        started = time.perf_counter()
        make_run(run_dir, args.items)
        print(f"synthetic run: {args.items:,} items in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        with serving(run_dir) as url:
            print(f"review app start (index build): {time.perf_counter() - started:.2f}s")
            n = args.items
            for i in range(0, 2000, 2):  # some reviewed items for the state filter
                request(f"{url}/action/accept/s{i:06d}.0", {})
            topic = urllib.parse.quote(MARKET_TOPICS[3].value)
            cases = {
                "first page": "/",
                "deep page (after n-100)": f"/?after={n - 100}",
                "previous from the end": f"/?before={n - 1}",
                "key letter C": "/?answer=C",
                "topic + difficulty + origin": f"/?topic={topic}&difficulty=hard&origin=rewrite",
                "flag contamination (0.1%)": "/?flag=contaminated",
                "flags judge+negative": "/?flag=judge_repaired&flag=negative_stem",
                "state accepted": "/?state=accepted",
                "state unreviewed, deep": f"/?state=unreviewed&after={n - 100}",
                "search rare word": "/?q=" + urllib.parse.quote("희귀검색어"),
                "search common word": "/?q=" + urllib.parse.quote("금리"),
                "dropped tab": "/?tab=dropped",
                "dropped by check": "/?tab=dropped&reason=blind_solve_mismatch",
                "item view": f"/item/s{n // 2:06d}.0",
            }
            print(f"{'request':<30} {'median ms':>10} {'worst ms':>10} {'bytes':>9}")
            for name, path in cases.items():
                median, worst, size = timed(url + path, args.tries)
                print(f"{name:<30} {median * 1000:>10.1f} {worst * 1000:>10.1f} {size:>9,}")
            times = []
            for i in range(2001, 2001 + 2 * args.tries, 2):
                started = time.perf_counter()
                status, _text, _ = request(f"{url}/action/reject/s{i:06d}.0", {"reason": "x"})
                times.append(time.perf_counter() - started)
                assert status == 200
            print(f"{'action (reject)':<30} {statistics.median(times) * 1000:>10.1f} "
                  f"{max(times) * 1000:>10.1f}")


if __name__ == "__main__":
    main()
