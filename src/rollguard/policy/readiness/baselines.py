"""Baselines ready: each cohort seen in control traffic has enough control history before the canary.

Judged on the monitor's control history (:func:`rollguard.detect.control_history.control_history`), read
after every closed batch until the canary's first event and then kept as it was at that moment. The
whole rollout is always judged (a rollout whose canary starts with its first event has no baseline at
all); another cohort is judged when it has control observations. Metric families count when the whole
rollout has control observations of them (a family the traffic never reports, e.g. quality scores,
cannot be thin). A cohort's span runs from its first closed batch (or the rollout's first event) to the
canary's first event (until then: to now).

While the canary has not started the check is ``pending`` (control history may still grow); it is
``met`` as soon as every cohort has enough, and ``unmet`` when the canary started before that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from rollguard.detect.control_history import CohortHistory
from rollguard.domain.cohorts import WHOLE
from rollguard.policy.readiness.result import CheckResult, off
from rollguard.settings.readiness import ReadinessSettings

NO_CONTROL: Final = "no control traffic"


@dataclass(slots=True)
class BaselineFacts:
    """The control history read last, and the event times it is judged against."""

    first_event_at: float
    canary_at: float | None = None  # the canary's first event: from then on the history is kept as is
    history: list[CohortHistory] = field(default_factory=list)

    def to_state(self) -> dict[str, Any]:
        return {
            "first_event_at": self.first_event_at,
            "canary_at": self.canary_at,
            "history": [
                {"cohort": h.cohort, "born": h.born if math.isfinite(h.born) else None,
                 "control": [list(fc) for fc in h.control]}
                for h in self.history
            ],
        }  # fmt: skip

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> BaselineFacts:
        history = [
            CohortHistory(
                str(h["cohort"]),
                -math.inf if h["born"] is None else float(h["born"]),
                tuple((str(f), int(n)) for f, n in h["control"]),
            )
            for h in state["history"]
        ]
        canary = state["canary_at"]
        return cls(float(state["first_event_at"]), None if canary is None else float(canary), history)


def baselines_check(settings: ReadinessSettings, facts: BaselineFacts | None, now: float) -> CheckResult:
    mode = settings.baselines
    if mode == "off":
        return off("baselines", mode, "switched off (readiness.baselines: off)")
    need_span = settings.min_span_s
    families = _families(facts)
    wanted = ", ".join(f"{settings.min_samples[f]} {f}" for f in families)
    counts = f"at least {wanted} control observations" if wanted else "control traffic"
    satisfy = (
        f"{counts} and {need_span:g} s of control history in every cohort before the canary's first event"
    )
    if facts is None:
        return CheckResult("baselines", mode, "pending", "no event seen yet", satisfy)
    end = facts.canary_at if facts.canary_at is not None else now
    thin: list[dict[str, Any]] = []
    judged = 0
    for h in facts.history:
        if h.cohort != WHOLE and not any(n for _, n in h.control):
            continue  # not seen in control traffic
        judged += 1
        span = end - max(h.born, facts.first_event_at)
        short = {f: h.of(f) for f in families if h.of(f) < settings.min_samples[f]}
        if h.cohort == WHOLE and not families:
            short = {"any": 0}
        if short or span < need_span:
            entry: dict[str, Any] = {"cohort": h.cohort, "span_s": round(span, 3)}
            entry["control"] = {f: h.of(f) for f in families}
            entry["short"] = sorted(short)
            entry["lacking"] = _lacking(entry, settings, need_span)
            thin.append(entry)
    if not any(h.cohort == WHOLE for h in facts.history):
        thin.insert(
            0, {"cohort": WHOLE, "span_s": 0.0, "control": {}, "short": ["any"], "lacking": NO_CONTROL}
        )
    started = facts.canary_at is not None
    if not thin:
        when = "before the canary's first event" if started else "so far (the canary has not started)"
        evidence = f"{judged} cohort(s) with enough control history {when}"
        return CheckResult("baselines", mode, "met", evidence, "", summary="met")
    names = ", ".join(_thin_text(t, settings, need_span) for t in thin[:5])
    more = f" and {len(thin) - 5} more" if len(thin) > 5 else ""
    state = "unmet" if started else "pending"
    head = "thin baseline when the canary started" if started else "control history still short"
    return CheckResult(
        "baselines",
        mode,
        state,
        f"{head}: {names}{more}",
        satisfy,
        summary=state + ":" + ",".join(t["cohort"] + "/" + "+".join(t["short"]) for t in thin),
        details=tuple(thin),
    )


def _families(facts: BaselineFacts | None) -> list[str]:
    """Families the whole rollout has control observations of (in metric order)."""
    if facts is None:
        return []
    whole = next((h for h in facts.history if h.cohort == WHOLE), None)
    return [f for f, n in whole.control if n > 0] if whole is not None else []


def _thin_text(t: Mapping[str, Any], settings: ReadinessSettings, need_span: float) -> str:
    cohort = "whole rollout" if t["cohort"] == WHOLE else t["cohort"]
    return f"{cohort} ({t['lacking']})"


def _lacking(t: Mapping[str, Any], settings: ReadinessSettings, need_span: float) -> str:
    """What a thin cohort's control history had against what it needed, e.g. ``guardrail 40 of 100``."""
    if list(t["short"]) == ["any"]:
        return NO_CONTROL
    parts = [
        f"{f} {t['control'].get(f, 0)} of {settings.min_samples[f]}"
        if f in settings.min_samples
        else "no control"
        for f in t["short"]
    ]
    if t["span_s"] < need_span:
        parts.append(f"{max(t['span_s'], 0.0):.0f} s of {need_span:g} s")
    return "; ".join(parts)


def thin_cohorts(settings: ReadinessSettings, facts: BaselineFacts | None, now: float) -> dict[str, str]:
    """Cohort → what its control history lacked when the canary started, for the cohorts whose baseline
    was thin (empty before the canary starts, and with the check off): their verdicts compare against
    it, and their alerts say so."""
    if facts is None or facts.canary_at is None:
        return {}
    check = baselines_check(settings, facts, now)
    if check.state != "unmet":
        return {}
    return {str(t["cohort"]): str(t["lacking"]) for t in check.details}
