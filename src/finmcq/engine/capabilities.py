"""Model and server capabilities as data: which request shape a model takes.

The packaged table (``finmcq/data/capabilities.toml``) says per model pattern and per server
(base URL pattern) which output-limit parameter a model takes, whether ``temperature``, ``top_p``
and ``seed`` are accepted, whether ``response_format`` works (strict json_schema, JSON mode, or is
ignored), whether the model reasons (hidden reasoning tokens) and which ``reasoning_effort``
values exist. ``--capabilities FILE`` adds rules that are applied after the packaged ones.

The table is a starting point, not a contract: :mod:`finmcq.engine.shape` adapts the request
shape when a server rejects a parameter, whatever the table said.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field, replace
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from finmcq.errors import ConfigError

OPENAI_BASE_URL = "https://api.openai.com/v1"

TokenLimit = Literal["max_tokens", "max_completion_tokens"]
ResponseFormat = Literal["json_schema", "json_object", "ignored"]

EFFORTS: tuple[str, ...] = ("none", "minimal", "low", "medium", "high", "xhigh")
"""Every reasoning_effort value any provider documents, from least to most reasoning."""

_FIELDS = {"token_limit", "temperature", "temperature_max", "top_p", "seed", "response_format",
           "reasoning", "reasoning_effort", "default_effort"}
_RULE_KEYS = _FIELDS | {"name", "model", "base_url", "doc"}


@dataclass(frozen=True)
class Capabilities:
    """What one model on one server accepts, as the table says (before any adaptation)."""

    token_limit: TokenLimit = "max_tokens"
    temperature: bool = True
    temperature_max: float | None = None
    top_p: bool = True
    seed: bool = True
    response_format: ResponseFormat = "json_schema"
    reasoning: bool = False
    reasoning_effort: tuple[str, ...] = ()
    default_effort: str | None = None
    rules: tuple[str, ...] = ()  # names of the rules that matched, in order


@dataclass(frozen=True)
class Rule:
    name: str
    models: tuple[str, ...]
    base_urls: tuple[str, ...]
    values: dict[str, Any]

    def matches(self, model: str, base_url: str) -> bool:
        model_ok = not self.models or any(_glob(model, p) for p in self.models)
        url_ok = not self.base_urls or any(_glob(base_url, p) for p in self.base_urls)
        return model_ok and url_ok


def _glob(value: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


@dataclass
class CapabilityTable:
    """Defaults plus rules; :meth:`lookup` gives one model's capabilities on one server."""

    defaults: Capabilities
    rules: list[Rule] = field(default_factory=list)
    checked: date | None = None

    @classmethod
    def load(cls, override: Path | None = None) -> CapabilityTable:
        text = resources.files("finmcq.data").joinpath("capabilities.toml").read_text("utf-8")
        table = cls._parse(tomllib.loads(text), "the bundled capability table", None)
        if override is not None:
            try:
                data = tomllib.loads(Path(override).read_text("utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(
                    f"Cannot read the capability file {override}: {exc}",
                    fix='It must be TOML with [[rule]] tables (model = "GLOB" and/or base_url = '
                    '"GLOB", then fields such as token_limit = "max_completion_tokens"); see '
                    "src/finmcq/data/capabilities.toml") from None
            table = cls._parse(data, str(override), table)
        return table

    @classmethod
    def _parse(cls, data: dict[str, Any], where: str,
               base: CapabilityTable | None) -> CapabilityTable:
        defaults = base.defaults if base else Capabilities()
        if "defaults" in data:
            defaults = _apply(defaults, _values(data["defaults"], f"{where} [defaults]"))
        rules = list(base.rules) if base else []
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list):
            raise ConfigError(f"{where}: rules must be [[rule]] tables",
                              fix="See src/finmcq/data/capabilities.toml for the layout")
        for i, raw in enumerate(raw_rules):
            if not isinstance(raw, dict):
                raise ConfigError(f"{where}: rule {i + 1} is not a table")
            name = str(raw.get("name") or f"{where} rule {i + 1}")
            unknown = set(raw) - _RULE_KEYS
            if unknown:
                raise ConfigError(f"{where}: rule {name!r} has unknown field(s) "
                                  f"{', '.join(sorted(unknown))}",
                                  fix=f"Allowed: {', '.join(sorted(_RULE_KEYS))}")
            values = _values({k: v for k, v in raw.items() if k in _FIELDS}, f"{where} {name!r}")
            rules.append(Rule(name, _globs(raw.get("model"), where, name),
                              _globs(raw.get("base_url"), where, name), values))
        checked = data.get("checked", base.checked if base else None)
        if checked is not None and not isinstance(checked, date):
            raise ConfigError(f"{where}: checked must be a date (checked = 2026-11-30)")
        return CapabilityTable(defaults=defaults, rules=rules, checked=checked)

    def lookup(self, model: str, base_url: str | None) -> Capabilities:
        url = (base_url or OPENAI_BASE_URL).rstrip("/") + "/"
        caps = self.defaults
        names: list[str] = []
        for rule in self.rules:
            if rule.matches(model, url):
                caps = _apply(caps, rule.values)
                names.append(rule.name)
        return replace(caps, rules=tuple(names))


def _globs(value: Any, where: str, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: rule {name!r}: model/base_url must be a glob or a list of globs")


def _values(raw: Any, where: str) -> dict[str, Any]:
    """Validate the capability fields of one table; return them ready for :func:`_apply`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _FIELDS:
            raise ConfigError(f"{where}: unknown field {key!r}",
                              fix=f"Allowed: {', '.join(sorted(_FIELDS))}")
        if key == "token_limit" and value not in ("max_tokens", "max_completion_tokens"):
            raise ConfigError(f"{where}: token_limit must be \"max_tokens\" or "
                              "\"max_completion_tokens\"")
        elif key == "response_format" and value not in ("json_schema", "json_object", "ignored"):
            raise ConfigError(f"{where}: response_format must be \"json_schema\", "
                              "\"json_object\" or \"ignored\"")
        elif key in ("temperature", "top_p", "seed", "reasoning") and not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be true or false")
        elif key == "temperature_max" and not isinstance(value, int | float):
            raise ConfigError(f"{where}: temperature_max must be a number")
        elif key == "reasoning_effort":
            if not isinstance(value, list) or any(v not in EFFORTS for v in value):
                raise ConfigError(f"{where}: reasoning_effort must be a list of "
                                  f"{', '.join(EFFORTS)}")
            value = tuple(value)
        elif key == "default_effort" and value not in EFFORTS:
            raise ConfigError(f"{where}: default_effort must be one of {', '.join(EFFORTS)}")
        out[key] = float(value) if key == "temperature_max" else value
    return out


def _apply(caps: Capabilities, values: dict[str, Any]) -> Capabilities:
    return replace(caps, **values)


def nearest_effort(wanted: str, allowed: tuple[str, ...]) -> str | None:
    """The allowed effort closest to ``wanted`` (ties go to more reasoning); None if none."""
    if not allowed:
        return None
    if wanted in allowed:
        return wanted
    rank = EFFORTS.index(wanted) if wanted in EFFORTS else EFFORTS.index("medium")
    return min(allowed, key=lambda e: (abs(EFFORTS.index(e) - rank), -EFFORTS.index(e)))
