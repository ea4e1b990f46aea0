"""Verdicts: what the core concluded about one (cohort, metric), with the evidence behind it.

A verdict is explained, never a bare flag: it carries the sample sizes per arm, the estimates, the
interval on the effect, the margin, the statistic and the threshold it was compared with, so that an
operator (or an alert) can say *why* a metric failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class VerdictState(StrEnum):
    """Three states of a canary-vs-control comparison (and of a post-rollout comparison)."""

    INSUFFICIENT = "insufficient"
    NON_INFERIOR = "non_inferior"
    REGRESSED = "regressed"


class HealthState(StrEnum):
    """Rollout health from the sample-ratio check: unhealthy outranks regressed in what users see."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class DriftState(StrEnum):
    """The control's own history: a change that hits both arms is drift, not a canary regression."""

    STABLE = "stable"
    DRIFTED = "drifted"


def _clean(value: Any) -> Any:
    """JSON-safe numbers: infinities and NaN become None, floats are rounded for stable output."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Evidence:
    """Numbers behind a comparison. ``interval`` bounds the oriented effect (positive = worse)."""

    n_control: int
    n_canary: int
    control: float
    canary: float
    effect: float
    relative_effect: float
    interval: tuple[float, float]
    margin: float
    margin_relative: bool
    statistic: float
    threshold: float
    alpha: float
    method: str
    samples_to_decide: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "n_control": self.n_control,
            "n_canary": self.n_canary,
            "control": self.control,
            "canary": self.canary,
            "effect": self.effect,
            "relative_effect": self.relative_effect,
            "interval": list(self.interval),
            "margin": self.margin,
            "margin_relative": self.margin_relative,
            "statistic": self.statistic,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "method": self.method,
        }
        if self.samples_to_decide is not None:
            out["samples_to_decide"] = self.samples_to_decide
        out.update(self.extra)
        return _clean(out)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class VerdictChange:
    """A change of state of one check, stamped with the event time at which it happened."""

    kind: str  # "verdict" | "srm" | "drift" | "excess" | "phase" | "rollout"
    ts: float
    rollout_id: str
    cohort: str
    scope: dict[str, str]
    metric: str
    phase: str
    state: str
    previous: str | None
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ts": self.ts,  # event time, exact: never rounded
            "rollout_id": self.rollout_id,
            "cohort": self.cohort,
            "scope": dict(self.scope),
            "metric": self.metric,
            "phase": self.phase,
            "state": self.state,
            "previous": self.previous,
            "evidence": self.evidence,
        }
