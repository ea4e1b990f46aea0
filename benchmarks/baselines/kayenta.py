"""A Kayenta-style canary judge (the field's reference point, not a good detector).

Like Spinnaker Kayenta's default judge: per cohort and metric, each arm's events are aggregated per
interval (one minute: mean latency, p95 latency, error rate, mean eval score, ...); at the end of
every interval a two-sided Mann-Whitney U test compares the canary's per-interval aggregates with the
control's over all intervals so far, at a fixed 98% confidence, with no correction for the repeated
looks or for the many cohorts x metrics. A metric "fails" when the test is significant and the canary
is worse (higher for costs and failures, lower for quality). The judge reports the first failure time
per (cohort, metric); A/A streams show how often that happens by chance.

Differences from Kayenta kept on purpose: no effect-size thresholds, no score aggregation across
metrics (a single failing metric counts), NaN intervals removed per arm (Kayenta's default
``nanStrategy: remove``). Only intervals in which the control is present are analysed (the canary
phase); shadow events are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .columns import F64, EventColumns, cohort_key
from .observations import observe


@dataclass(frozen=True)
class KayentaMetric:
    observation: str  # see observations.OBSERVATIONS
    aggregate: str  # "mean" or "p95" (any "pNN")
    higher_is_worse: bool = True


DEFAULT_METRICS: dict[str, KayentaMetric] = {
    "error_rate": KayentaMetric("error", "mean"),
    "timeout_rate": KayentaMetric("timeout", "mean"),
    "refusal_rate": KayentaMetric("refusal", "mean"),
    "format_invalid_rate": KayentaMetric("format_invalid", "mean"),
    "latency_mean": KayentaMetric("latency", "mean"),
    "latency_p95": KayentaMetric("latency", "p95"),
    "ttft_mean": KayentaMetric("ttft", "mean"),
    "tokens_out_mean": KayentaMetric("tokens_out", "mean"),
    "cost_mean": KayentaMetric("cost", "mean"),
    "eval_score_mean": KayentaMetric("eval_score", "mean", higher_is_worse=False),
    "thumbs_mean": KayentaMetric("thumbs", "mean", higher_is_worse=False),
}


@dataclass(frozen=True)
class MannWhitney:
    u: float  # U statistic of the first sample (number of pairs x > y, ties counting 1/2)
    z: float  # standardised, signed (positive: the first sample tends to be larger)
    p: float  # two-sided p-value (normal approximation with tie correction)


def mann_whitney_u(x: Iterable[float], y: Iterable[float], continuity: bool = True) -> MannWhitney:
    """Two-sided Mann-Whitney U test, normal approximation with tie correction (and, by default, a
    continuity correction of 1/2, as R's ``wilcox.test(exact=FALSE)`` and scipy's default)."""
    a = [float(v) for v in x]
    b = [float(v) for v in y]
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    # rank the pooled sample; a group of ties shares the average of the ranks it occupies (1-based)
    pooled = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    n = n1 + n2
    r1 = 0.0
    ties = 0.0
    i = 0
    while i < n:
        j = i
        while j + 1 < n and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        t = j - i + 1
        if t > 1:
            ties += t**3 - t
        avg = (i + j) / 2.0 + 1.0
        r1 += avg * sum(1 for k in range(i, j + 1) if pooled[k][1] == 0)
        i = j + 1
    u1 = r1 - n1 * (n1 + 1) / 2.0
    mean = n1 * n2 / 2.0
    var = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0.0:
        return MannWhitney(u1, 0.0, 1.0)
    diff = u1 - mean
    if continuity:
        diff = math.copysign(max(abs(diff) - 0.5, 0.0), diff)
    z = diff / math.sqrt(var)
    p = math.erfc(abs(z) / math.sqrt(2.0))
    return MannWhitney(u1, z, min(1.0, p))


@dataclass
class KayentaResult:
    first_fail: dict[tuple[str, str], float]  # (cohort key, metric) -> event time of the first failure
    n_analyses: int  # interval ends at which tests ran
    n_tests: int
    interval_s: float
    origin_ts: float
    # with keep_history: every test as (analysis ts, cohort, metric, z, p), and every failing one
    history: list[tuple[float, str, str, float, float]] = field(default_factory=list)
    failures: list[tuple[float, str, str]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.first_fail)

    def first_fail_ts(
        self, cohort: str | None = None, metric: str | None = None, *, at_or_after: float | None = None
    ) -> float | None:
        """Earliest failure, optionally restricted to one cohort key and/or one metric, and to
        analyses at or after a time (an injected change's onset; needs ``keep_history``)."""
        if at_or_after is not None:
            times = [t for t, c, m in self.failures if t >= at_or_after
                     and (cohort is None or c == cohort) and (metric is None or m == metric)]  # fmt: skip
        else:
            times = [t for (c, m), t in self.first_fail.items()
                     if (cohort is None or c == cohort) and (metric is None or m == metric)]  # fmt: skip
        return min(times) if times else None


def _aggregate(values: F64, minute: np.ndarray[Any, np.dtype[np.int64]], n_min: int, how: str) -> F64:
    """Per-interval aggregate of ``values`` (NaN where an interval has no value)."""
    out = np.full(n_min, np.nan)
    if len(values) == 0:
        return out
    if how == "mean":
        counts = np.bincount(minute, minlength=n_min)
        sums = np.bincount(minute, weights=values, minlength=n_min)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return out
    if how.startswith("p"):
        q = float(how[1:])
        order = np.lexsort((values, minute))
        m_sorted = minute[order]
        v_sorted = values[order]
        bounds = np.searchsorted(m_sorted, np.arange(n_min + 1))
        for k in range(n_min):
            lo, hi = bounds[k], bounds[k + 1]
            if hi > lo:
                out[k] = np.percentile(v_sorted[lo:hi], q)
        return out
    raise ValueError(f"unknown aggregate {how!r}")


def kayenta_judge(
    events: Iterable[Mapping[str, Any]] | EventColumns,
    *,
    interval_s: float = 60.0,
    confidence: float = 0.98,
    cohorts: Mapping[str, Mapping[str, str]] | None = None,
    metrics: Mapping[str, KayentaMetric] | None = None,
    min_intervals: int = 3,
    origin_ts: float | None = None,
    keep_history: bool = False,
) -> KayentaResult:
    """Run the judge over a whole stream as it would have run live (each analysis only uses the
    intervals that were complete at its time). ``cohorts`` maps a key to a segment filter (default:
    ``"all"`` and every dimension value seen); ``metrics`` defaults to :data:`DEFAULT_METRICS`."""
    cols = events if isinstance(events, EventColumns) else EventColumns.from_events(events)
    cohorts = cols.default_cohorts() if cohorts is None else cohorts
    metrics = DEFAULT_METRICS if metrics is None else metrics
    alpha = 1.0 - confidence
    if len(cols) == 0:
        return KayentaResult({}, 0, 0, interval_s, origin_ts or 0.0)
    origin = float(cols.ts.min()) if origin_ts is None else origin_ts
    minute_all = np.floor((cols.ts - origin) / interval_s).astype(np.int64)
    keep = minute_all >= 0
    n_min = int(minute_all[keep].max()) + 1 if keep.any() else 0
    observed = {name: observe(cols, m.observation) for name, m in metrics.items()}
    # analyses happen at the end of intervals in which the control served (the canary phase)
    control_minutes = np.zeros(n_min, dtype=bool)
    control_minutes[np.unique(minute_all[keep & (cols.arm == 0)])] = True
    canary_minutes = np.zeros(n_min, dtype=bool)
    canary_minutes[np.unique(minute_all[keep & (cols.arm == 1)])] = True
    analysed = np.flatnonzero(control_minutes & canary_minutes)

    arm_rows = [keep & (cols.arm == arm) for arm in (0, 1)]
    first_fail: dict[tuple[str, str], float] = {}
    history: list[tuple[float, str, str, float, float]] = []
    failures: list[tuple[float, str, str]] = []
    n_tests = 0
    for ckey, cohort in cohorts.items():
        cmask = cols.cohort_mask(cohort)
        in_arm = [cmask & rows for rows in arm_rows]
        key = ckey if ckey else cohort_key(cohort)
        for mname, metric in metrics.items():
            valid, values = observed[mname]
            series = []
            for arm in (0, 1):
                rows = in_arm[arm] & valid
                series.append(_aggregate(values[rows], minute_all[rows], n_min, metric.aggregate))
            control, canary = series
            for k in analysed:
                if k + 1 < min_intervals:
                    continue
                x = canary[: k + 1]
                y = control[: k + 1]
                x = x[~np.isnan(x)]
                y = y[~np.isnan(y)]
                if len(x) < min_intervals or len(y) < min_intervals:
                    continue
                res = mann_whitney_u(x.tolist(), y.tolist())
                n_tests += 1
                t_end = float(origin + (k + 1) * interval_s)
                if keep_history:
                    history.append((t_end, key, mname, res.z, res.p))
                worse = res.z > 0 if metric.higher_is_worse else res.z < 0
                if res.p < alpha and worse:
                    first_fail.setdefault((key, mname), t_end)
                    if not keep_history:
                        break
                    failures.append((t_end, key, mname))
    return KayentaResult(first_fail, len(analysed), n_tests, interval_s, origin, history, failures)
