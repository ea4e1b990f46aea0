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


UNITS = {"latency_ms": "ms", "ttft_ms": "ms", "tpot_ms": "ms", "tokens_out": "tokens", "cost_usd": "USD"}


def metric_unit(metric: str) -> str:
    """The unit a metric's values are read in: ``ms``, ``tokens``, ``USD``, or "" (scores, rates).

    >>> metric_unit("latency_ms.p95"), metric_unit("shadow.cost_usd"), metric_unit("quality.x.mean")
    ('ms', 'USD', '')
    """
    field = metric.removeprefix("shadow.").split(".")[0]
    return UNITS.get(field, "")


def _f(ev: Mapping[str, Any], key: str) -> float | None:
    """A finite number of the evidence, else None."""
    v = ev.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _value(x: float, unit: str) -> str:
    if unit == "USD":
        return f"{x:.3g} USD"
    return f"{_num(x)} {unit}" if unit else _num(x)


def _shift(x: float, unit: str) -> str:
    """A signed difference in the metric's units: ``+410 ms``, ``-0.06``."""
    return ("+" if x >= 0 else "-") + _value(abs(x), unit)


def _rel(x: float) -> str:
    return f"{x * 100:+.0f}%" if abs(x) >= 0.1 else f"{x * 100:+.1f}%"


def _fmt(x: float, rate: bool, unit: str) -> str:
    return _pct(x) if rate else _value(x, unit)


def _margin(ev: Mapping[str, Any], rate: bool, unit: str) -> str:
    margin = _f(ev, "margin")
    if margin is None:
        return ""
    if ev.get("margin_relative"):
        return f"margin {margin * 100:.3g}%"
    return f"margin {margin * 100:.3g} pp" if rate else f"margin {_value(margin, unit)}"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _window(ev: Mapping[str, Any]) -> str:
    span = _f(ev, "recent_s")
    return f"recent {_duration(span)}" if span else "recent window"


def _comparison(
    canary: float, control: float, rate: bool, unit: str, better_is_higher: bool, inline: bool = False
) -> str:
    """``canary X vs control Y (+D units, +P%)``: the effect in the metric's units and in % (``inline``:
    separated by commas, for a clause already in parentheses)."""
    worse = (control - canary) if better_is_higher else (canary - control)
    if rate:
        text, shift = f"canary {_pct(canary)} vs control {_pct(control)}", f"{worse * 100:+.2f} pp"
    else:
        text, shift = (
            f"canary {_value(canary, unit)} vs control {_value(control, unit)}",
            _shift(canary - control, unit),
        )
    parts = [shift] + ([_rel((canary - control) / abs(control))] if control else [])
    return f"{text}, {', '.join(parts)}" if inline else f"{text} ({', '.join(parts)})"


def signal_sentence(sig: Signal) -> str:
    """One clause about one signal, in the words of the check that decided: metric, cohort, the estimate
    of the window that decided (the recent canary against the recent control for a recent-window
    decision) with the effect in the metric's own units and in %, the margin, then the cumulative
    figure; semantic and shadow checks in their own units. Numbers only, never text from events."""
    where = scope_text(sig.cohort)
    if sig.kind == "srm":
        return _srm_sentence(sig, where)
    if sig.kind == "drift":
        return _drift_sentence(sig, where)
    if sig.kind == "excess":
        return _excess_sentence(sig, where)
    if sig.metric.startswith("semantic_drift"):
        return _semantic_sentence(sig, where)
    if sig.metric.startswith("shadow."):
        return _shadow_sentence(sig, where)
    return _verdict_sentence(sig, where)


def _verdict_sentence(sig: Signal, where: str) -> str:
    ev = sig.evidence
    rate, unit, better_high = sig.family == "guardrail", metric_unit(sig.metric), sig.family == "quality"
    phase = " after promotion" if sig.phase == "post_rollout" else ""
    text = f"{sig.metric} {sig.state.replace('_', '-')} in {where}{phase}"
    control, canary = _f(ev, "control"), _f(ev, "canary")
    margin = _margin(ev, rate, unit)
    recent_t, recent_c = _f(ev, "recent_canary"), _f(ev, "recent_control")
    exceed_t, exceed_c = _f(ev, "recent_exceed_canary"), _f(ev, "recent_exceed_control")
    stat, thr = _f(ev, "statistic"), _f(ev, "threshold")
    test = f"; e-detector {stat:.3g} ≥ {thr:.3g}" if stat is not None and thr is not None else ""
    if recent_t is not None and recent_c is not None:
        text += f" ({_window(ev)}: {_comparison(recent_t, recent_c, rate, unit, better_high, inline=True)}"
        text += (f"; {margin}" if margin else "") + test + ")"
        if control is not None and canary is not None:
            text += (
                f"; since the start canary {_fmt(canary, rate, unit)} vs control {_fmt(control, rate, unit)}"
            )
    elif exceed_t is not None and exceed_c is not None:
        q, bar, m = _f(ev, "quantile"), _f(ev, "threshold_value"), _f(ev, "margin")
        name = f"p{q * 100:g}" if q is not None else "tail"
        scale = f"{1 + m:g}" if m is not None else "(1 + margin)"
        text += (f" ({_window(ev)}: {_pct(exceed_t)} of the canary's responses above {scale} x the control's "
                 f"{name}{' ' + _value(bar, unit) if bar is not None else ''}, {_pct(exceed_c)} of the "
                 f"control's above it")  # fmt: skip
        text += (f"; {margin}" if margin else "") + test + ")"
        if control is not None and canary is not None:
            text += (
                f"; since the start {name} canary {_value(canary, unit)} vs control {_value(control, unit)}"
            )
    elif str(ev.get("method", "")).startswith("cusum-"):
        text += _chart_clause(ev, rate, unit, "its baseline")
    elif control is not None and canary is not None:
        text += f": {_comparison(canary, control, rate, unit, better_high)}" + (
            f", {margin}" if margin else ""
        )
    alpha = _f(ev, "alpha")
    if alpha is not None:
        text += f", confidence {confidence_text(alpha)}"
    return text


def _chart_clause(ev: Mapping[str, Any], rate: bool, unit: str, against: str) -> str:
    """A chart against a frozen reference (post-rollout, drift): its recent window against it."""
    recent, n, ref, bar = _f(ev, "recent"), _f(ev, "recent_n"), _f(ev, "reference"), _f(ev, "bar")
    stat, thr = _f(ev, "statistic"), _f(ev, "threshold")
    cusum = f"; CUSUM {stat:.3g} ≥ {thr:.3g}" if stat is not None and thr is not None else ""
    count = f" of {int(n):,} requests" if n else ""
    if ev.get("method") == "cusum-exceedance" and recent is not None and bar is not None:
        median = f" (median {_value(ref, unit)})" if ref is not None else ""
        factor = _margin_factor(ev)
        return (f": recently {_pct(recent)}{count} above {_value(bar, unit)}, {factor} x an upper "
                f"bound of {against}'s median{median}, where at most 50% means no change{cusum}")  # fmt: skip
    if recent is not None and ref is not None:
        m = _margin(ev, rate, unit)
        if rate:
            body = f"{_pct(recent)}{count} vs {against} {_pct(ref)} ({(recent - ref) * 100:+.2f} pp"
        else:
            shift = _shift(recent - ref, unit)
            body = f"{_value(recent, unit)}{count} vs {against} {_value(ref, unit)} ({shift}"
        return f": recently {body}{', ' + m if m else ''}){cusum}"
    if ref is not None:
        return f": beyond {against} {_fmt(ref, rate, unit)}{cusum}"
    return ""


def _margin_factor(ev: Mapping[str, Any]) -> str:
    m = _f(ev, "margin")
    return f"{1 + m:g}" if m is not None and ev.get("margin_relative") else "(1 + margin)"


def _drift_sentence(sig: Signal, where: str) -> str:
    if sig.state != "drifted":
        return f"baseline drift of {sig.metric} in {where} ended: the control is back within its margin"
    rate, unit = sig.family == "guardrail", metric_unit(sig.metric)
    chart = _chart_clause(sig.evidence, rate, unit, "its reference")
    return (f"baseline drift of {sig.metric} in {where}, in the control{chart}: both arms moved, "
            "so this is not a canary regression")  # fmt: skip


def _excess_sentence(sig: Signal, where: str) -> str:
    ev = sig.evidence
    rate = sig.family == "guardrail"
    e, pe = _f(ev, "effect"), _f(ev, "parent_effect")
    text = f"{sig.metric} regressed in {where} beyond the whole rollout's regression"
    if e is not None and pe is not None:
        if ev.get("margin_relative"):
            text += f": {_rel(e)} against {_rel(pe)}"
        elif rate:
            text += f": {e * 100:+.2f} pp against {pe * 100:+.2f} pp"
        else:
            unit = metric_unit(sig.metric)
            text += f": {_shift(e, unit)} against {_shift(pe, unit)}"
    m = _margin(ev, rate, metric_unit(sig.metric))
    return text + (f" (by more than the {m})" if m else "")


def _srm_sentence(sig: Signal, where: str) -> str:
    ev = sig.evidence
    p = _f(ev, "p_value")
    pv = f" (p = {p:.2g})" if p is not None else ""
    if sig.metric == "sample_ratio_requests":
        t, c, units = _f(ev, "requests_per_canary_unit"), _f(ev, "requests_per_control_unit"), _f(ev, "units")
        follow = _f(ev, "follow_up_s")
        detail = ""
        if t is not None and c is not None:
            within = f" within {_duration(follow)} of their first request" if follow else ""
            detail = f": {t:.3g} requests per canary unit vs {c:.3g} per control unit{within}"
        bits = ([f"{_num(units)} units"] if units is not None else []) + (
            [f"p = {p:.2g}"] if p is not None else []
        )
        extra = f" ({', '.join(bits)})" if bits else ""
        return (f"request-level sample ratio mismatch in {where}{detail}{extra}; canary events are lost or "
                "duplicated, verdicts are unreliable and promotion is held")  # fmt: skip
    obs, exp, units = _f(ev, "observed_canary"), _f(ev, "expected_canary"), _f(ev, "units")
    detail = ""
    if obs is not None and exp:
        detail = f": {_num(obs)} canary units observed vs {_num(exp)} expected"
        detail += f" of {_num(units)}" if units is not None else ""
    return f"sample ratio mismatch in {where}{detail}{pv}; verdicts are unreliable and promotion is held"


def _semantic_sentence(sig: Signal, where: str) -> str:
    ev = sig.evidence
    against = "the approved reference answers" if sig.metric.endswith(".reference") else "the control's"
    text = f"{sig.metric} {sig.state.replace('_', '-')} in {where}: the canary's answers differ in meaning"
    text += f" from {against}"
    dist, margin, span = _f(ev, "effect"), _f(ev, "margin"), _f(ev, "window_s")
    if dist is not None:
        text += f" by {dist:.2f} SD (Mahalanobis distance of embedding features"
        text += f", margin {margin:.2f} SD)" if margin is not None else ")"
    if ev.get("window") == "recent" and span is not None:
        text += f" over the last {_duration(span)}"
    alpha = _f(ev, "alpha")
    return text + (f", confidence {confidence_text(alpha)}" if alpha is not None else "")


def _shadow_sentence(sig: Signal, where: str) -> str:
    ev = sig.evidence
    name = sig.metric.removeprefix("shadow.")
    pairs = _f(ev, "pairs")
    on = f" on the same {int(pairs):,} requests" if pairs is not None else " on the same requests"
    text = f"shadow {sig.state.replace('_', '-')} against live in {where}"
    margin, effect = _f(ev, "margin"), _f(ev, "effect")
    if name == "embedding" and effect is not None:
        text += f": its answers differ in meaning by {effect:.2f} SD{on}"
        text += f" (margin {margin:.2f} SD)" if margin is not None else ""
    elif name in ("failure_rate", "refusal_rate") and effect is not None:
        what = "fails" if name == "failure_rate" else "refuses"
        text += f": it {what} {effect * 100:+.2f} pp more often{on}"
        text += f" (margin {margin * 100:.3g} pp)" if margin is not None else ""
    else:
        unit = metric_unit(sig.metric)
        live, shadow, rel = _f(ev, "control"), _f(ev, "canary"), _f(ev, "relative_effect")
        if live is not None and shadow is not None and rel is not None:
            text += (
                f": {name} shadow {_value(shadow, unit)} vs live {_value(live, unit)} (geometric means{on}"
            )
            text += f", {_rel(rel)}" + (f"; margin {margin * 100:.3g}%)" if margin is not None else ")")
    alpha = _f(ev, "alpha")
    return text + (f", confidence {confidence_text(alpha)}" if alpha is not None else "")


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


def primary(
    signals: list[Signal], states: Mapping[tuple[str, str, str, str], str], cohort: str | None = None
) -> Signal | None:
    """The signal that best explains an alert: the alert's own cohort first (so that the words name the
    cohort of the labels), then regressed, then the largest effect in margins."""
    if not signals:
        return None

    def rank(s: Signal) -> tuple[int, int, int, float, str]:
        em = s.effect_margins()
        return (
            0 if cohort is None or s.cohort == cohort else 1,
            0 if states.get(s.key, s.state) in ("regressed", "unhealthy", "drifted") else 1,
            0 if s.cohort != WHOLE else 1,
            -(em if em is not None else 0.0),
            "|".join(s.key),
        )

    return min(signals, key=rank)
