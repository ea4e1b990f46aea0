"""Signals: the latest state of every check of a rollout, built from the core's verdict changes.

The core emits a record only when a check changes state, so the policy keeps the last record of each
(kind, cohort, metric, window) and reasons over that table. A phase change drops the previous phase's
verdicts (the core starts them afresh); a rollout reset (new canary variant) drops everything.

Evidence is copied through :func:`compact_evidence`: numbers and a few known short labels only, so an
alert or a command can never carry prompt or response text, whatever a future detector puts there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from rollguard.domain.cohorts import WHOLE, parse_cohort_key
from rollguard.domain.metrics import BUILTIN_METRICS

CUMULATIVE: Final = "cumulative"
# String-valued evidence that may travel in alerts: labels chosen by rollguard, never user text.
_LABEL_KEYS: Final = frozenset({"method", "window", "arm", "direction"})
_LABEL: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}")  # a token, never a sentence
_FAMILY: Final = {m.name: m.family for m in BUILTIN_METRICS}


def metric_family(metric: str) -> str | None:
    """The family of a metric name (guardrail, latency, quality, cost), None when unknown.

    >>> metric_family("error_rate"), metric_family("quality.eval_score.mean"), metric_family("x")
    ('guardrail', 'quality', None)
    """
    if metric in _FAMILY:
        return _FAMILY[metric]
    if metric.startswith("quality."):
        return "quality"
    return None


def compact_evidence(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers (and short lists of numbers) plus known labels; everything else is dropped.

    >>> compact_evidence({"effect": 0.02, "method": "cusum", "response_text": "hi", "interval": [0, 1]})
    {'effect': 0.02, 'interval': [0, 1], 'method': 'cusum'}
    """
    out: dict[str, Any] = {}
    for key in sorted(evidence):
        value = evidence[key]
        if value is None or isinstance(value, bool):
            out[key] = value
        elif isinstance(value, int | float):
            out[key] = value if math.isfinite(value) else None
        elif (
            isinstance(value, list | tuple)
            and len(value) <= 4
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            out[key] = [v if math.isfinite(v) else None for v in value]
        elif isinstance(value, str) and key in _LABEL_KEYS and _LABEL.fullmatch(value):
            out[key] = value
        elif (
            key == "changed_parts"  # the variant parts a canary changes: part names are tokens
            and isinstance(value, list | tuple)
            and len(value) <= 16
            and all(isinstance(v, str) and _LABEL.fullmatch(v) for v in value)
        ):
            out[key] = list(value)
    return out


def _num(evidence: Mapping[str, Any], key: str) -> float | None:
    v = evidence.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


@dataclass(slots=True)
class Signal:
    """The latest state of one check."""

    kind: str
    cohort: str
    metric: str
    window: str
    state: str
    ts: float
    phase: str
    evidence: dict[str, Any]
    scope: dict[str, str] = field(default_factory=dict)
    family: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.cohort, self.metric, self.window)

    # ---- evidence read-outs (None when the evidence does not say)
    def recent(self) -> tuple[float, float] | None:
        """(canary, control) estimates of the recent window that decided, when the check reports them."""
        ev = self.evidence
        canary, control = _num(ev, "recent_canary"), _num(ev, "recent_control")
        return None if canary is None or control is None else (canary, control)

    def effect(self) -> float | None:
        """canary − control oriented so that positive is worse: of the window that decided.

        A recent-window decision reports its window's estimates (the cumulative means dilute a change
        that started mid-canary, so they are not the effect); a cumulative one its own effect, or the
        difference of its arm means."""
        ev = self.evidence
        recent = self.recent()
        if recent is not None:
            t, c = recent
            return c - t if self.family == "quality" else t - c
        e = _num(ev, "effect")
        if e is not None:
            return e
        control, canary = _num(ev, "control"), _num(ev, "canary")
        if control is None or canary is None or self.window != CUMULATIVE:
            return None
        return control - canary if self.family == "quality" else canary - control

    def relative_effect(self) -> float | None:
        recent = self.recent()
        if recent is not None:
            e = self.effect()
            return None if e is None or not recent[1] else e / abs(recent[1])
        r = _num(self.evidence, "relative_effect")
        if r is not None or self.window != CUMULATIVE:
            return r
        e, control = self.effect(), _num(self.evidence, "control")
        return None if e is None or not control else e / abs(control)

    def effect_margins(self) -> float | None:
        """The effect in margins: 1.0 means "exactly one margin worse than control"."""
        margin = _num(self.evidence, "margin")
        if not margin:
            return None
        effect = self.relative_effect() if self.evidence.get("margin_relative") else self.effect()
        return None if effect is None else effect / margin

    def effect_bounds(self) -> tuple[float, float] | None:
        """Confidence bounds on the oriented effect (positive = worse) in the metric's units.

        The core's interval bounds the contrast "effect minus margin" (for a relative margin r, minus
        r·control), so the margin is added back."""
        ev = self.evidence
        interval = ev.get("interval")
        margin = _num(ev, "margin")
        if not isinstance(interval, list) or len(interval) != 2 or margin is None:
            return None
        lo, hi = interval
        if not isinstance(lo, int | float) or not isinstance(hi, int | float):
            return None
        shift = margin * abs(_num(ev, "control") or 0.0) if ev.get("margin_relative") else margin
        return float(lo) + shift, float(hi) + shift

    def relative_bounds(self) -> tuple[float, float] | None:
        """:meth:`effect_bounds` as shares of the control's value."""
        bounds = self.effect_bounds()
        control = _num(self.evidence, "control")
        if bounds is None or not control:
            return None
        return bounds[0] / abs(control), bounds[1] / abs(control)

    def confidence(self) -> float | None:
        alpha = _num(self.evidence, "alpha")
        return None if alpha is None else 1.0 - alpha

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "cohort": self.cohort,
            "metric": self.metric,
            "window": self.window,
            "state": self.state,
            "ts": self.ts,
            "phase": self.phase,
            "evidence": self.evidence,
        }

    @classmethod
    def from_state(cls, s: Mapping[str, Any]) -> Signal:
        cohort = str(s["cohort"])
        return cls(
            str(s["kind"]),
            cohort,
            str(s["metric"]),
            str(s["window"]),
            str(s["state"]),
            float(s["ts"]),
            str(s["phase"]),
            dict(s["evidence"]),
            parse_cohort_key(cohort),
            metric_family(str(s["metric"])),
        )


def change_fields(change: Any) -> dict[str, Any]:
    """A verdict change as a dict, from a :class:`~rollguard.domain.verdicts.VerdictChange` or its
    ``to_dict()``.

    From the object, ``ts`` is taken unrounded (``to_dict`` rounds numbers for display)."""
    if isinstance(change, Mapping):
        return dict(change)
    out: dict[str, Any] = change.to_dict()
    out["ts"] = float(change.ts)
    return out


@dataclass(slots=True)
class VerdictOverride:
    """An operator's override of a verdict (e.g. a known false positive), until an event time."""

    cohort: str
    metric: str
    state: str
    by: str
    until: float | None

    def to_state(self) -> dict[str, Any]:
        return {
            "cohort": self.cohort,
            "metric": self.metric,
            "state": self.state,
            "by": self.by,
            "until": self.until,
        }


class SignalTable:
    """Every check of one rollout at its latest state, plus operator overrides. Bounded by the core's
    cohort budget (cohorts × metrics × windows) and by ``max_signals``."""

    def __init__(self, rollout_id: str, max_signals: int = 8192) -> None:
        self.rollout_id = rollout_id
        self.signals: dict[tuple[str, str, str, str], Signal] = {}
        self.overrides: dict[tuple[str, str], VerdictOverride] = {}
        self.phase = "canary"
        self.generation = 0
        self.variant: str | None = None
        self.last_ts = -math.inf
        self.max_signals = max_signals
        # The control's last drift episode per (cohort, metric): [start, end or None] in event time.
        self.drift_episodes: dict[tuple[str, str], list[float | None]] = {}

    def apply(self, change: Mapping[str, Any]) -> str | None:
        """Fold one change in; returns "reset" or "phase" when the table was cleared."""
        kind = str(change.get("kind", "verdict"))
        ts = float(change.get("ts") or 0.0)
        self.last_ts = max(self.last_ts, ts)
        evidence = change.get("evidence") or {}
        if kind == "rollout":
            self.signals.clear()
            self.overrides.clear()
            self.drift_episodes.clear()
            self.generation += 1
            to = evidence.get("to") if isinstance(evidence, Mapping) else None
            self.variant = to if isinstance(to, str) and _LABEL.fullmatch(to) else None
            self.phase = str(change.get("phase") or "canary")
            return "reset"
        if kind == "phase":
            self.phase = str(change.get("state") or change.get("phase") or self.phase)
            self.signals = {k: s for k, s in self.signals.items() if s.phase == self.phase}
            return "phase"
        cohort = str(change.get("cohort") or WHOLE)
        metric = str(change.get("metric") or "")
        ev = compact_evidence(evidence if isinstance(evidence, Mapping) else {})
        window = str(ev.get("window") or CUMULATIVE)
        scope_raw = change.get("scope")
        scope = (
            {str(k): str(v) for k, v in scope_raw.items()}
            if isinstance(scope_raw, Mapping)
            else parse_cohort_key(cohort)
        )
        sig = Signal(
            kind,
            cohort,
            metric,
            window,
            str(change.get("state")),
            ts,
            str(change.get("phase") or self.phase),
            ev,
            scope,
            metric_family(metric),
        )
        self.signals[sig.key] = sig
        if kind == "drift":
            episode = self.drift_episodes.get((cohort, metric))
            if sig.state == "drifted":
                self.drift_episodes[(cohort, metric)] = [ts, None]
            elif episode is not None and episode[1] is None:
                episode[1] = ts
        if len(self.signals) > self.max_signals:
            self._trim()
        return None

    def _trim(self) -> None:
        """Drop the oldest undecided checks first: they carry the least information."""
        order = sorted(self.signals.values(), key=lambda s: (s.state != "insufficient", s.ts, s.key))
        for s in order[: len(self.signals) - self.max_signals]:
            del self.signals[s.key]

    def state_of(self, sig: Signal, now: float) -> str:
        """The signal's state after any unexpired operator override."""
        ov = self.overrides.get((sig.cohort, sig.metric))
        if ov is not None and (ov.until is None or now < ov.until):
            return ov.state
        return sig.state

    def expire_overrides(self, now: float) -> bool:
        gone = [k for k, o in self.overrides.items() if o.until is not None and now >= o.until]
        for k in gone:
            del self.overrides[k]
        return bool(gone)

    def confounded(self, sig: Signal, guard_s: float) -> bool:
        """Whether the control drifted on the same metric, in a related scope, around ``sig``'s onset.

        A regression that starts while both arms move (an upstream outage) is not the canary's doing:
        it may alert, but it must not roll anything back."""
        if guard_s <= 0:
            return False
        for (cohort, metric), (start, end) in self.drift_episodes.items():
            if metric != sig.metric or start is None:
                continue
            scope = parse_cohort_key(cohort)
            related = all(sig.scope.get(k) == v for k, v in scope.items()) or all(
                scope.get(k) == v for k, v in sig.scope.items()
            )
            if related and start <= sig.ts + guard_s and (end is None or end >= sig.ts - guard_s):
                return True
        return False

    def live(self) -> Iterable[Signal]:
        return self.signals.values()

    def healthy(self, now: float) -> bool:
        """False once the sample-ratio check has failed (the split is not what it should be)."""
        return not any(
            s.kind == "srm" and self.state_of(s, now) == "unhealthy" for s in self.signals.values()
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "rollout_id": self.rollout_id,
            "phase": self.phase,
            "generation": self.generation,
            "variant": self.variant,
            "last_ts": self.last_ts if math.isfinite(self.last_ts) else None,
            "signals": [s.to_state() for s in self.signals.values()],
            "overrides": [o.to_state() for o in self.overrides.values()],
            "drift_episodes": [[c, m, *ep] for (c, m), ep in sorted(self.drift_episodes.items())],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> SignalTable:
        t = cls(str(state["rollout_id"]))
        t.phase = str(state["phase"])
        t.generation = int(state["generation"])
        t.variant = state.get("variant")
        t.last_ts = -math.inf if state.get("last_ts") is None else float(state["last_ts"])
        for raw in state["signals"]:
            s = Signal.from_state(raw)
            t.signals[s.key] = s
        for raw in state["overrides"]:
            o = VerdictOverride(
                str(raw["cohort"]),
                str(raw["metric"]),
                str(raw["state"]),
                str(raw["by"]),
                None if raw["until"] is None else float(raw["until"]),
            )
            t.overrides[(o.cohort, o.metric)] = o
        for c, m, start, end in state.get("drift_episodes", []):
            t.drift_episodes[(str(c), str(m))] = [start, end]
        return t
