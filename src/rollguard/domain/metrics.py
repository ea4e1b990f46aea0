"""What rollguard measures per cohort, which direction is worse, and how much worse matters.

Every metric has a *margin* of practical significance: a canary is "regressed" only when the
evidence excludes "worse than control by no more than the margin", so statistical certainty about a
trivial effect never pages anyone. Defaults are chosen for an LLM service with no config at all:

===========================  ==========  ============  =====================================
metric                       kind        margin        why this default
===========================  ==========  ============  =====================================
error_rate                   rate        +0.5 pp       an SLO-sized change at 99-99.9% success
timeout_rate                 rate        +0.5 pp       as errors: the user gets nothing
refusal_rate                 rate        +1 pp         refusals vary more between prompts
format_invalid_rate          rate        +1 pp         structured-output failures
latency_ms.mean / .p95       mean/tail   +10 %         the usual latency SLO slack
latency_ms.p99               tail        +15 %         p99 is noisier: a wider margin
ttft_ms.mean / .p95          mean/tail   +10 %         time to first token (streaming UX)
tpot_ms.mean / .p95          mean/tail   +10 %         decode speed, (latency - ttft) / tokens_out
tokens_out.mean              mean        +15 %         verbosity drives cost and latency
cost_usd.mean                mean        +10 %         spend per request
quality.<key>.mean           mean        -3 %          any score under ``quality``, higher is better
===========================  ==========  ============  =====================================

Continuous metrics and quality scores are measured on ``status == "ok"`` responses only: failed
requests return early and would make a broken canary look fast and cheap. Rates are shares of all
live requests (format-invalid: of the requests that report ``format_valid``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal, get_args

MetricKind = Literal["rate", "mean", "quantile"]
Family = Literal["guardrail", "latency", "quality", "cost"]
FAMILIES: Final[tuple[Family, ...]] = get_args(Family)

# Columns of the per-batch event table that metrics read (see rollguard.detect.batch_columns).
CONTINUOUS_FIELDS: Final = ("latency_ms", "ttft_ms", "tpot_ms", "tokens_out", "cost_usd")
TAIL_FIELDS: Final = ("latency_ms", "ttft_ms", "tpot_ms")
RATE_FIELDS: Final = ("error", "timeout", "refusal", "format_invalid")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One monitored quantity.

    ``margin`` is relative (a share of the control's value) when ``relative`` is true, else in the
    metric's own units. ``higher_is_worse`` orients every comparison so that "bad" is positive.
    """

    name: str
    kind: MetricKind
    field: str
    family: Family
    margin: float
    relative: bool
    higher_is_worse: bool = True
    quantile: float | None = None
    enabled: bool = True

    def with_overrides(self, **changes: object) -> MetricSpec:
        return replace(self, **changes)  # type: ignore[arg-type]


def _rate(name: str, field: str, margin: float) -> MetricSpec:
    return MetricSpec(name, "rate", field, "guardrail", margin, relative=False)


def _mean(name: str, field: str, family: Family, margin: float) -> MetricSpec:
    return MetricSpec(name, "mean", field, family, margin, relative=True)


def _tail(name: str, field: str, q: float, margin: float) -> MetricSpec:
    return MetricSpec(name, "quantile", field, "latency", margin, relative=True, quantile=q)


BUILTIN_METRICS: Final[tuple[MetricSpec, ...]] = (
    _rate("error_rate", "error", 0.005),
    _rate("timeout_rate", "timeout", 0.005),
    _rate("refusal_rate", "refusal", 0.01),
    _rate("format_invalid_rate", "format_invalid", 0.01),
    _mean("latency_ms.mean", "latency_ms", "latency", 0.10),
    _tail("latency_ms.p95", "latency_ms", 0.95, 0.10),
    _tail("latency_ms.p99", "latency_ms", 0.99, 0.15),
    _mean("ttft_ms.mean", "ttft_ms", "latency", 0.10),
    _tail("ttft_ms.p95", "ttft_ms", 0.95, 0.10),
    _mean("tpot_ms.mean", "tpot_ms", "latency", 0.10),
    _tail("tpot_ms.p95", "tpot_ms", 0.95, 0.10),
    _mean("tokens_out.mean", "tokens_out", "cost", 0.15),
    _mean("cost_usd.mean", "cost_usd", "cost", 0.10),
)

QUALITY_DEFAULT_MARGIN: Final = 0.03


def quality_metric(key: str, margin: float = QUALITY_DEFAULT_MARGIN, relative: bool = True) -> MetricSpec:
    """The spec for a score under the event's ``quality`` object (higher is better)."""
    return MetricSpec(
        f"quality.{key}.mean", "mean", f"quality.{key}", "quality", margin, relative, higher_is_worse=False
    )
