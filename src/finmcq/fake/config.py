"""Settings of the fake OpenAI-compatible server."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from finmcq.fake.defects import DEFECT_KINDS, resolve_rates
from finmcq.fake.profiles import PROFILES, Profile, profile

DEFAULT_MODELS: tuple[str, ...] = ("fake-finance-1", "gpt-4o-mini", "gpt-4o")

# Faults of a 200 reply's envelope or body (set with ``faults``/``--faults``), as real servers,
# proxies and providers send them. ``broken_body`` picks one of the BODY kinds per reply.
BODY_FAULTS: tuple[str, ...] = (
    "cut_body",  # the JSON body cut off, about half the time inside a multi-byte character
    "not_json",  # plain text
    "not_utf8",  # the body in another encoding (cp949 / latin-1 bytes)
    "empty_body",  # zero bytes
    "html_body",  # an HTML error page (a proxy's), status 200, text/html
)
ENVELOPE_FAULTS: tuple[str, ...] = (
    "no_choices",  # JSON without "choices"
    "empty_choices",  # "choices": []
    "null_message",  # "message": null
    "content_filter",  # content null, finish_reason "content_filter"
    "refusal",  # content null, message.refusal set
)
FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "malformed", "length", "hang",
                                "broken_body", *BODY_FAULTS, *ENVELOPE_FAULTS)


@dataclass
class FakeConfig:
    """How the fake behaves. Every fault is drawn per request, deterministically (see server)."""

    latency_ms: float = 0.0  # added to every chat completion, errors included
    seed: int = 0  # mixed into every reply and fault draw
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    api_key: str | None = None  # when set, "Authorization: Bearer <key>" is required
    # Fault injection: probabilities per chat-completion attempt; they must sum to <= 1.
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_malformed: float = 0.0  # 200 whose content is truncated, invalid JSON
    rate_length: float = 0.0  # 200 with finish_reason "length" and truncated content
    rate_hang: float = 0.0  # sleeps hang_seconds before answering
    retry_after_s: float = 1.0  # Retry-After on 429 and 503 (also sent as retry-after-ms)
    # Any fault kind by name (FAULT_KINDS), e.g. {"broken_body": 0.025, "503": 0.01}; adds to
    # the rate_* fields above.
    faults: dict[str, float] = field(default_factory=dict)
    hang_seconds: float = 3600.0
    reject_json_schema: bool = False  # 400 for response_format json_schema; json_object works
    ignore_response_format: bool = False  # answer in prose instead of JSON
    honor_max_tokens: bool = True  # cut replies longer than max_tokens, finish_reason "length"
    # Defect mode (finmcq.fake.defects): ``defect_rate`` is split evenly over the nine kinds;
    # ``defect_rates`` sets kinds one by one (probability per eligible reply).
    defect_rate: float = 0.0
    defect_rates: dict[str, float] = field(default_factory=dict)
    # How a kind of server validates, bills and answers (fake/profiles.py); with the default
    # model list, the profile's own models are served.
    profile: str = "openai"
    # Exam mode (finmcq.fake.examinee): the answer key of an eval set; questions in the pairs'
    # layout are answered right with probability ``accuracy``, ``unparseable`` of the letter
    # answers in a non-strict form.
    answers: str | None = None
    accuracy: float = 1.0
    unparseable: float = 0.0

    def __post_init__(self) -> None:
        self.server_profile: Profile = profile(self.profile)
        if list(self.models) == list(DEFAULT_MODELS) and self.server_profile.models:
            self.models = list(self.server_profile.models)
        self.faults = dict(self.faults)
        unknown = sorted(set(self.faults) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; known: "
                             f"{', '.join(FAULT_KINDS)}")
        if not (0.0 <= self.accuracy <= 1.0 and 0.0 <= self.unparseable <= 1.0):
            raise ValueError("accuracy and unparseable must be within [0, 1]")
        rates = self.fault_rates()
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate_{name} must be within [0, 1], got {rate}")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault rates sum to {sum(rates.values()):.3f} > 1")
        if self.latency_ms < 0 or self.retry_after_s < 0 or self.hang_seconds < 0:
            raise ValueError("latency_ms, retry_after_s and hang_seconds must be >= 0")
        self.models = list(self.models)
        self.defect_rates = dict(self.defect_rates)
        self._defects = resolve_rates(self.defect_rate, self.defect_rates)

    def defect_table(self) -> dict[str, float]:
        """Every defect kind's rate (all zero unless defect mode is on)."""
        return dict(self._defects)

    @property
    def defects_on(self) -> bool:
        return any(self._defects.values())

    def fault_rates(self) -> dict[str, float]:
        """Fault kind -> probability, in the order the draw checks them."""
        rates = {kind: self.faults.get(kind, 0.0) for kind in FAULT_KINDS}
        rates["429"] += self.rate_429
        rates["500"] += self.rate_500
        rates["malformed"] += self.rate_malformed
        rates["length"] += self.rate_length
        rates["hang"] += self.rate_hang
        return rates


def add_fake_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one option per :class:`FakeConfig` field (plus --host/--port) to ``parser``.

    Shared by ``python -m finmcq.fake`` and the ``finmcq fake-llm`` command.
    """
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="MODEL")
    parser.add_argument("--api-key", default=None, help="require this bearer token")
    for kind in ("429", "500", "malformed", "length", "hang"):
        parser.add_argument(f"--rate-{kind}", type=float, default=0.0, metavar="P",
                            help=f"probability of a {kind} fault per request")
    parser.add_argument("--faults", type=parse_faults, default={}, metavar="KIND=P,...",
                        help="fault rates by kind, comma-separated; kinds: "
                        f"{', '.join(FAULT_KINDS)} (broken_body = any of "
                        f"{', '.join(BODY_FAULTS)})")
    parser.add_argument("--retry-after-s", type=float, default=1.0,
                        help="Retry-After sent with 429 and 503 faults")
    parser.add_argument("--hang-seconds", type=float, default=3600.0)
    parser.add_argument("--reject-json-schema", action="store_true")
    parser.add_argument("--ignore-response-format", action="store_true")
    parser.add_argument("--no-honor-max-tokens", dest="honor_max_tokens", action="store_false")
    parser.add_argument("--profile", default="openai", choices=list(PROFILES),
                        help="validate, bill and answer like this kind of server")
    parser.add_argument("--defects", dest="defect_rate", type=float, default=0.0, metavar="RATE",
                        help="defect mode: this share of answers is corrupted, split evenly over "
                        f"the kinds ({', '.join(DEFECT_KINDS)})")
    parser.add_argument("--defect", dest="defect_rates", action="append", default=[],
                        metavar="KIND=RATE", help="rate of one defect kind (repeatable)")
    parser.add_argument("--answers", default=None, metavar="SET",
                        help="exam mode: the answer key (any `finmcq eval --set`)")
    parser.add_argument("--accuracy", type=float, default=1.0, metavar="P",
                        help="exam mode: share of questions answered right")
    parser.add_argument("--unparseable", type=float, default=0.0, metavar="Q",
                        help="exam mode: share of letter answers in a non-strict form")


def config_from_args(args: argparse.Namespace) -> FakeConfig:
    """Build a :class:`FakeConfig` from options added by :func:`add_fake_arguments`."""
    known = {f.name for f in fields(FakeConfig)}
    values = {k: v for k, v in vars(args).items() if k in known}
    values["defect_rates"] = parse_defect_rates(values.get("defect_rates") or [])
    return FakeConfig(**values)


def parse_faults(text: str) -> dict[str, float]:
    """``"broken_body=0.05,503=0.01"`` as a dict (argparse type: ValueError on a bad pair)."""
    rates: dict[str, float] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, rate = pair.partition("=")
        if not sep or kind.strip() not in FAULT_KINDS:
            raise argparse.ArgumentTypeError(
                f"{pair!r}: expected KIND=RATE with KIND one of {', '.join(FAULT_KINDS)}")
        try:
            rates[kind.strip()] = float(rate)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{pair!r}: the rate must be a number") from None
    return rates


def parse_defect_rates(pairs: Sequence[str]) -> dict[str, float]:
    """``["also_correct=0.05", ...]`` as a dict; ValueError names a malformed pair."""
    rates: dict[str, float] = {}
    for pair in pairs:
        kind, sep, rate = pair.partition("=")
        if not sep:
            raise ValueError(f"--defect takes KIND=RATE, got {pair!r}")
        rates[kind.strip()] = float(rate)
    return rates


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``python -m finmcq.fake`` arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m finmcq.fake",
        description="Run finmcq's fake OpenAI-compatible LLM server.",
    )
    add_fake_arguments(parser)
    return parser.parse_args(argv)
