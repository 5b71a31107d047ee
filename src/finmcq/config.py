"""Build settings: defaults give the seed's job; a TOML file may hold them; flags win."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from finmcq.engine.client import EngineConfig
from finmcq.errors import ConfigError
from finmcq.records import MARKET_TOPICS, Topic
from finmcq.stages.assemble import DEFAULT_INSTRUCTION

DEFAULT_SOURCE = "HAERAE-HUB/KMMLU"


class BuildSettings(BaseModel):
    """Everything that decides what a build produces. Stored in the run's stats file."""

    model_config = ConfigDict(extra="forbid")

    source: str = DEFAULT_SOURCE
    # None: the source's defaults (KMMLU: Economics, and train,dev,test as the seed asks).
    subjects: list[str] | None = None
    splits: list[str] | None = None
    questions: int = Field(1000, ge=1)
    seed: int = 42
    out: Path = Path("runs/latest")
    # LLM
    model: str = "gpt-4o-mini"
    stage_models: dict[str, str] = Field(default_factory=dict)
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(100, ge=1, le=10_000)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(4096, ge=64)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(10, ge=1, description="tries per request on transient errors")
    prices: Path | None = None
    # pipeline
    min_relevance_score: int = Field(3, ge=1, le=5)
    topic_weights: dict[Topic, float] = Field(
        default_factory=lambda: {t: 1.0 for t in MARKET_TOPICS}
    )
    difficulty_mix: tuple[float, float, float] = (0.3, 0.5, 0.2)
    max_attempts_per_question: int = Field(6, ge=1)
    solve_tries: int = Field(3, ge=1)
    instruction: str = DEFAULT_INSTRUCTION
    progress: bool | None = None

    @field_validator("topic_weights")
    @classmethod
    def _market_topics_only(cls, value: dict[Topic, float]) -> dict[Topic, float]:
        if Topic.OTHER in value:
            raise ValueError("기타 is not a market topic; weights are for the 8 market areas")
        if not value or any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError("topic weights must be non-negative and not all zero")
        return value

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            base_url=self.base_url,
            api_key_env=self.api_key_env,
            model=self.model,
            stage_models=dict(self.stage_models),
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            timeout_s=self.timeout_s,
            concurrency=self.concurrency,
            max_attempts=self.max_retries,
        )

    @classmethod
    def from_sources(cls, config_file: Path | None, overrides: dict[str, Any]) -> BuildSettings:
        """Defaults, then the TOML file, then the flags the user actually gave."""
        data: dict[str, Any] = {}
        if config_file is not None:
            try:
                data = tomllib.loads(Path(config_file).read_text("utf-8"))
            except FileNotFoundError:
                raise ConfigError(f"Config file {config_file} does not exist",
                                  fix="Check the --config path") from None
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"Cannot read config file {config_file}: {exc}",
                                  fix="It must be UTF-8 TOML with the same keys as the flags"
                                  ) from None
            data = data.get("build", data)
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            where = f"config file {config_file}" if config_file else "command line"
            raise ConfigError(f"Invalid setting {field!r}: {first['msg']}", where=where,
                              fix="See `finmcq build --help` for allowed values") from None


def topic_quotas(total: int, weights: dict[Topic, float]) -> dict[Topic, int]:
    """Split ``total`` over topics by weight with the largest-remainder method (sums exactly)."""
    topics = [t for t in MARKET_TOPICS if weights.get(t, 0) > 0]
    weight_sum = sum(weights[t] for t in topics)
    raw = {t: total * weights[t] / weight_sum for t in topics}
    quotas = {t: int(raw[t]) for t in topics}
    leftover = total - sum(quotas.values())
    by_remainder = sorted(topics, key=lambda t: (-(raw[t] - quotas[t]), MARKET_TOPICS.index(t)))
    for t in by_remainder[:leftover]:
        quotas[t] += 1
    return quotas
