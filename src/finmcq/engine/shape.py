"""The request shape per model: what the engine puts on the wire, and how it adapts.

The engine builds a *logical* request (messages, schema, temperature, output limit, seed,
reasoning effort); its cache key is a function of that alone. :class:`RequestShaper` turns it
into the body a model takes (``max_tokens`` or ``max_completion_tokens``, temperature sent or
left at the model's default, ``reasoning_effort`` where the model has it, room in the output
limit for hidden reasoning tokens), starting from :mod:`finmcq.engine.capabilities`.

When a server answers 400 naming an unsupported parameter or value (OpenAI's
``unsupported_parameter`` / ``unsupported_value`` with ``param``, or the same words in the
message), :meth:`RequestShaper.adapt` changes that model's shape once, logs what changed,
records it in the run's store (so a resumed run starts from it) and the request is sent again in
the new shape. Nothing else is retried blindly: a 400 this module cannot map to a change is left
to the engine, which stops.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from finmcq.engine.capabilities import EFFORTS, Capabilities, CapabilityTable, nearest_effort

log = logging.getLogger("finmcq.engine")

StructuredMode = Literal["json_schema", "json_object", "prompt"]

REASONING_ROOM: dict[str, int] = {
    "none": 0, "minimal": 2048, "low": 8192, "medium": 16384, "high": 32768, "xhigh": 65536,
}
"""Output tokens added to a reasoning model's limit, per effort, on top of the visible reply's
limit: reasoning tokens are taken from the same limit, and a limit sized for the visible reply
alone cuts the solution off (finish_reason "length" with an empty reply). Only tokens actually
used are billed; the room only prevents truncation."""

DEFAULT_ROOM = REASONING_ROOM["medium"]  # a reasoning model at an effort we do not know

_META_KEY = "request_shapes"
_PARAM_IN_MESSAGE = re.compile(
    r"(?:unsupported (?:parameter|value)|unrecognized (?:request )?argument)[^']*'([\w.]+)'"
    r"|'([\w.]+)' (?:is not supported|does not support)", re.I)
_REFUSAL_WORDS = re.compile(r"unsupported|not supported|invalid|unrecognized|unknown", re.I)
_OUR_PARAMS = ("max_completion_tokens", "max_tokens", "temperature", "top_p", "seed",
               "reasoning_effort")
_SUPPORTED_VALUES = re.compile(r"supported values are:?(.*)", re.I | re.S)


class MetaStore(Protocol):
    """The part of :class:`finmcq.engine.store.RunStore` the shaper uses."""

    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def add_event(self, kind: str, *, stage: str | None, item_id: str | None,
                  detail: str) -> None: ...


@dataclass
class ModelShape:
    """How requests to one model are shaped now (the table's view plus adaptations)."""

    model: str
    caps: Capabilities
    token_limit: str
    temperature: bool
    top_p: bool
    seed: bool
    efforts: tuple[str, ...]
    reasoning: bool
    changes: list[str] = field(default_factory=list)

    def remembered(self) -> dict[str, Any]:
        return {"token_limit": self.token_limit, "temperature": self.temperature,
                "top_p": self.top_p, "seed": self.seed, "efforts": list(self.efforts),
                "reasoning": self.reasoning, "changes": self.changes}


class RequestShaper:
    """Per-model request shapes for one server; adapts them on an unsupported-parameter 400."""

    def __init__(self, table: CapabilityTable, base_url: str | None, *,
                 effort: str | None = None, stage_efforts: dict[str, str] | None = None,
                 default_temperature: float = 0.0, store: MetaStore | None = None) -> None:
        self.table = table
        self.base_url = base_url
        self.effort_setting = effort
        self.stage_efforts = dict(stage_efforts or {})
        self.default_temperature = default_temperature
        self.store = store
        self._shapes: dict[str, ModelShape] = {}
        self._warned: set[str] = set()
        raw = store.get_meta(_META_KEY) if store is not None else None
        self._remembered: dict[str, dict[str, Any]] = json.loads(raw) if raw else {}

    # -- what a request looks like ---------------------------------------------------------

    def shape(self, model: str) -> ModelShape:
        found = self._shapes.get(model)
        if found is not None:
            return found
        caps = self.table.lookup(model, self.base_url)
        shape = ModelShape(model, caps, caps.token_limit, caps.temperature, caps.top_p,
                           caps.seed, caps.reasoning_effort, caps.reasoning)
        old = self._remembered.get(model)
        if old:
            shape.token_limit = old.get("token_limit", shape.token_limit)
            shape.temperature = bool(old.get("temperature", shape.temperature))
            shape.top_p = bool(old.get("top_p", shape.top_p))
            shape.seed = bool(old.get("seed", shape.seed))
            shape.efforts = tuple(e for e in old.get("efforts", shape.efforts) if e in EFFORTS)
            shape.reasoning = bool(old.get("reasoning", shape.reasoning))
            shape.changes = list(old.get("changes", []))
            if shape.changes:
                log.info("%s: request shape remembered from an earlier session of this run "
                         "(%s)", model, "; ".join(shape.changes))
        self._shapes[model] = shape
        log.info("%s: %s", model, self.describe(model))
        return shape

    def requested_effort(self, stage: str) -> str | None:
        """The reasoning effort the settings ask for this stage (part of the logical request)."""
        return self.stage_efforts.get(stage, self.effort_setting)

    def effort(self, stage: str, model: str) -> str | None:
        """The reasoning_effort value sent for ``stage`` to ``model``; None: not sent."""
        wanted = self.requested_effort(stage)
        if wanted is None:
            return None
        shape = self.shape(model)
        if not shape.efforts:
            self._warn_once(f"noeffort:{model}", "%s takes no reasoning_effort; the requested "
                            "%r is not sent to it", model, wanted)
            return None
        chosen = nearest_effort(wanted, shape.efforts)
        if chosen != wanted:
            self._warn_once(f"effort:{model}:{wanted}", "%s does not take reasoning_effort %r "
                            "(it takes %s); sending %r instead", model, wanted,
                            ", ".join(shape.efforts), chosen)
        return chosen

    def reasoning_room(self, stage: str, model: str) -> int:
        """Output tokens added to the limit for hidden reasoning (0 for non-reasoning models)."""
        shape = self.shape(model)
        if not shape.reasoning:
            return 0
        effort = self.effort(stage, model) or shape.caps.default_effort
        return REASONING_ROOM.get(effort, DEFAULT_ROOM) if effort else DEFAULT_ROOM

    def initial_mode(self, model: str, mode: StructuredMode) -> StructuredMode:
        """The structured-output mode to start with: the table may say the server ignores
        ``response_format`` (schema in the prompt from the first request) or lacks json_schema."""
        fmt = self.shape(model).caps.response_format
        if fmt == "ignored":
            return "prompt"
        if fmt == "json_object" and mode == "json_schema":
            return "json_object"
        return mode

    def wire(self, body: dict[str, Any], stage: str) -> dict[str, Any]:
        """Turn the engine's logical body (``max_tokens``, ``temperature``, ``seed``) into the
        body ``body["model"]`` takes. Modifies and returns ``body``."""
        model = str(body["model"])
        shape = self.shape(model)
        limit = int(body.pop("max_tokens")) + self.reasoning_room(stage, model)
        body[shape.token_limit] = limit
        temperature = body.get("temperature")
        if temperature is not None and not shape.temperature:
            del body["temperature"]
            if temperature != self.default_temperature:
                self._warn_once(f"sampled:{model}", "%s runs at its default temperature only: "
                                "requests asking for temperature %s (self-consistency samples "
                                "of --blind-solves) run at the default; each sample is still an "
                                "independent request, since its prompt differs", model,
                                temperature, level=logging.INFO)
        elif temperature is not None and shape.caps.temperature_max is not None and (
                temperature > shape.caps.temperature_max):
            body["temperature"] = shape.caps.temperature_max
            self._warn_once(f"tmax:{model}", "%s accepts temperature up to %s; %s is sent as "
                            "%s", model, shape.caps.temperature_max, temperature,
                            shape.caps.temperature_max)
        if "seed" in body and not shape.seed:
            del body["seed"]
        if "top_p" in body and not shape.top_p:
            del body["top_p"]
        effort = self.effort(stage, model)
        if effort is not None:
            body["reasoning_effort"] = effort
        return body

    # -- adapting --------------------------------------------------------------------------

    def adapt(self, model: str, sent: dict[str, Any], status: int, error: Any,
              message: str) -> bool:
        """Answer a rejected request: True when the request should be sent again in the
        (possibly just) adapted shape; False when this is not a parameter problem we can fix."""
        if status != 400:
            return False
        param = rejected_param(error, message)
        if param is None:
            return False
        message = error_parts(error, message)[1].rstrip(". ")
        shape = self.shape(model)
        change: str | None = None
        if param in ("max_tokens", "max_completion_tokens"):
            if param not in sent:
                return False
            other = "max_completion_tokens" if param == "max_tokens" else "max_tokens"
            if shape.token_limit == other:
                return True  # another request already adapted; resend in the new shape
            shape.token_limit = other
            change = f"sends {other} instead of {param}"
        elif param in ("temperature", "top_p", "seed"):
            if param not in sent:
                return False
            if not getattr(shape, param):
                return True
            setattr(shape, param, False)
            change = (f"no longer sends {param}" + (" (the model's default temperature is used)"
                                                   if param == "temperature" else ""))
        elif param == "reasoning_effort":
            value = sent.get("reasoning_effort")
            if value is None:
                return False
            if value not in shape.efforts:
                return True
            listed = supported_values(message)
            shape.efforts = tuple(e for e in listed if e in EFFORTS) if listed else ()
            now = nearest_effort(str(value), shape.efforts)
            change = (f"reasoning_effort {value!r} is not accepted; sends {now!r}" if now else
                      "no longer sends reasoning_effort (not accepted)")
        if change is None:
            return False
        shape.changes.append(change)
        self._remember()
        log.warning("%s: the server rejected the request (%s); adapting: %s. Remembered for "
                    "this run.", model, message, change)
        if self.store is not None:
            self.store.add_event("adapted", stage=None, item_id=None,
                                 detail=f"{model}: {change} ({message})")
        return True

    def observe_reasoning(self, model: str, tokens: int) -> None:
        """A reply reported hidden reasoning tokens: a model the table did not know as a
        reasoning model (e.g. an Azure deployment name) gets room for them from now on."""
        if tokens <= 0:
            return
        shape = self.shape(model)
        if shape.reasoning:
            return
        shape.reasoning = True
        change = (f"reports reasoning tokens; its output limit gets "
                  f"{self.reasoning_room('', model):,} tokens of room for them")
        shape.changes.append(change)
        self._remember()
        log.warning("%s: %s. Remembered for this run.", model, change)

    def changes(self) -> dict[str, list[str]]:
        """What was adapted per model (for the stats file)."""
        return {m: list(s.changes) for m, s in sorted(self._shapes.items()) if s.changes}

    def describe(self, model: str, stage: str | None = None) -> str:
        """One line: the shape this model gets, e.g. for ``finmcq doctor``."""
        shape = self._shapes.get(model) or self.shape(model)
        parts = [f"uses {shape.token_limit}"]
        parts.append("temperature sent" if shape.temperature
                     else "temperature fixed at the model default")
        if not shape.seed:
            parts.append("no seed")
        if shape.reasoning:
            effort = self.effort(stage or "", model)
            if effort:
                parts.append(f"reasoning_effort {effort}")
            else:
                default = shape.caps.default_effort
                parts.append("reasoning_effort: model default"
                             + (f" ({default})" if default else ""))
            parts.append(f"+{self.reasoning_room(stage or '', model):,} output tokens of room "
                         "for reasoning")
        elif self.requested_effort(stage or "") and shape.efforts:
            parts.append(f"reasoning_effort {self.effort(stage or '', model)}")
        fmt = shape.caps.response_format
        if fmt == "ignored":
            parts.append("schema in the prompt (the server ignores response_format)")
        elif fmt == "json_object":
            parts.append("JSON mode with the schema in the prompt")
        return "; ".join(parts)

    # -- internals -------------------------------------------------------------------------

    def _remember(self) -> None:
        if self.store is None:
            return
        data = dict(self._remembered)
        data.update({m: s.remembered() for m, s in self._shapes.items() if s.changes})
        self.store.set_meta(_META_KEY, json.dumps(data, sort_keys=True))

    def _warn_once(self, key: str, fmt: str, *args: Any, level: int = logging.WARNING) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.log(level, fmt, *args)


def rejected_param(error: Any, message: str) -> str | None:
    """The parameter a 400 names as unsupported, from OpenAI's error object (``param`` with
    ``code`` unsupported_parameter / unsupported_value) or, failing that, from its message."""
    err, message = error_parts(error, message)
    param: str | None = None
    if isinstance(err, dict):
        code = str(err.get("code") or "")
        raw = err.get("param")
        text = message.lower()
        if isinstance(raw, str) and raw and (
                code in ("unsupported_parameter", "unsupported_value")
                or "unsupported" in text or "not supported" in text):
            param = raw
    if param is None:
        match = _PARAM_IN_MESSAGE.search(message)
        if match:
            param = match.group(1) or match.group(2)
    if param is None and _REFUSAL_WORDS.search(message):
        # Servers with their own error wording ("Invalid reasoning_effort value: none"):
        # one of the parameters we send, named beside a word of refusal.
        named = [p for p in _OUR_PARAMS if re.search(rf"\b{p}\b", message)]
        param = named[0] if len(named) == 1 else None
    if param is None:
        return None
    param = param.rsplit(".", 1)[-1] if param.endswith(".effort") else param
    return "reasoning_effort" if param in ("effort", "reasoning") else param


def error_parts(error: Any, message: str) -> tuple[dict[str, Any] | None, str]:
    """The error object of a 400 body (OpenAI's ``{"error": {...}}``, a flat object, or
    Google's list of them) and its message (``message`` when the body has none)."""
    if isinstance(error, list) and error and isinstance(error[0], dict):
        error = error[0]
    err = error.get("error", error) if isinstance(error, dict) else None
    if not isinstance(err, dict):
        return None, message
    text = err.get("message")
    return err, str(text) if isinstance(text, str) and text else message


def supported_values(message: str) -> list[str]:
    """Values listed after "Supported values are:" in an unsupported_value message."""
    match = _SUPPORTED_VALUES.search(message)
    return re.findall(r"'([\w.-]+)'", match.group(1)) if match else []
