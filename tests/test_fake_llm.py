"""The fake OpenAI-compatible server, over real HTTP on 127.0.0.1.

Bulk checks use aiohttp (fast); the official ``openai`` client is used where its view matters
(parsing, error classes). Tests are plain functions that run their own event loop, so they do
not depend on pytest-asyncio's mode.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import os
import random
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from pydantic import BaseModel

from finmcq import checks
from finmcq.fake import FakeConfig, FakeLLMServer, option_code, pools, stem_figures
from finmcq.fake.replies import is_positional, particle
from finmcq.records import (
    LETTERS,
    MARKET_TOPICS,
    BlindSolve,
    McqDraft,
    RelevanceJudgment,
    SolutionDraft,
    Topic,
    normalize_text,
)

SRC = Path(__file__).resolve().parents[1] / "src"

Result = tuple[int, Any, Any]  # status, headers, parsed JSON body


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def chat_body(payload: dict[str, Any] | None, schema: type[BaseModel] | None = None, *,
              mode: str = "json_schema", model: str = "fake-finance-1",
              **extra: Any) -> dict[str, Any]:
    """A request shaped like finmcq's stages send: static system part, item last in <입력>."""
    system = "당신은 한국 금융투자 분야 자격시험 출제위원입니다."
    user = "다음 조건으로 처리하세요."
    if payload is not None:
        user += "\n\n<입력>\n" + json.dumps(payload, ensure_ascii=False, indent=1) + "\n</입력>"
    body: dict[str, Any] = {"model": model, "temperature": 0.0, "max_tokens": 4096}
    if schema is not None and mode == "json_schema":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema.__name__, "strict": True,
                            "schema": schema.model_json_schema()},
        }
    elif schema is not None:
        system += f"\n반드시 JSON으로 답하세요.\n스키마 이름: {schema.__name__}\n"
        system += json.dumps(schema.model_json_schema(), ensure_ascii=False)
        if mode == "json_object":
            body["response_format"] = {"type": "json_object"}
    body["messages"] = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    body.update(extra)
    return body


async def _post_many(base_url: str, bodies: list[dict[str, Any]], *, concurrency: int = 64,
                     headers: dict[str, str] | None = None) -> list[Result]:
    sem = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(body: dict[str, Any]) -> Result:
            async with sem, session.post(f"{base_url}/chat/completions", json=body,
                                         headers=headers) as resp:
                return resp.status, resp.headers, await resp.json()

        return list(await asyncio.gather(*(one(b) for b in bodies)))


def post_many(base_url: str, bodies: list[dict[str, Any]], **kwargs: Any) -> list[Result]:
    """POST every body concurrently; results in order."""
    return asyncio.run(_post_many(base_url, bodies, **kwargs))


def post(base_url: str, body: dict[str, Any], **kwargs: Any) -> Result:
    return post_many(base_url, [body], **kwargs)[0]


def content(result: Result) -> str:
    status, _, data = result
    assert status == 200, data
    text: str = data["choices"][0]["message"]["content"]
    return text


def reply(result: Result, model: type[BaseModel]) -> Any:
    """The validated reply model inside a 200 response."""
    assert result[2]["choices"][0]["finish_reason"] == "stop"
    return model.model_validate_json(content(result))


def source_rows() -> list[dict[str, Any]]:
    """The sample KMMLU-style questions shipped with finmcq, as rewrite payloads."""
    text = resources.files("finmcq.data").joinpath("sample_finance.csv").read_text("utf-8")
    rows = []
    for row in csv.DictReader(text.splitlines()):
        rows.append({
            "task": "rewrite",
            "subject": "sample",
            "topic": row["Category"],
            "question": row["question"],
            "options": {k: row[k] for k in "ABCD"},
            "answer": "ABCD"[int(row["answer"]) - 1],
        })
    return rows


def generate_payload(slot: int, topic: Topic = Topic.BONDS, attempt: int = 0,
                     subtopic: str = "듀레이션") -> dict[str, Any]:
    return {"task": "generate", "topic": topic.value, "subtopic": subtopic,
            "difficulty": "medium", "slot": f"{topic.value}-{slot:04d}", "attempt": attempt,
            "examples": []}


def place(draft: McqDraft, seed: int) -> tuple[dict[str, str], str]:
    """Shuffle key + distractors into A–G the way finmcq does; returns options and key."""
    options = [draft.correct_option, *draft.distractors]
    order = list(range(7))
    random.Random(seed).shuffle(order)
    placed = [options[i] for i in order]
    return dict(zip(LETTERS, placed, strict=True)), LETTERS[order.index(0)]


def shingles(text: str) -> set[str]:
    folded = " ".join(text.split())
    return {folded[i:i + 3] for i in range(len(folded) - 2)}


@pytest.fixture(scope="module")
def fake() -> Any:
    with FakeLLMServer(FakeConfig(seed=7)) as server:
        yield server


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------


def test_component_pools_keep_prime_sizes() -> None:
    # The stem-diversity guarantee relies on these sizes (see fake/pools/stems.py).
    sizes = [len(pools.OPENINGS), len(pools.ACTORS), len(pools.CODE_CLAUSES), len(pools.MACROS),
             len(pools.TASKS)]
    assert sizes == [11, 13, 17, 19, 23]
    for topic in MARKET_TOPICS:
        pool = pools.TOPIC_POOLS[topic]
        assert len(pool.details) == 7
        assert len(pool.true) >= 7 and len(pool.false) >= 7
    assert all("{code}" in clause for clause in pools.CODE_CLAUSES)


def test_option_code_and_helpers() -> None:
    assert 1000 <= option_code("듀레이션") <= 9999
    assert option_code(" 듀레이션\n") == option_code("듀레이션")  # normalize_text applies
    figures = stem_figures("거래대금 3456억 원, 2024년, 12345주, 1,350원, 0.1234")
    assert figures == {3456, 2024, 1234}
    assert particle("채권", "은", "는") == "은" and particle("스왑", "과", "와") == "과"
    assert particle("리스크", "을", "를") == "를" and particle("±30%", "은", "는") == "는"
    assert is_positional("모두 옳다") and is_positional("ㄱ, ㄴ") and is_positional("①과 ②")
    assert not is_positional("선물환을 매도한다")


# --------------------------------------------------------------------------------------------
# protocol
# --------------------------------------------------------------------------------------------


def test_openai_client_round_trip(fake: FakeLLMServer) -> None:
    client = openai.OpenAI(base_url=fake.base_url, api_key="unused", max_retries=0)
    assert {"fake-finance-1", "gpt-4o-mini", "gpt-4o"} <= {m.id for m in client.models.list()}
    body = chat_body(source_rows()[0], McqDraft, model="gpt-4o-mini")
    completion = client.chat.completions.create(**body)
    assert completion.model == "gpt-4o-mini"
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    McqDraft.model_validate_json(choice.message.content or "")
    usage = completion.usage
    assert usage is not None
    chars = sum(len(m["content"]) for m in body["messages"])
    assert abs(usage.prompt_tokens - chars / 2) <= 1
    assert abs(usage.completion_tokens - len(choice.message.content or "") / 2) <= 1
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0


def test_deterministic_and_stateless(fake: FakeLLMServer) -> None:
    bodies = [chat_body(generate_payload(3), McqDraft), chat_body(source_rows()[5], McqDraft)]
    first = [content(r) for r in post_many(fake.base_url, bodies)]
    again = [content(r) for r in post_many(fake.base_url, bodies)]
    assert first == again
    with FakeLLMServer(seed=7) as restarted:  # a restart must not change anything
        assert [content(r) for r in post_many(restarted.base_url, bodies)] == first
    # The body's own seed/temperature are part of the request, so they vary the reply.
    varied = chat_body(generate_payload(3), McqDraft, seed=99, temperature=0.7)
    assert content(post(fake.base_url, varied)) != first[0]


def test_auth_required_when_configured() -> None:
    with FakeLLMServer(api_key="test-fake-secret") as server:
        body = chat_body({"task": "relevance", "question": "주가", "options": {}},
                         RelevanceJudgment)
        status, _, data = post(server.base_url, body)
        assert status == 401 and data["error"]["code"] == "invalid_api_key"
        status, _, _ = post(server.base_url, body, headers={"Authorization": "Bearer nope"})
        assert status == 401
        good = {"Authorization": "Bearer test-fake-secret"}
        assert post(server.base_url, body, headers=good)[0] == 200
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0).models.list()


def test_unknown_model_is_404(fake: FakeLLMServer) -> None:
    status, _, data = post(fake.base_url, chat_body(None, model="gpt-9"))
    assert status == 404
    assert data["error"]["code"] == "model_not_found" and data["error"]["message"]
    client = openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])


def test_429_carries_retry_after() -> None:
    with FakeLLMServer(rate_429=1.0, retry_after_s=2) as server:
        status, headers, data = post(server.base_url, chat_body(None))
        assert status == 429
        assert headers["Retry-After"] == "2" and headers["retry-after-ms"] == "2000"
        assert data["error"]["code"] == "rate_limit_exceeded"


def test_reject_json_schema_but_json_object_works() -> None:
    with FakeLLMServer(reject_json_schema=True) as server:
        payload = {"task": "verify", "question": "환율이 오르면?", "options": {"A": "x", "B": "y"}}
        status, _, data = post(server.base_url, chat_body(payload, BlindSolve))
        assert status == 400
        assert data["error"] == {"message": "response_format json_schema is not supported",
                                 "type": "invalid_request_error", "param": "response_format",
                                 "code": None}
        result = post(server.base_url, chat_body(payload, BlindSolve, mode="json_object"))
        assert reply(result, BlindSolve).answer in ("A", "B")


def test_unknown_task_uses_schema_named_in_prompt(fake: FakeLLMServer) -> None:
    # No response_format at all (finmcq's "prompt" fallback): the schema name is in the system.
    for schema in (RelevanceJudgment, McqDraft, BlindSolve, SolutionDraft):
        result = post(fake.base_url, chat_body({"task": "mystery"}, schema, mode="prompt"))
        reply(result, schema)
    echo = json.loads(content(post(fake.base_url, chat_body(None))))
    assert echo == {"echo": "다음 조건으로 처리하세요."}


def test_ignore_response_format_answers_prose() -> None:
    with FakeLLMServer(ignore_response_format=True) as server:
        text = content(post(server.base_url, chat_body(source_rows()[1], McqDraft)))
        with pytest.raises(ValueError):
            json.loads(text)
        assert server.stats()["succeeded_bodies"] == {}


def test_max_tokens_cuts_the_reply(fake: FakeLLMServer) -> None:
    _, _, data = post(fake.base_url, chat_body(source_rows()[2], McqDraft, max_tokens=20))
    choice = data["choices"][0]
    assert choice["finish_reason"] == "length"
    assert len(choice["message"]["content"]) == 40
    assert data["usage"]["completion_tokens"] == 20


# --------------------------------------------------------------------------------------------
# stage replies
# --------------------------------------------------------------------------------------------


def test_relevance_by_keywords(fake: FakeLLMServer) -> None:
    finance = {"task": "relevance", "subject": "economics",
               "question": "금리가 상승할 때 장기 채권의 듀레이션과 가격 변화로 옳은 것은?",
               "options": {"A": "채권 가격 하락", "B": "채권 가격 상승", "C": "변화 없음",
                           "D": "국채만 상승"}}
    other = {"task": "relevance", "subject": "biology",
             "question": "광합성이 일어나는 세포 소기관은?",
             "options": {"A": "엽록체", "B": "미토콘드리아", "C": "리보솜", "D": "핵"}}
    bodies = [chat_body(finance, RelevanceJudgment), chat_body(other, RelevanceJudgment)]
    yes, no = (reply(r, RelevanceJudgment) for r in post_many(fake.base_url, bodies))
    assert yes.relevant and yes.topic is Topic.BONDS and yes.score >= 4
    assert not no.relevant and no.topic is Topic.OTHER and no.score == 1


def test_rewrite_and_generate_drafts_pass_finmcq_checks(fake: FakeLLMServer) -> None:
    rows = source_rows()
    bodies = [chat_body(row, McqDraft) for row in rows]
    bodies += [chat_body(generate_payload(i, topic), McqDraft)
               for i, topic in enumerate(MARKET_TOPICS * 4)]
    for row, result in zip(rows + [None] * 32, post_many(fake.base_url, bodies), strict=True):
        draft = reply(result, McqDraft)
        options = [draft.correct_option, *draft.distractors]
        assert checks.option_problems(options) is None, draft
        assert checks.stem_problems(draft.question, draft.correct_option) is None, draft
        if row is not None and not is_positional(row["options"][row["answer"]]):
            # A rewrite keeps the source key and the source question.
            assert draft.correct_option == normalize_text(row["options"][row["answer"]])
            assert row["question"].strip() in draft.question
        codes = [option_code(o) for o in options]
        figures = stem_figures(draft.question)
        assert codes[0] in figures
        assert not figures & set(codes[1:]) and codes[0] not in codes[1:]


def test_verify_agrees_with_finmcq_placement(fake: FakeLLMServer) -> None:
    payloads = [dict(row) for row in source_rows() for _ in range(3)]  # 3 settings per row
    for n, payload in enumerate(payloads):
        payload["subject"] = f"sample-{n}"  # vary the request so each rewrite differs
    payloads += [generate_payload(i, MARKET_TOPICS[i % 8]) for i in range(100)]
    drafts = [reply(r, McqDraft) for r in post_many(
        fake.base_url, [chat_body(p, McqDraft) for p in payloads])]
    placed = [place(d, seed) for seed, d in enumerate(drafts)]
    verify_bodies = [chat_body({"task": "verify", "question": d.question, "options": opts},
                               BlindSolve) for d, (opts, _) in zip(drafts, placed, strict=True)]
    answers = [reply(r, BlindSolve).answer for r in post_many(fake.base_url, verify_bodies)]
    assert len(answers) >= 199
    assert answers == [key for _, key in placed]
    assert len(set(answers)) == 7  # the key really moves around


def test_verify_on_foreign_question_guesses_deterministically(fake: FakeLLMServer) -> None:
    payload = {"task": "verify", "question": "다음 중 옳은 것은?",
               "options": dict(zip(LETTERS, [f"설명 {i}" for i in range(7)], strict=True))}
    first, second = (reply(r, BlindSolve).answer
                     for r in post_many(fake.base_url, [chat_body(payload, BlindSolve)] * 2))
    assert first == second and first in LETTERS


def test_solve_concludes_with_the_key(fake: FakeLLMServer) -> None:
    drafts = [reply(r, McqDraft) for r in post_many(
        fake.base_url, [chat_body(row, McqDraft) for row in source_rows()[:14]])]
    bodies, keys = [], []
    for seed, draft in enumerate(drafts):
        options, key = place(draft, seed)
        bodies.append(chat_body({"task": "solve", "question": draft.question,
                                 "options": options, "answer": key}, SolutionDraft))
        keys.append(key)
    for key, result in zip(keys, post_many(fake.base_url, bodies), strict=True):
        solution = reply(result, SolutionDraft)
        assert solution.final_answer == key
        assert [r.letter for r in solution.option_reviews] == list(LETTERS)
        texts = [solution.analysis, solution.derivation, solution.theory,
                 *(r.review for r in solution.option_reviews)]
        assert checks.solution_problems(solution.final_answer, key, texts) is None
        assert key in solution.derivation


def test_generated_stems_are_diverse(fake: FakeLLMServer) -> None:
    # Worst case: one topic and one subtopic for every slot.
    bodies = [chat_body(generate_payload(i), McqDraft) for i in range(300)]
    stems = [reply(r, McqDraft).question for r in post_many(fake.base_url, bodies)]
    sets = [shingles(s) for s in stems]
    worst = max(len(a & b) / len(a | b) for a, b in itertools.combinations(sets, 2))
    assert worst < 0.6
    # A retry of a slot (next attempt) is a different question too.
    retry = reply(post(fake.base_url, chat_body(generate_payload(0, attempt=1), McqDraft)),
                  McqDraft)
    a, b = shingles(retry.question), sets[0]
    assert len(a & b) / len(a | b) < 0.6


# --------------------------------------------------------------------------------------------
# faults and stats
# --------------------------------------------------------------------------------------------


def test_fault_rates_roughly_as_configured() -> None:
    config = FakeConfig(seed=3, rate_429=0.1, rate_500=0.1, rate_malformed=0.1, rate_length=0.1)
    with FakeLLMServer(config) as server:
        bodies = [chat_body(generate_payload(i, MARKET_TOPICS[i % 8]), McqDraft)
                  for i in range(500)]
        results = post_many(server.base_url, bodies)
        kinds = {"429": 0, "500": 0, "malformed": 0, "length": 0, "ok": 0}
        for status, _, data in results:
            if status != 200:
                kinds[str(status)] += 1
                continue
            choice = data["choices"][0]
            if choice["finish_reason"] == "length":
                kinds["length"] += 1
                continue
            try:
                McqDraft.model_validate_json(choice["message"]["content"])
                kinds["ok"] += 1
            except ValueError:
                kinds["malformed"] += 1
        for kind in ("429", "500", "malformed", "length"):
            assert 25 <= kinds[kind] <= 80, kinds
        assert 250 <= kinds["ok"] <= 350, kinds
        stats = server.stats()
        assert stats["requests"] == 500 and stats["by_task"] == {"generate": 500}
        assert sum(stats["succeeded_bodies"].values()) == kinds["ok"]
        assert stats["duplicate_successes"] == 0
        assert stats["faults"]["429"] == kinds["429"]


def test_retry_of_same_body_gets_a_fresh_draw() -> None:
    with FakeLLMServer(rate_500=0.5) as server:
        bodies = [chat_body(generate_payload(i), McqDraft) for i in range(40)]
        first_failures = sum(r[0] == 500 for r in post_many(server.base_url, bodies))
        assert 8 <= first_failures <= 32
        pending = [b for b, r in zip(bodies, post_many(server.base_url, bodies), strict=True)
                   if r[0] != 200]
        for _ in range(20):  # keep retrying exactly the same bodies
            if not pending:
                break
            results = post_many(server.base_url, pending)
            pending = [b for b, r in zip(pending, results, strict=True) if r[0] != 200]
        assert not pending
        assert server.stats()["duplicate_successes"] > 0  # resending succeeded bodies shows up


def test_hang_is_cut_by_client_timeout() -> None:
    with FakeLLMServer(rate_hang=1.0) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(**chat_body(generate_payload(1), McqDraft))
        assert time.monotonic() - started < 2
        for _ in range(50):  # the abandoned handler is cancelled, not left sleeping
            if server.stats()["in_flight"] == 0:
                break
            time.sleep(0.02)
        stats = server.stats()
        assert stats["in_flight"] == 0 and stats["faults"] == {"hang": 1}


def test_peak_in_flight_and_latency() -> None:
    with FakeLLMServer(latency_ms=200) as server:
        bodies = [chat_body(generate_payload(i), McqDraft) for i in range(50)]
        started = time.monotonic()
        results = post_many(server.base_url, bodies, concurrency=50)
        elapsed = time.monotonic() - started
        assert all(r[0] == 200 for r in results)
        assert 0.2 <= elapsed < 1.5
        stats = server.stats()
        assert stats["peak_in_flight"] == 50 and stats["in_flight"] == 0
        assert stats["by_status"] == {"200": 50}


def test_stats_and_reset_endpoints(fake: FakeLLMServer) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            await session.post(f"{fake.base_url}/chat/completions",
                               json=chat_body(generate_payload(1), McqDraft))
            async with session.get(f"{fake.url}/_fake/stats") as resp:
                before = await resp.json()
            async with session.post(f"{fake.url}/_fake/reset") as resp:
                assert resp.status == 200
            async with session.get(f"{fake.url}/_fake/stats") as resp:
                after = await resp.json()
        return before, after

    before, after = asyncio.run(scenario())
    assert before["requests"] >= 1 and before["by_status"]["200"] >= 1
    assert {"by_task", "peak_in_flight", "in_flight", "succeeded_bodies"} <= before.keys()
    assert after["requests"] == 0 and after["succeeded_bodies"] == {}
    assert fake.stats()["requests"] == 0


def test_python_dash_m_runs_a_server() -> None:
    path = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.Popen(
        [sys.executable, "-m", "finmcq.fake", "--port", "0", "--latency-ms", "5", "--seed", "1",
         "--models", "m1", "m2"],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        models = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0).models.list()
        assert [m.id for m in models] == ["m1", "m2"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
