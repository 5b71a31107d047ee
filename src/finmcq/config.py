"""Build settings: defaults give the seed's job; a TOML file may hold them; flags win."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from finmcq.asof import parse_as_of
from finmcq.engine.client import EngineConfig
from finmcq.errors import ConfigError
from finmcq.records import MARKET_TOPICS, Topic
from finmcq.stages.assemble import DEFAULT_INSTRUCTION

DEFAULT_SOURCE = "HAERAE-HUB/KMMLU"
Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


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
    # Reference month (YYYY-MM) for rules and market facts in every prompt. None: the month the
    # run directory was first built in, else the current month (build.resolve_as_of).
    as_of: str | None = None
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
    max_invalid_replies: int = Field(6, ge=1, description="unusable replies tolerated per request")
    max_retry_wait: float = Field(120.0, ge=0, description="longest Retry-After wait honoured (s)")
    prices: Path | None = None
    capabilities: Path | None = Field(
        None, description="TOML rules added to the model capability table (request shapes)")
    reasoning_effort: Effort | None = Field(
        None, description="reasoning_effort sent to models that take it (default: the model's)")
    stage_reasoning_efforts: dict[str, Effort] = Field(default_factory=dict)
    budget_usd: float | None = Field(None, gt=0, description="stop before spend passes it")
    batch: bool = False  # OpenAI Batch API mode (engine/batch/)
    # pipeline
    min_relevance_score: int = Field(3, ge=1, le=5)
    topic_weights: dict[Topic, float] = Field(
        default_factory=lambda: {t: 1.0 for t in MARKET_TOPICS}
    )
    difficulty_mix: tuple[float, float, float] = (0.3, 0.5, 0.2)
    max_attempts_per_question: int = Field(6, ge=1)
    verify_repair: bool = Field(
        False, description="a rewrite failing the blind solve is rewritten once with feedback "
        "before its slot falls back to generation")
    solve_tries: int = Field(3, ge=1)
    instruction: str = DEFAULT_INSTRUCTION
    holdout: float = Field(0.0, ge=0.0, lt=1.0, description="share of the questions kept out of "
                           "the training file, in heldout_{timestamp}.jsonl (finmcq.holdout)")
    progress: bool | None = None
    # quality checks (see finmcq.quality and README "Data quality")
    second_answer_judge: bool = Field(
        True, description="LLM judge confirms every distractor is wrong; repairs once, else drops")
    judge_model: str | None = Field(None, description="model for the judge (default: --model)")
    blind_solves: int = Field(1, ge=1, le=9, description="k blind solves that must all agree")
    self_consistency_temperature: float = Field(0.7, ge=0.0, le=2.0)
    grade_solutions: bool = Field(
        False, description="LLM judge scores each solution; below threshold: regenerate once")
    grade_model: str | None = Field(None, description="model for solution grading")
    min_solution_score: int = Field(3, ge=1, le=5,
                                    description="lowest acceptable score on every criterion")
    near_duplicate_threshold: float = Field(0.6, gt=0.0, le=1.0,
                                            description="Jaccard of character shingles")
    shingle_size: int = Field(4, ge=2, le=10, description="characters per shingle")
    contamination_check: bool = Field(
        True, description="compare with KMMLU test splits of finance-adjacent subjects")
    contamination_subjects: list[str] | None = Field(
        None, description="KMMLU subjects whose test split is compared (default: the "
        "finance-adjacent six)")
    contamination_against: list[Path] = Field(default_factory=list,
                                              description="extra benchmark files to compare")
    contamination_threshold: float = Field(0.5, gt=0.0, le=1.0,
                                           description="share of a benchmark question's shingles")
    drop_contaminated: bool = False
    length_rank_tolerance: int = Field(
        1, ge=0, le=6, description="how far a draft's key length rank may miss its slot's "
        "target and still be kept (the set is balanced afterwards)")
    length_rank_band: float = Field(
        0.05, gt=0.0, le=1.0, description="every key length rank's delivered share should be "
        "within 1/7 ± this (reported in the stats)")
    negation_share_range: tuple[float, float] = (0.1, 0.5)

    @field_validator("topic_weights")
    @classmethod
    def _market_topics_only(cls, value: dict[Topic, float]) -> dict[Topic, float]:
        if Topic.OTHER in value:
            raise ValueError("기타 is not a market topic; weights are for the 8 market areas")
        if not value or any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError("topic weights must be non-negative and not all zero")
        return value

    @field_validator("as_of")
    @classmethod
    def _month(cls, value: str | None) -> str | None:
        return None if value is None else parse_as_of(value)

    @field_validator("difficulty_mix")
    @classmethod
    def _mix_is_a_distribution(cls, value: tuple[float, float, float]
                               ) -> tuple[float, float, float]:
        if any(w < 0 for w in value) or sum(value) <= 0:
            raise ValueError("difficulty mix must be three non-negative weights, not all zero "
                             "(e.g. 30,50,20)")
        return value

    @field_validator("capabilities")
    @classmethod
    def _capabilities_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not Path(value).expanduser().is_file():
            raise ValueError(f"capability file not found: {value}")
        return None if value is None else Path(value).expanduser()

    @field_validator("contamination_against")
    @classmethod
    def _files_exist(cls, value: list[Path]) -> list[Path]:
        missing = [str(p) for p in value if not Path(p).expanduser().is_file()]
        if missing:
            raise ValueError(f"contamination file(s) not found: {', '.join(missing)}")
        return [Path(p).expanduser() for p in value]

    @field_validator("negation_share_range")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 <= low <= high <= 1:
            raise ValueError("negation share range must be 0 <= low <= high <= 1")
        return value

    def engine_config(self) -> EngineConfig:
        # --judge-model / --grade-model are shorthands; an explicit stage_models entry wins.
        shorthand = {stage: model for stage, model in
                     (("judge", self.judge_model), ("grade", self.grade_model)) if model}
        return EngineConfig(
            base_url=self.base_url,
            api_key_env=self.api_key_env,
            model=self.model,
            stage_models={**shorthand, **self.stage_models},
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            timeout_s=self.timeout_s,
            concurrency=self.concurrency,
            max_attempts=self.max_retries,
            max_invalid=self.max_invalid_replies,
            max_retry_wait_s=self.max_retry_wait,
            budget_usd=self.budget_usd,
            capabilities=self.capabilities,
            reasoning_effort=self.reasoning_effort,
            stage_reasoning_efforts=dict(self.stage_reasoning_efforts),
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


def _raw_quotas(total: int, weights: Mapping[Topic, float]) -> dict[Topic, float]:
    topics = [t for t in MARKET_TOPICS if weights.get(t, 0) > 0]
    weight_sum = sum(weights[t] for t in topics)
    return {t: total * weights[t] / weight_sum for t in topics}


def floor_quotas(total: int, weights: Mapping[Topic, float]) -> dict[Topic, int]:
    """What every topic gets whatever the relevance results: its weight's share, rounded down."""
    return {t: int(v) for t, v in _raw_quotas(total, weights).items()}


def topic_quotas(total: int, weights: Mapping[Topic, float],
                 available: Mapping[Topic, int] | None = None) -> dict[Topic, int]:
    """Split ``total`` over topics by weight with the largest-remainder method (sums exactly).

    The seats left after rounding down go first to topics with ``available`` relevant source
    questions beyond their rounded-down quota (so ``--questions 6`` over 8 topics does not
    discard the relevant sources of the topics that come last), then by largest remainder,
    then in topic order: deterministic for a given relevance result.
    """
    raw = _raw_quotas(total, weights)
    quotas = floor_quotas(total, weights)
    leftover = total - sum(quotas.values())

    def order(t: Topic) -> tuple[bool, float, int]:
        spare = available is not None and available.get(t, 0) > quotas[t]
        return (not spare, -round(raw[t] - quotas[t], 9), MARKET_TOPICS.index(t))

    for t in sorted(raw, key=order)[:leftover]:
        quotas[t] += 1
    return quotas
