"""The capability table and request-shape adaptation, without a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finmcq.engine.capabilities import CapabilityTable, nearest_effort
from finmcq.engine.client import parse_reply, request_key
from finmcq.engine.cost import PriceTable
from finmcq.engine.shape import RequestShaper, rejected_param, supported_values
from finmcq.errors import ConfigError
from finmcq.records import BlindSolve

ANTHROPIC = "https://api.anthropic.com/v1/"
GEMINI = "https://generativelanguage.googleapis.com/v1beta/openai/"


def _body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "x"}],
            "temperature": 0.0, "max_tokens": 4096, **extra}


def test_table_knows_the_models_users_pick() -> None:
    table = CapabilityTable.load()
    gpt5 = table.lookup("gpt-5-mini", None)
    assert (gpt5.token_limit, gpt5.temperature, gpt5.reasoning) == (
        "max_completion_tokens", False, True)
    assert "minimal" in gpt5.reasoning_effort and gpt5.default_effort == "medium"
    assert table.lookup("gpt-5.1", None).reasoning_effort[0] == "none"
    assert table.lookup("o4-mini", None).reasoning_effort == ("low", "medium", "high")
    gpt41 = table.lookup("gpt-4.1-mini", None)
    assert (gpt41.token_limit, gpt41.temperature, gpt41.reasoning) == (
        "max_completion_tokens", True, False)
    claude = table.lookup("claude-sonnet-4-5", ANTHROPIC)
    assert (claude.response_format, claude.seed, claude.temperature_max) == ("ignored", False, 1.0)
    assert table.lookup("gemini-2.5-flash", GEMINI).reasoning
    # Unknown model on an unknown server: the classic shape every server understands.
    local = table.lookup("qwen2.5:14b", "http://localhost:11434/v1")
    assert (local.token_limit, local.temperature, local.seed, local.reasoning,
            local.response_format) == ("max_tokens", True, True, False, "json_schema")


def test_override_file_wins_and_bad_files_say_why(tmp_path: Path) -> None:
    good = tmp_path / "caps.toml"
    good.write_text('[[rule]]\nmodel = "my-*"\nbase_url = "http://gpu:*"\n'
                    'token_limit = "max_completion_tokens"\ntemperature = false\n', "utf-8")
    table = CapabilityTable.load(good)
    assert table.lookup("my-model", "http://gpu:8000/v1").token_limit == "max_completion_tokens"
    assert table.lookup("my-model", "http://other:8000/v1").token_limit == "max_tokens"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nmodel = "x"\ntoken_limit = "max_output"\n', "utf-8")
    with pytest.raises(ConfigError, match="token_limit"):
        CapabilityTable.load(bad)
    bad.write_text('[[rule]]\nmodel = "x"\nreasoning_effort = ["extreme"]\n', "utf-8")
    with pytest.raises(ConfigError, match="reasoning_effort"):
        CapabilityTable.load(bad)


def test_wire_shape_for_a_reasoning_model() -> None:
    shaper = RequestShaper(CapabilityTable.load(), None, effort="low")
    body = shaper.wire(_body("gpt-5-mini", seed=7), "solve")
    assert "max_tokens" not in body and "temperature" not in body
    assert body["max_completion_tokens"] == 4096 + 8192  # visible limit + room for reasoning
    assert body["reasoning_effort"] == "low" and body["seed"] == 7
    plain = shaper.wire(_body("gpt-4o-mini"), "solve")
    assert plain["max_completion_tokens"] == 4096 and plain["temperature"] == 0.0
    assert "reasoning_effort" not in plain  # not a reasoning model: not sent
    anthropic = RequestShaper(CapabilityTable.load(), ANTHROPIC)
    capped = anthropic.wire(_body("claude-haiku-4-5", temperature=1.5, seed=3), "verify")
    assert capped["temperature"] == 1.0 and "seed" not in capped
    assert anthropic.initial_mode("claude-haiku-4-5", "json_schema") == "prompt"


def test_effort_outside_the_models_values_goes_to_the_nearest() -> None:
    assert nearest_effort("minimal", ("none", "low", "medium", "high")) == "low"
    assert nearest_effort("xhigh", ("low", "medium", "high")) == "high"
    shaper = RequestShaper(CapabilityTable.load(), None, effort="minimal",
                           stage_efforts={"solve": "high"})
    assert shaper.effort("relevance", "gpt-5.1") == "low"
    assert shaper.effort("solve", "gpt-5.1") == "high"


OPENAI_MAX_TOKENS = {"error": {
    "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
    "'max_completion_tokens' instead.", "type": "invalid_request_error", "param": "max_tokens",
    "code": "unsupported_parameter"}}
OPENAI_TEMPERATURE = {"error": {
    "message": "Unsupported value: 'temperature' does not support 0.0 with this model. Only the "
    "default (1) value is supported.", "type": "invalid_request_error", "param": "temperature",
    "code": "unsupported_value"}}
OPENAI_EFFORT = {"error": {
    "message": "Unsupported value: 'minimal' is not supported with the 'gpt-5.1' model. "
    "Supported values are: 'none', 'low', 'medium', and 'high'.",
    "type": "invalid_request_error", "param": "reasoning_effort", "code": "unsupported_value"}}


def test_rejections_are_read_from_openais_error_object_or_the_message() -> None:
    assert rejected_param(OPENAI_MAX_TOKENS, "") == "max_tokens"
    assert rejected_param(OPENAI_TEMPERATURE, "") == "temperature"
    # vLLM-style flat error and Gemini's list: the parameter is named in the message only.
    assert rejected_param({"object": "error", "param": None, "code": 400},
                          "Unsupported parameter: 'seed' for this model") == "seed"
    assert rejected_param([{"error": {"code": 400}}], "context length exceeded") is None
    assert rejected_param([{"error": {"code": 400}}], "Invalid reasoning_effort value: none. "
                          "Supported values are: 'minimal', 'low'.") == "reasoning_effort"
    assert rejected_param({"error": {"message": "x"}},
                          "max_tokens is too large: 50000 > 32768") is None
    assert rejected_param({"error": {"param": "reasoning.effort", "code": "unsupported_value"}},
                          "") == "reasoning_effort"
    assert supported_values(OPENAI_EFFORT["error"]["message"]) == ["none", "low", "medium",
                                                                    "high"]


class _Meta:
    def __init__(self) -> None:
        self.meta: dict[str, str] = {}
        self.events: list[str] = []

    def get_meta(self, key: str) -> str | None:
        return self.meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self.meta[key] = value

    def add_event(self, kind: str, *, stage: str | None, item_id: str | None,
                  detail: str) -> None:
        self.events.append(f"{kind}: {detail}")


def test_adaptation_happens_once_is_remembered_and_never_loops() -> None:
    store = _Meta()
    shaper = RequestShaper(CapabilityTable.load(), "http://127.0.0.1:1/v1", store=store)
    model = "my-deployment"
    sent = shaper.wire(_body(model), "verify")
    assert "max_tokens" in sent
    message = OPENAI_MAX_TOKENS["error"]["message"]
    assert shaper.adapt(model, sent, 400, OPENAI_MAX_TOKENS, message)
    # Requests already in flight with the old shape: resent, not adapted (or logged) again.
    assert shaper.adapt(model, sent, 400, OPENAI_MAX_TOKENS, message)
    assert len(store.events) == 1
    again = shaper.wire(_body(model), "verify")
    assert "max_completion_tokens" in again and "max_tokens" not in again
    assert shaper.adapt(model, again, 400, OPENAI_TEMPERATURE, "")
    assert "temperature" not in shaper.wire(_body(model), "verify")
    # Not a parameter problem, or a non-400: left to the engine (which stops).
    assert not shaper.adapt(model, again, 400, {"error": {"message": "bad", "param": None}},
                            "bad request")
    assert not shaper.adapt(model, again, 500, OPENAI_TEMPERATURE, "")
    # A resumed run starts from the remembered shape.
    resumed = RequestShaper(CapabilityTable.load(), "http://127.0.0.1:1/v1", store=store)
    body = resumed.wire(_body(model), "verify")
    assert "max_completion_tokens" in body and "temperature" not in body
    assert json.loads(store.meta["request_shapes"])[model]["changes"]


def test_unsupported_effort_takes_the_servers_list() -> None:
    shaper = RequestShaper(CapabilityTable.load(), None, effort="minimal")
    table_says = shaper.shape("gpt-5.1")
    table_says.efforts = ("minimal", "low")  # pretend the table was wrong
    sent = shaper.wire(_body("gpt-5.1"), "verify")
    assert sent["reasoning_effort"] == "minimal"
    assert shaper.adapt("gpt-5.1", sent, 400, OPENAI_EFFORT, OPENAI_EFFORT["error"]["message"])
    assert shaper.wire(_body("gpt-5.1"), "verify")["reasoning_effort"] == "low"


def test_cache_key_is_the_logical_request() -> None:
    messages = ({"role": "user", "content": "x"},)
    base = request_key("gpt-5-mini", messages, BlindSolve, 0.0, 4096, None)
    assert base == request_key("gpt-5-mini", messages, BlindSolve, 0.0, 4096, None, None)
    assert base != request_key("gpt-5-mini", messages, BlindSolve, 0.0, 4096, None, "low")


@pytest.mark.parametrize("reply", [
    '{"reasoning": "r", "answer": "B", "difficulty": "easy"}',
    '```json\n{"reasoning": "r", "answer": "B", "difficulty": "easy"}\n```',
    '다음은 요청하신 형식의 답변입니다.\n\n```json\n{"reasoning": "r", "answer": "B", '
    '"difficulty": "easy"}\n```',
    'Here is my answer: {"reasoning": "r", "answer": "B", "difficulty": "easy"} Hope it helps.',
])
def test_json_as_claude_writes_it_validates(reply: str) -> None:
    assert parse_reply(reply, BlindSolve).answer == "B"


def test_prices_are_dated_and_stale_ones_are_named(caplog: pytest.LogCaptureFixture) -> None:
    from datetime import date

    table = PriceTable.load()
    for model in ("gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini", "o3",
                  "o4-mini"):
        price = table.price_of(model)
        assert price is not None and price.checked is not None, model
    checked = table.models["gpt-5-mini"].checked
    assert checked is not None
    assert table.warn_if_stale(["gpt-5-mini"], today=checked) == []
    assert table.warn_if_stale(["gpt-5-mini", "fake-finance-1"],
                               today=date(checked.year + 1, checked.month, 1)) == ["gpt-5-mini"]
    assert "more than six months ago" in caplog.text


def test_engine_starts_with_the_schema_in_the_prompt_for_anthropic(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from finmcq.engine.client import EngineConfig, LLMEngine
    from finmcq.engine.store import RunStore

    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-placeholder-key")
    store = RunStore(tmp_path)
    try:
        engine = LLMEngine(EngineConfig(base_url=ANTHROPIC, model="claude-sonnet-4-5",
                                        api_key_env="ANTHROPIC_API_KEY"), store,
                           PriceTable.load())
        assert engine._mode == "prompt"  # no response_format, schema in the prompt from the start
        openai_engine = LLMEngine(EngineConfig(base_url="http://127.0.0.1:9/v1"), store,
                                  PriceTable.load())
        assert openai_engine._mode == "json_schema"
    finally:
        store.close()
