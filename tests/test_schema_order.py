"""Reply schemas reach the model in their declared order, reasoning before the verdict.

Under strict ``json_schema`` decoding a model writes the fields in the order the schema lists
them, so the order on the wire decides whether it reasons before it commits to an answer. These
tests send a real request through each LLM stage to the fake LLM over HTTP and read the body the
server received.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, create_model

import finmcq.stages
from finmcq import records
from finmcq.engine.client import EngineConfig, LLMEngine, request_key
from finmcq.engine.cost import PriceTable
from finmcq.engine.schema import model_schema_json, schema_instruction
from finmcq.engine.store import RunStore
from finmcq.stages.base import LLMStage

# For every reply model: (reasoning field, verdict field it supports). A new reply model must be
# added here, which forces a look at its order.
REASON_BEFORE_VERDICT: dict[str, list[tuple[str, str]]] = {
    "RelevanceJudgment": [("reason", "relevant"), ("reason", "topic"), ("reason", "score")],
    "McqDraft": [("question", "correct_option"), ("correct_option", "distractors"),
                 ("distractors", "difficulty")],
    "BlindSolve": [("reasoning", "answer"), ("reasoning", "difficulty")],
    "DistractorAudit": [("key_reason", "key_correct")],
    "DistractorReview": [("why_wrong", "defensible"), ("defensible", "replacement")],
    "SolutionDraft": [("analysis", "option_reviews"), ("option_reviews", "derivation"),
                      ("derivation", "final_answer"), ("theory", "final_answer")],
    "OptionReview": [("letter", "review")],
    "SolutionGrade": [("feedback", "correctness"), ("feedback", "coverage"),
                      ("feedback", "grounding")],
}

_OPTIONS = {
    "A": "금리가 오르면 이표채의 가격은 내린다",
    "B": "금리가 오르면 이표채의 가격도 오른다",
    "C": "금리와 채권 가격은 아무 관계가 없다",
    "D": "만기가 짧을수록 가격 변동 폭이 크다",
    "E": "표면이자율이 높을수록 듀레이션이 길다",
    "F": "무이표채의 듀레이션은 만기보다 짧다",
    "G": "금리가 내리면 채권 가격도 내린다",
}
_QUESTION = "시장 금리가 1%p 오를 때 국고채 가격의 움직임으로 옳은 것은?"
_SOLUTION = ("[문제 분석]\n금리와 채권 가격의 관계를 묻는다.\n[선택지 검토]\n"
             + "".join(f"{k}. {v}: 이 진술을 금리와 가격의 역관계에 비추어 검토한다.\n"
                       for k, v in _OPTIONS.items())
             + "[정답 도출]\n따라서 정답은 A입니다.\n"
             + "[이론 및 실무 연계]\n듀레이션이 가격 민감도를 잰다.")

# A hand-written payload per prompt: what each stage puts in its <입력> block.
PAYLOADS: dict[str, dict[str, Any]] = {
    "relevance": {"task": "relevance", "subject": "Economics", "question": _QUESTION,
                  "options": {k: _OPTIONS[k] for k in "ABCD"}},
    "rewrite": {"task": "rewrite", "topic": "채권 시장", "question": _QUESTION,
                "options": {k: _OPTIONS[k] for k in "ABCD"}, "answer": "A"},
    "generate": {"task": "generate", "topic": "채권 시장", "subtopic": "듀레이션",
                 "difficulty": "medium", "slot": "s0001", "attempt": 1},
    "verify": {"task": "verify", "question": _QUESTION, "options": _OPTIONS},
    "judge": {"task": "judge", "question": _QUESTION, "options": _OPTIONS, "answer": "A"},
    "solve": {"task": "solve", "question": _QUESTION, "options": _OPTIONS, "answer": "A"},
    "grade": {"task": "grade", "question": _QUESTION, "options": _OPTIONS, "answer": "A",
              "solution": _SOLUTION},
}


def llm_stages() -> list[type[LLMStage[Any]]]:
    """Every LLM stage class in finmcq.stages (all modules imported, so none is missed)."""
    for info in pkgutil.iter_modules(finmcq.stages.__path__):
        importlib.import_module(f"finmcq.stages.{info.name}")
    found: set[type[LLMStage[Any]]] = set()
    todo = list(LLMStage.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if hasattr(cls, "prompt_name"):
            found.add(cls)
    return sorted(found, key=lambda c: c.prompt_name)


def declared(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def nested_models(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """``model`` and every reply model nested in it, by name."""
    out = {model.__name__: model}
    for field in model.model_fields.values():
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out.update(nested_models(arg))
    return out


def assert_order(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """``schema`` (a wire schema with $defs) lists every object's fields in declared order, and
    every reasoning field before the verdict it supports."""
    defs = schema.get("$defs", {})
    for name, sub in nested_models(model).items():
        node = schema if name == model.__name__ else defs[name]
        keys = list(node["properties"])
        assert keys == declared(sub), f"{name}: wire order {keys} != declared {declared(sub)}"
        if "required" in node:
            assert node["required"] == declared(sub)
        assert name in REASON_BEFORE_VERDICT, f"{name}: add its reasoning/verdict pairs above"
        for reason, verdict in REASON_BEFORE_VERDICT[name]:
            assert keys.index(reason) < keys.index(verdict), f"{name}: {reason} after {verdict}"


def make_engine(tmp_path: Path, base_url: str) -> tuple[LLMEngine, RunStore]:
    store = RunStore(tmp_path / "run")
    config = EngineConfig(base_url=base_url, model="fake-finance-1", backoff_base_s=0.01,
                          backoff_max_s=0.05, timeout_s=10)
    return LLMEngine(config, store, PriceTable.load()), store


def ask_every_stage(tmp_path: Path, base_url: str) -> dict[str, tuple[type[BaseModel], str]]:
    """One real request per stage; ``{prompt name: (reply model, reply content as received)}``."""
    engine, store = make_engine(tmp_path, base_url)
    stages = [cls(engine) for cls in llm_stages()]

    async def run() -> list[Any]:
        try:
            return [await stage.ask(PAYLOADS[stage.prompt_name], f"item-{stage.prompt_name}")
                    for stage in stages]
        finally:
            await engine.aclose()

    replies = asyncio.run(run())
    for stage, reply in zip(stages, replies, strict=True):
        assert isinstance(reply, stage.reply_model), (stage.prompt_name, reply)
    rows = dict(store._query("SELECT stage, content FROM responses"))
    store.close()
    return {s.name: (s.reply_model, rows[s.name]) for s in stages}


def test_every_stage_is_covered() -> None:
    names = {cls.prompt_name for cls in llm_stages()}
    assert names == set(PAYLOADS)


def test_wire_schema_of_every_stage_keeps_declared_order(tmp_path: Path, fake_llm: Any) -> None:
    asked = ask_every_stage(tmp_path, fake_llm.base_url)
    bodies = fake_llm.requests()
    assert len(bodies) == len(asked)
    with urllib.request.urlopen(fake_llm.url + "/_fake/requests", timeout=10) as response:
        assert json.loads(response.read()) == bodies  # the same record over HTTP
    by_schema = {b["response_format"]["json_schema"]["name"]: b for b in bodies}
    for model, content in asked.values():
        wire = by_schema[model.__name__]["response_format"]["json_schema"]
        assert wire["strict"] is True
        assert_order(wire["schema"], model)
        # The fake writes its reply in the order the schema it received lists, as strict
        # decoding does.
        assert list(json.loads(content)) == declared(model), model.__name__


def test_json_mode_fallback_carries_the_schema_in_declared_order(tmp_path: Path,
                                                                 make_fake: Any) -> None:
    fake = make_fake(reject_json_schema=True)
    asked = ask_every_stage(tmp_path, fake.base_url)
    fallbacks = [b for b in fake.requests() if "json_schema" not in json.dumps(
        b.get("response_format"))]
    assert len(fallbacks) == len(asked)
    for body in fallbacks:
        system = body["messages"][0]["content"]
        name = system.split("스키마 이름: ", 1)[1].split("\n", 1)[0]
        model = next(m for m, _ in asked.values() if m.__name__ == name)
        schema = json.loads(system.split(f"스키마 이름: {name}\n", 1)[1])
        assert_order(schema, model)
    for model, content in asked.values():
        assert list(json.loads(content)) == declared(model), model.__name__


def test_schema_instruction_keeps_declared_order() -> None:
    for name in REASON_BEFORE_VERDICT:
        model = getattr(records, name)
        text = schema_instruction(model)
        schema = json.loads(text.split(f"스키마 이름: {name}\n", 1)[1])
        assert list(schema["properties"]) == declared(model)


def test_cache_key_covers_field_order() -> None:
    """Same fields in another order are another request: the model would write another reply."""
    forward = create_model("Solve", reasoning=(str, ...), answer=(str, ...))
    backward = create_model("Solve", answer=(str, ...), reasoning=(str, ...))
    assert model_schema_json(forward) != model_schema_json(backward)
    messages = ({"role": "user", "content": "풀어 보세요."},)
    assert (request_key("m", messages, forward, 0.0, 100, None)
            != request_key("m", messages, backward, 0.0, 100, None))


@pytest.mark.parametrize("name", sorted(REASON_BEFORE_VERDICT))
def test_declared_order_puts_reasoning_first(name: str) -> None:
    model = getattr(records, name)
    fields = declared(model)
    for reason, verdict in REASON_BEFORE_VERDICT[name]:
        assert fields.index(reason) < fields.index(verdict)
