"""Alert v1 records: identity, labels, annotations and a sentence a person can act on.

Shaped for the consumers that already exist (see ``topics/schemas/alert.v1.json``): Alertmanager reads
``labels`` (identity and routing keys), ``annotations`` (human text), ``starts_at``/``ends_at`` and
``generator_url``; a PagerDuty Events v2 bridge finds a ready ``pagerduty`` object (``dedup_key`` =
the fingerprint). The fingerprint hashes the identity labels only — rule, rollout, cohort — so a firing
keeps its identity when its signals, severity or audience change.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import orjson

from rollguard.domain.cohorts import WHOLE
from rollguard.policy.signals import Signal

STATE_TO_VERDICT = {
    "regressed": "regressed",
    "non_inferior": "non_inferior",
    "insufficient": "inconclusive",
    "unhealthy": "srm",
    "healthy": "srm",
    "drifted": "drift",
    "stable": "drift",
}
PAGERDUTY_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def digest(*parts: object, n: int = 16) -> str:
    """A short stable hash of JSON-serialisable parts (ids, fingerprints)."""
    return hashlib.sha256(orjson.dumps(list(parts), option=orjson.OPT_SORT_KEYS)).hexdigest()[:n]


def alertname(rule: str) -> str:
    """``guardrail_regression`` → ``RollguardGuardrailRegression``.

    >>> alertname("guardrail_regression")
    'RollguardGuardrailRegression'
    """
    return "Rollguard" + "".join(p[:1].upper() + p[1:] for p in rule.replace("-", "_").split("_") if p)


def label_name(dim: str) -> str:
    """A segment dimension as an Alertmanager label name (``[a-zA-Z_][a-zA-Z0-9_]*``)."""
    clean = "".join(ch if ch.isascii() and (ch.isalnum() or ch == "_") else "_" for ch in dim)
    return f"scope_{clean}"


def fingerprint(rule: str, rollout_id: str, cohort: str) -> str:
    return digest(alertname(rule), rollout_id, cohort)


def scope_text(cohort: str) -> str:
    return "the whole rollout" if cohort == WHOLE else cohort


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%" if abs(x) < 0.1 else f"{x * 100:.1f}%"


def _num(x: float) -> str:
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def confidence_text(alpha: float) -> str:
    """1 − α with enough digits not to read 100%.

    >>> confidence_text(0.01), confidence_text(4.7e-06)
    ('99%', '99.9995%')
    """
    if not 0 < alpha < 1:
        return "n/a"
    digits = max(0, math.ceil(-math.log10(alpha)) - 2)
    return f"{(1 - alpha) * 100:.{digits}f}%"


def signal_sentence(sig: Signal) -> str:
    """One clause about one signal: metric, cohort, effect and confidence — numbers only."""
    ev = sig.evidence
    where = scope_text(sig.cohort)
    if sig.kind == "srm":
        obs, exp = ev.get("observed_canary"), ev.get("expected_canary")
        units = ev.get("units")
        p = ev.get("p_value")
        detail = ""
        if isinstance(obs, int | float) and isinstance(exp, int | float) and exp > 0:
            detail = f": {_num(obs)} canary units observed vs {_num(exp)} expected"
            if isinstance(units, int | float):
                detail += f" of {_num(units)}"
        if isinstance(p, int | float):
            detail += f" (p = {p:.2g})"
        return f"sample ratio mismatch in {where}{detail}; verdicts are unreliable and promotion is held"
    if sig.kind == "drift":
        return (
            f"baseline drift of {sig.metric} in {where} ({sig.state}): the control moved too, "
            "so this is not a canary regression"
        )
    control, canary = ev.get("control"), ev.get("canary")
    window = ""
    if sig.window != "cumulative":
        stat, thr = ev.get("statistic"), ev.get("threshold")
        test = (
            f": {ev.get('method', 'test')} {stat:.3g} ≥ {thr:.3g}"
            if isinstance(stat, int | float) and isinstance(thr, int | float)
            else ""
        )
        window = f" ({sig.window} window{test})"
    phase = " after promotion" if sig.phase == "post_rollout" else ""
    text = f"{sig.metric} {sig.state.replace('_', '-')} in {where}{phase}{window}"
    rate = sig.family == "guardrail"
    if isinstance(control, int | float) and isinstance(canary, int | float):
        fmt = _pct if rate else _num
        overall = "" if sig.window == "cumulative" else " overall"
        text += f":{overall} canary {fmt(canary)} vs control {fmt(control)}"
        effect, rel = sig.effect(), sig.relative_effect()
        margin = ev.get("margin")
        parts = []
        if rate and effect is not None:
            parts.append(f"{effect * 100:+.2f} pp worse")
        elif rel is not None:
            parts.append(f"{rel * 100:+.1f}% worse")
        if isinstance(margin, int | float):
            parts.append(f"margin {margin * 100:.3g}{'%' if ev.get('margin_relative') else ' pp'}")
        if parts:
            text += f" ({', '.join(parts)})"
    elif isinstance(ev.get("reference"), int | float):
        text += f": beyond its baseline {_num(float(ev['reference']))}"
        stat, thr = ev.get("statistic"), ev.get("threshold")
        if isinstance(stat, int | float) and isinstance(thr, int | float):
            text += f" (CUSUM {stat:.3g} ≥ {thr:.3g})"
    alpha = ev.get("alpha")
    if isinstance(alpha, int | float):
        text += f", confidence {confidence_text(float(alpha))}"
    return text


def signal_record(sig: Signal, state: str) -> dict[str, Any]:
    """A signal as the schema's ``signals`` item (plus the raw state, cohort and event time)."""
    ev = sig.evidence
    out: dict[str, Any] = {
        "metric": sig.metric or ("sample_ratio" if sig.kind == "srm" else sig.kind),
        "verdict": STATE_TO_VERDICT.get(state, "inconclusive"),
        "state": state,
        "kind": sig.kind,
        "cohort": sig.cohort,
        "scope": dict(sig.scope),
        "window": sig.window,
        "phase": sig.phase,
        "ts": sig.ts,
    }
    for key in ("method", "margin", "control", "canary", "p_value"):
        v = ev.get(key)
        if v is not None:
            out[key] = v
    effect, rel = sig.effect(), sig.relative_effect()
    if effect is not None:
        out["effect"] = effect
    if rel is not None:
        out["relative_effect"] = rel
    for key in ("n_control", "n_canary"):
        v = ev.get(key)
        if isinstance(v, int | float):
            out[key] = int(v)
    bounds = sig.effect_bounds()
    if bounds is not None and all(math.isfinite(b) for b in bounds):
        out["ci_low"], out["ci_high"] = bounds
    conf = sig.confidence()
    if conf is not None and 0 <= conf <= 1:
        out["confidence"] = conf
    if isinstance(out.get("p_value"), int | float) and not 0 <= out["p_value"] <= 1:
        del out["p_value"]
    return out


def primary(signals: list[Signal], states: Mapping[tuple[str, str, str, str], str]) -> Signal | None:
    """The signal that best explains an alert: regressed first, the largest effect in margins."""
    if not signals:
        return None

    def rank(s: Signal) -> tuple[int, int, float, str]:
        em = s.effect_margins()
        return (
            0 if states.get(s.key, s.state) in ("regressed", "unhealthy", "drifted") else 1,
            0 if s.cohort != WHOLE else 1,
            -(em if em is not None else 0.0),
            "|".join(s.key),
        )

    return min(signals, key=rank)
