"""Engine throughput: N structured calls at concurrency C against the fake LLM at L ms latency.

Prints wall time, the ideal time ceil(N/C) × L and their ratio (target ≤ 1.05), the peak number
of requests in flight seen by the server, and the client CPU per call. The fake LLM runs in a
separate process so that it does not share the client's event loop or GIL.

    python bench/engine.py                      # N=2000, C=100, 500 ms
    python bench/engine.py --n 5000 --latency-ms 0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import tempfile
import time
from pathlib import Path

from fakeproc import fake_stats, reset, start_fake

from finmcq.engine.client import EngineConfig, LLMEngine, LLMRequest
from finmcq.engine.cost import PriceTable
from finmcq.engine.store import RunStore
from finmcq.records import BlindSolve


async def run_calls(base: str, n: int, concurrency: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp))
        config = EngineConfig(base_url=f"{base}/v1", model="fake-finance-1",
                              concurrency=concurrency)
        engine = LLMEngine(config, store, PriceTable.load())
        requests = [
            LLMRequest(
                stage="verify",
                messages=({"role": "system", "content": "풀이"},
                          {"role": "user", "content": "<입력>\n" + json.dumps(
                              {"task": "verify", "question": f"벤치마크 문제 {i}",
                               "options": {ch: f"선택지 {ch}{i}" for ch in "ABCDEFG"}},
                              ensure_ascii=False) + "\n</입력>"}),
                schema=BlindSolve, item_id=str(i))
            for i in range(n)
        ]
        started = time.perf_counter()
        # Stream the work: every request is a task and the engine's semaphore keeps C in flight.
        await asyncio.gather(*(engine.call(r) for r in requests))
        wall = time.perf_counter() - started
        await engine.aclose()
        store.close()
        return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=500)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "bench-key-not-a-secret")
    proc, base = start_fake(args.latency_ms)
    try:
        ideal = math.ceil(args.n / args.concurrency) * args.latency_ms / 1000
        reset(base)
        cpu0 = time.process_time()
        wall = asyncio.run(run_calls(base, args.n, args.concurrency))
        cpu = time.process_time() - cpu0
        stats = fake_stats(base)
        line = (f"n={args.n} concurrency={args.concurrency} "
                f"latency_ms={args.latency_ms} wall_s={wall:.3f} ideal_s={ideal:.3f} "
                f"requests_at_server={stats.get('requests')} "
                f"peak_in_flight={stats.get('peak_in_flight')} "
                f"rps={args.n / wall:.0f} cpu_ms_per_call={1000 * cpu / args.n:.2f}")
        if ideal:
            line += f" ratio={wall / ideal:.3f}"
        print(line, flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
