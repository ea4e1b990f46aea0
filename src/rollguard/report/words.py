"""Numbers and verdicts in words: how a report says what a metric's state means.

Effects are oriented so that positive is worse (a drop of a quality score is a positive effect);
relative metrics (latency, tokens, cost, quality) have relative effects and margins, rates absolute
ones (shown in percentage points).

>>> fmt_value("error_rate", 0.0367)
'3.67%'
>>> fmt_effect(0.019, relative=False, metric="error_rate")
'+1.90 pp'
>>> fmt_effect(-0.039, relative=True, metric="ttft_ms.p95")
'−3.9%'
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

_MINUS = "−"


def metric_label(metric: str) -> str:
    """``latency_ms.p95`` → ``latency p95``; ``quality.eval_score.mean`` → ``eval_score (mean)``."""
    if metric.startswith("quality."):
        parts = metric.split(".")
        return f"{'.'.join(parts[1:-1])} ({parts[-1]})" if len(parts) > 2 else metric
    name, _, stat = metric.partition(".")
    name = name.removesuffix("_ms").removesuffix("_usd").replace("_", " ")
    return f"{name} {stat}" if stat else name


def _unit(metric: str) -> str:
    if metric.endswith("_rate"):
        return "%"
    if metric.startswith(("latency_ms", "ttft_ms", "tpot_ms")):
        return "ms"
    if metric.startswith("cost_usd"):
        return "$"
    if metric.startswith("tokens"):
        return "tokens"
    return ""


def fmt_value(metric: str, x: float | None) -> str:
    """A metric's own value (an estimate of one arm)."""
    if x is None or not math.isfinite(x):
        return "–"
    unit = _unit(metric)
    if unit == "%":
        return f"{x * 100:.2f}%"
    if unit == "ms":
        return f"{x:,.0f} ms" if abs(x) >= 100 else f"{x:.1f} ms"
    if unit == "$":
        return f"${x:.5f}"
    if unit == "tokens":
        return f"{x:,.0f} tokens"
    return f"{x:.3f}"


def _signed(text: str, x: float) -> str:
    return ("+" if x > 0 else _MINUS if x < 0 else "±") + text


def fmt_effect(x: float | None, *, relative: bool, metric: str) -> str:
    """An effect or margin, oriented (positive = worse): relative in %, rates in pp, else in units."""
    if x is None or not math.isfinite(x):
        return "–"
    if relative:
        return _signed(f"{abs(x) * 100:.1f}%", x)
    if _unit(metric) == "%":
        return _signed(f"{abs(x) * 100:.2f} pp", x)
    return _signed(fmt_value(metric, abs(x)), x)


def fmt_interval(lo: float | None, hi: float | None, *, relative: bool, metric: str) -> str | None:
    """``[lo, hi]`` of an effect, or None when the interval is not known yet."""
    if lo is None or hi is None:
        return None
    low, high = (fmt_effect(x, relative=relative, metric=metric) for x in (lo, hi))
    return f"[{low}, {high}]"


def fmt_time(ts: float | None) -> str:
    """Event time (epoch seconds) in UTC, to the second."""
    if ts is None or not math.isfinite(ts):
        return "–"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_clock(ts: float | None) -> str:
    if ts is None or not math.isfinite(ts):
        return "–"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%H:%M:%S")


def fmt_span(seconds: float) -> str:
    """``90`` → ``1 min 30 s``; ``7200`` → ``2 h``."""
    s = round(abs(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        m, r = divmod(s, 60)
        return f"{m} min" + (f" {r} s" if r else "")
    h, r = divmod(s, 3600)
    return f"{h} h" + (f" {r // 60} min" if r >= 60 else "")


def explain(m: Mapping[str, Any], state: str, window: str | None) -> str:
    """One metric of one cohort in words: what the state means, with the numbers behind it.

    ``m`` is a metric entry of a snapshot (:meth:`RolloutMonitor.snapshot`); ``state`` and ``window``
    come from :func:`rollguard.report.records.combined_state`.
    """
    metric = str(m["metric"])
    label = metric_label(metric)
    relative = bool(m.get("margin_relative"))
    n_c, n_t = int(m.get("n_control") or 0), int(m.get("n_canary") or 0)
    margin = fmt_effect(_num(m.get("margin")), relative=relative, metric=metric)
    lo, hi, eff = _num(m.get("effect_lo")), _num(m.get("effect_hi")), _num(m.get("effect"))
    arms = (
        f"{label} is {fmt_value(metric, _num(m.get('canary')))} on the canary and "
        f"{fmt_value(metric, _num(m.get('control')))} on the control "
        f"({n_t:,} and {n_c:,} requests)"
    )
    interval = fmt_interval(lo, hi, relative=relative, metric=metric)
    worse = "higher" if not metric.startswith("quality.") else "lower"
    drift = (
        " The control itself has drifted from its early history: a change that hits both arms is "
        "reported as drift, never as a canary regression."
        if m.get("drift") == "drifted"
        else ""
    )
    if eff is None:
        return (
            f"No comparison yet: {n_t:,} canary and {n_c:,} control requests so far; each arm needs "
            f"enough requests before any verdict.{drift}"
        )
    change = fmt_effect(eff, relative=relative, metric=metric)
    if state == "regressed" and window == "recent":
        margin_v = _num(m.get("margin"))
        beyond = lo is not None and margin_v is not None and lo > margin_v
        whole = (
            f"Over the whole rollout the difference is {change} and its always-valid interval {interval} "
            + ("now lies beyond the margin too." if beyond else "does not exclude the margin yet.")
        )
        return (
            f"Regressed. {arms}. The change detector, which compares each batch's canary with the "
            f"same batch's control, found the canary worse by more than the margin ({margin}) since "
            f"the change began; a drift of both arms would have cancelled out. {whole}{drift}"
        )
    if state == "regressed":
        return (
            f"Regressed. {arms}: {change} worse. The always-valid interval of the difference, "
            f"{interval}, lies entirely beyond the margin of {margin}: the canary is worse than "
            f"allowed ({worse} is worse).{drift}"
        )
    if state == "non_inferior":
        return (
            f"No worse than allowed. {arms}: difference {change}. Its always-valid interval "
            f"{interval} lies below the margin of {margin}, so a regression that matters is "
            f"ruled out.{drift}"
        )
    return (
        f"Not decided yet. {arms}: difference {change}. Its always-valid interval {interval} still "
        f"contains the margin of {margin}: more requests will decide.{drift}"
    )


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None
