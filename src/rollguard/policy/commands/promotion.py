"""Promotion readiness and explicit trade-offs (shared by the online ramp and the offline gate).

A rollout may take its next ramp step when every guardrail and quality check of every cohort is
non-inferior — decided by the core with enough evidence, not "no alarm yet" — or is excused by a
trade-off written in config, e.g. "a quality drop of at most 2% is acceptable when cost certainly
falls by at least 20%". Both sides of a trade-off are read from confidence bounds, not point estimates:
the worse metric's *upper* bound must be within its allowance and the better metric's upper bound must
show the saving.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from rollguard.domain.cohorts import WHOLE
from rollguard.policy.signals import Signal, SignalTable
from rollguard.settings.promotion import Tradeoff


def tradeoff_allows(
    tradeoff: Tradeoff, worse_rel: tuple[float, float] | None, better_rel: tuple[float, float] | None
) -> bool:
    """Whether a metric's relative effect bounds (positive = worse) are excused by the other's saving.

    >>> t = Tradeoff("quality.*", 0.02, "cost_usd.mean", 0.2)
    >>> tradeoff_allows(t, (0.0, 0.015), (-0.3, -0.25)), tradeoff_allows(t, (0.0, 0.03), (-0.3, -0.25))
    (True, False)
    """
    if worse_rel is None or better_rel is None:
        return False
    return worse_rel[1] <= tradeoff.max_relative_drop and better_rel[1] <= -tradeoff.min_relative_saving


@dataclass(slots=True)
class Readiness:
    ready: bool
    blocking: list[dict[str, Any]] = field(default_factory=list)
    tradeoffs: list[dict[str, Any]] = field(default_factory=list)
    checks: int = 0


def promotion_readiness(
    table: SignalTable,
    now: float,
    families: tuple[str, ...],
    cohorts: str,
    tradeoffs: tuple[Tradeoff, ...],
    metrics: tuple[str, ...] = ("*",),
) -> Readiness:
    """Every required check non-inferior (or excused); at least the whole rollout's guardrails decided.

    Required: verdicts of the ``families`` whose metric name matches a ``metrics`` glob, of every cohort
    (``cohorts: all``) or of the whole rollout only (``whole``)."""
    sigs = [
        s
        for s in table.live()
        if s.kind == "verdict"
        and s.family in families
        and any(fnmatchcase(s.metric, m) for m in metrics)
        and (cohorts == "all" or s.cohort == WHOLE)
    ]
    out = Readiness(ready=True)
    if not any(s.cohort == WHOLE and s.family == "guardrail" for s in sigs) and "guardrail" in families:
        out.ready = False
        out.blocking.append({"cohort": WHOLE, "metric": "guardrail", "state": "no evidence yet"})
        return out
    by_check = {(s.cohort, s.metric, s.window): s for s in table.live() if s.kind == "verdict"}
    for sig in sorted(sigs, key=lambda s: s.key):
        out.checks += 1
        state = table.state_of(sig, now)
        if state == "non_inferior":
            continue
        excuse = _excuse(sig, by_check, tradeoffs)
        if excuse is not None:
            out.tradeoffs.append(excuse)
            continue
        out.ready = False
        out.blocking.append(
            {"cohort": sig.cohort, "metric": sig.metric, "window": sig.window, "state": state}
        )
    return out


def _excuse(
    sig: Signal, by_check: dict[tuple[str, str, str], Signal], tradeoffs: tuple[Tradeoff, ...]
) -> dict[str, Any] | None:
    for t in tradeoffs:
        if not fnmatchcase(sig.metric, t.metric):
            continue
        other = by_check.get((sig.cohort, t.when, sig.window))
        if other is None:
            continue
        if tradeoff_allows(t, sig.relative_bounds(), other.relative_bounds()):
            return {
                "cohort": sig.cohort,
                "metric": sig.metric,
                "accepted_because": t.when,
                "max_relative_drop": t.max_relative_drop,
                "min_relative_saving": t.min_relative_saving,
            }
    return None
