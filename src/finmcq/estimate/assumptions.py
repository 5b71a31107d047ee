"""What the estimate cannot read from prompts and sources, from ``data/estimate.toml``.

Token profiles per model family, and per stage the average reply length, the rejection rate
and how often it runs again (:class:`StageAssumption`); the share of invalid replies paid for;
the prompt-cache thresholds.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from finmcq.estimate.tokens import TokenProfile


@dataclass(frozen=True)
class StageAssumption:
    reply_tokens: float
    reject: float
    again: float = 0.0  # judge: share of items audited twice (after a repair); grade: regenerated


@dataclass(frozen=True)
class Assumptions:
    """Everything the estimate cannot read from prompts and sources."""

    profiles: dict[str, TokenProfile]
    default_profile: str
    stages: dict[str, StageAssumption]
    invalid_reply_rate: float = 0.0
    cache_min_tokens: int = 1024
    cache_step: int = 128

    @classmethod
    def load(cls, path: Path | None = None) -> Assumptions:
        """The bundled ``data/estimate.toml``, or ``path`` in the same layout."""
        if path is None:
            text = resources.files("finmcq.data").joinpath("estimate.toml").read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        data = tomllib.loads(text)
        tokens = data["tokens"]
        profiles = {
            name: TokenProfile(name=name, hangul=float(p["hangul"]),
                               whitespace=float(p["whitespace"]), other=float(p["other"]),
                               per_message=int(p.get("per_message", 0)),
                               per_request=int(p.get("per_request", 0)),
                               models=tuple(p.get("models", ())))
            for name, p in tokens.items() if isinstance(p, dict)
        }
        stages = {name: StageAssumption(float(s["reply_tokens"]), float(s["reject"]),
                                        float(s.get("again", 0.0)))
                  for name, s in data["stages"].items()}
        cache = data.get("prompt_cache", {})
        return cls(profiles=profiles, default_profile=str(tokens.get("default", "o200k")),
                   stages=stages, invalid_reply_rate=float(data.get("invalid_reply_rate", 0.0)),
                   cache_min_tokens=int(cache.get("min_tokens", 1024)),
                   cache_step=int(cache.get("step", 128)))

    def profile_for(self, model: str) -> TokenProfile:
        """The token profile whose model prefix is the longest match for ``model``."""
        best: tuple[int, TokenProfile] | None = None
        for profile in self.profiles.values():
            for prefix in profile.models:
                if model.startswith(prefix) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), profile)
        return best[1] if best else self.profiles[self.default_profile]
