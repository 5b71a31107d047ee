"""Token prices and running cost: per call, per stage and in total."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

from finmcq.errors import ConfigError

log = logging.getLogger("finmcq.engine")


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M tokens."""

    input: float
    output: float
    cached_input: float | None = None
    checked: date | None = None  # when the price was last checked against the provider


STALE_AFTER = timedelta(days=183)
"""A price checked longer ago than this (six months) is warned about when it is used."""


def stale_prices(models: dict[str, ModelPrice], names: list[str],
                 today: date | None = None) -> list[str]:
    """``names`` whose price was checked more than six months before ``today``."""
    now = today or date.today()
    return [n for n in names if (p := models.get(n)) is not None and p.checked is not None
            and now - p.checked > STALE_AFTER]


@dataclass
class PriceTable:
    """Prices per model, from the bundled table plus an optional user file that overrides it."""

    models: dict[str, ModelPrice]
    batch_discount: float = 0.5
    _warned: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, override: Path | None = None) -> PriceTable:
        text = resources.files("finmcq.data").joinpath("prices.toml").read_text("utf-8")
        table = cls._parse(tomllib.loads(text), "the bundled price table")
        if override is not None:
            try:
                data = tomllib.loads(Path(override).read_text("utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(
                    f"Cannot read the price file {override}: {exc}. It must be TOML with "
                    '[models."NAME"] tables holding input/output USD per 1M tokens.'
                ) from None
            user = cls._parse(data, str(override))
            table.models.update(user.models)
            if "batch_discount" in data:
                table.batch_discount = user.batch_discount
        return table

    @staticmethod
    def _parse(data: dict[str, object], where: str) -> PriceTable:
        models: dict[str, ModelPrice] = {}
        raw_models = data.get("models", {})
        if not isinstance(raw_models, dict):
            raise ConfigError(f"{where}: [models] must be a table of model names.")
        for name, entry in raw_models.items():
            try:
                models[name] = ModelPrice(
                    input=float(entry["input"]),
                    output=float(entry["output"]),
                    cached_input=(
                        float(entry["cached_input"]) if "cached_input" in entry else None
                    ),
                    checked=_checked(entry.get("checked")),
                )
            except (KeyError, TypeError, ValueError):
                raise ConfigError(
                    f'{where}: model "{name}" needs numeric "input" and "output" '
                    '(USD per 1M tokens); "checked", if given, is a date (2026-11-30).'
                ) from None
        discount = data.get("batch_discount", 0.5)
        if not isinstance(discount, int | float):
            raise ConfigError(f"{where}: batch_discount must be a number between 0 and 1.")
        return PriceTable(models=models, batch_discount=float(discount))

    def price_of(self, model: str) -> ModelPrice | None:
        return self.models.get(model)

    def warn_if_stale(self, models: list[str], today: date | None = None) -> list[str]:
        """Log a warning for every price in ``models`` checked more than six months ago."""
        stale = stale_prices(self.models, sorted(set(models)), today)
        for name in stale:
            checked = self.models[name].checked
            log.warning("The price of %s was last checked on %s, more than six months ago: "
                        "costs and estimates may be off. Check the provider's pricing page and "
                        "update it with --prices FILE.", name, checked)
        return stale

    def cost(
        self,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        *,
        batch: bool = False,
    ) -> float:
        """USD for one call. Unknown models cost 0 and are warned about once."""
        price = self.models.get(model)
        if price is None:
            if model not in self._warned:
                self._warned.add(model)
                log.warning(
                    "No price for model %r: its cost is counted as $0. Add it to a price file "
                    "(--prices FILE) to see real costs.",
                    model,
                )
            return 0.0
        cached_rate = price.cached_input if price.cached_input is not None else price.input
        uncached = max(prompt_tokens - cached_tokens, 0)
        usd = (uncached * price.input + cached_tokens * cached_rate
               + completion_tokens * price.output) / 1_000_000
        if batch:
            usd *= 1 - self.batch_discount
        return usd


def _checked(value: object) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))  # ValueError: reported as a bad entry
