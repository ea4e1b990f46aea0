"""The offline eval gate: block a prompt or model change in CI before it reaches any user.

``rollguard gate --baseline BASE.jsonl --candidate CAND.jsonl [--config FILE] [--out REPORT.json]``
compares two offline eval runs with the same metrics, margins and trade-offs as the online detector and
exits 0 (pass), 1 (regression) or 2 (inconclusive: not enough items to rule out a regression).

Input: one JSON object per line and per eval item — v1 events work as they are, and so do lean records::

    {"item_id": "q17", "status": "ok", "latency_ms": 812, "cost_usd": 0.0021, "tokens_out": 240,
     "format_valid": true, "quality": {"eval_score": 0.82}, "segment": {"input_class": "coding"}}

Tests (one look, so a fixed-sample test is valid and more powerful than the online anytime-valid one):

- means and rates, ``gate.method: fixed`` (default): a two-sided (1 − α) normal interval on the same
  margin-folded contrast the core decides on, D = s·(μ_cand − (1 + s·r)·μ_base) − m; **paired** on the
  per-item differences when the runs share ``item_id`` (the same prompts: much tighter), else **Welch**
  (unequal variances; rates with the regularised Bernoulli variance p̃(1 − p̃), p̃ = (k + 1)/(n + 2)).
  ``gate.method: sequential`` uses the core's anytime-valid mixture confidence sequence instead.
- tails (p95, p99): distribution-free order-statistic intervals for each run's quantile (binomial ranks,
  each at α/2), compared like the core does (canary bounds against (1 + r) × baseline bounds);
  ``sequential`` uses the core's exact quantile confidence sequences
  (:func:`rollguard.detect.comparisons.compare_quantiles`).
- α is split over every (cohort, metric) test (Bonferroni). Regressed: the interval lies wholly beyond
  the margin; pass: wholly within; otherwise inconclusive. A regressed or inconclusive metric can be
  excused by a ``promotion.tradeoffs`` rule (e.g. quality −2% at most when cost falls by ≥ 20%).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from rollguard.detect.comparisons import ArmSummary, compare_means, compare_quantiles, contrast_scale
from rollguard.domain.cohorts import WHOLE, cohort_key
from rollguard.domain.metrics import MetricSpec
from rollguard.settings.config import Config
from rollguard.settings.promotion import Tradeoff
from rollguard.stats import LogHistogram, regularised_bernoulli_variance

EXIT = {"pass": 0, "regression": 1, "inconclusive": 2}
_FIELDS = ("latency_ms", "ttft_ms", "tpot_ms", "tokens_out", "cost_usd")


@dataclass(slots=True)
class Item:
    """One eval item's observations (values are None when the run did not record them)."""

    key: str | None
    segment: dict[str, str]
    status: str
    values: dict[str, float]
    format_valid: bool | None
    quality: dict[str, float]


def parse_item(obj: Any) -> Item | str:
    """An eval record as an :class:`Item`, or the reason it is unusable."""
    if not isinstance(obj, Mapping):
        return "not a JSON object"
    key = next((obj[k] for k in ("item_id", "request_id", "event_id") if isinstance(obj.get(k), str)), None)
    seg_raw = obj.get("segment") or {}
    if not isinstance(seg_raw, Mapping) or not all(isinstance(v, str) for v in seg_raw.values()):
        return "segment must be an object of strings"
    status = obj.get("status", "ok")
    if status not in ("ok", "error", "timeout", "refusal"):
        return f"bad status {status!r}"
    values: dict[str, float] = {}
    for name in _FIELDS:
        v = obj.get(name)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0:
            values[name] = float(v)
    if (
        "tpot_ms" not in values
        and values.get("tokens_out", 0) > 0
        and "ttft_ms" in values
        and "latency_ms" in values
    ):
        tpot = (values["latency_ms"] - values["ttft_ms"]) / values["tokens_out"]
        if tpot >= 0:
            values["tpot_ms"] = tpot
    quality_raw = obj.get("quality") or obj.get("scores") or {}
    quality = {}
    if isinstance(quality_raw, Mapping):
        quality = {
            str(k): float(v)
            for k, v in quality_raw.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }
    fmt = obj.get("format_valid")
    return Item(key, dict(seg_raw), str(status), values, fmt if isinstance(fmt, bool) else None, quality)


def read_items(path: str | Path) -> tuple[list[Item], list[str]]:
    """Items of a JSON-lines file, and ``line N: reason`` for lines that could not be used."""
    items: list[Item] = []
    errors: list[str] = []
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                errors.append(f"line {lineno}: not valid JSON")
                continue
            item = parse_item(obj)
            if isinstance(item, str):
                errors.append(f"line {lineno}: {item}")
            else:
                items.append(item)
    return items, errors


def _observe(spec: MetricSpec, item: Item) -> float | None:
    """The item's value for a metric (rates as 0/1), None when it does not count for that metric."""
    if spec.kind == "rate":
        if spec.field == "format_invalid":
            return None if item.format_valid is None else float(not item.format_valid)
        return float(item.status == spec.field)
    if item.status != "ok":
        return None
    if spec.field.startswith("quality."):
        return item.quality.get(spec.field[len("quality.") :])
    return item.values.get(spec.field)


@dataclass(slots=True)
class GateRow:
    metric: str
    family: str
    cohort: str
    n_baseline: int
    n_candidate: int
    baseline: float | None
    candidate: float | None
    effect: float | None  # oriented: positive = worse
    effect_ci: tuple[float, float] | None
    relative_ci: tuple[float, float] | None
    margin: float
    margin_relative: bool
    verdict: str  # pass | regression | inconclusive | missing
    test: str
    alpha: float
    excused_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "family": self.family,
            "cohort": self.cohort,
            "n_baseline": self.n_baseline,
            "n_candidate": self.n_candidate,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "effect": self.effect,
            "effect_ci": list(self.effect_ci) if self.effect_ci else None,
            "relative_effect_ci": list(self.relative_ci) if self.relative_ci else None,
            "margin": self.margin,
            "margin_relative": self.margin_relative,
            "verdict": self.verdict,
            "test": self.test,
            "alpha": self.alpha,
            "excused_by": self.excused_by,
        }


@dataclass(slots=True)
class GateReport:
    result: str
    rows: list[GateRow]
    alpha: float
    method: str
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT[self.result]

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "exit_code": self.exit_code,
            "alpha": self.alpha,
            "method": self.method,
            "tests": len([r for r in self.rows if r.verdict != "missing"]),
            "notes": self.notes,
            "metrics": [r.to_dict() for r in self.rows],
        }

    def table(self) -> str:
        """The per-metric table a CI log shows."""
        head = (
            f"{'metric':<26} {'cohort':<26} {'n_base':>7} {'n_cand':>7} {'baseline':>10} {'candidate':>10} "
            f"{'effect':>10} {'CI of effect':>20} {'margin':>8}  verdict"
        )
        lines = [head, "-" * len(head)]
        for r in self.rows:
            rate = r.family == "guardrail"

            def fmt(x: float | None, rate: bool = rate) -> str:
                if x is None:
                    return "-"
                return f"{x * 100:.2f}%" if rate else f"{x:.4g}"

            if r.effect is None:
                eff = "-"
            elif rate:
                eff = f"{r.effect * 100:+.2f}pp"
            else:
                eff = f"{r.effect:+.4g}"
            if rate and r.effect_ci:
                ci = f"[{r.effect_ci[0] * 100:+.2f}, {r.effect_ci[1] * 100:+.2f}]pp"
            else:
                ci = f"[{r.relative_ci[0]:+.1%}, {r.relative_ci[1]:+.1%}]" if r.relative_ci else "-"
            margin = (
                f"{r.margin:.0%}"
                if r.margin_relative
                else (f"{r.margin * 100:g}pp" if rate else f"{r.margin:g}")
            )
            verdict = r.verdict + (f" (excused: {r.excused_by})" if r.excused_by else "")
            lines.append(
                f"{r.metric:<26} {r.cohort[:26]:<26} {r.n_baseline:>7} {r.n_candidate:>7} "
                f"{fmt(r.baseline):>10} "
                f"{fmt(r.candidate):>10} {eff:>10} {ci:>20} {margin:>8}  {verdict}"
            )
        lines.append(
            f"result: {self.result.upper()} (exit {self.exit_code}); {self.method}, alpha {self.alpha:g}"
        )
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _cohorts(items: Iterable[Item], dims: tuple[str, ...] | None, max_dims: int) -> dict[str, dict[str, str]]:
    found: list[str] = []
    values: dict[str, set[str]] = {}
    for it in items:
        for d, v in it.segment.items():
            if (dims is None or d in dims) and (d in found or len(found) < max_dims):
                if d not in found:
                    found.append(d)
                values.setdefault(d, set()).add(v)
    out: dict[str, dict[str, str]] = {WHOLE: {}}
    for d in sorted(found):
        for v in sorted(values[d]):
            out[cohort_key({d: v})] = {d: v}
    return out


def _in(item: Item, scope: Mapping[str, str]) -> bool:
    return all(item.segment.get(k) == v for k, v in scope.items())


def run_gate(baseline: list[Item], candidate: list[Item], config: Config) -> GateReport:
    """Compare two eval runs metric by metric and cohort by cohort; pure (no I/O)."""
    g = config.gate
    specs = [m for m in config.metrics if m.enabled and m.family in g.families]
    keys = sorted({k for it in (*baseline, *candidate) for k in it.quality})
    if "quality" in g.families:
        specs += [s for s in (config.quality_spec(k) for k in keys) if s.enabled]
    cohorts = _cohorts((*baseline, *candidate), g.dimensions, g.max_dimensions)
    plan: list[tuple[MetricSpec, str, list[float], list[float], list[tuple[float, float]]]] = []
    notes: list[str] = []
    for cohort, scope in cohorts.items():
        base = [it for it in baseline if _in(it, scope)]
        cand = [it for it in candidate if _in(it, scope)]
        paired_keys = {it.key: it for it in base if it.key is not None}
        for spec in specs:
            xb = [v for v in (_observe(spec, it) for it in base) if v is not None]
            xc = [v for v in (_observe(spec, it) for it in cand) if v is not None]
            if not xb and not xc:
                continue
            pairs: list[tuple[float, float]] = []
            if g.paired == "auto" and spec.kind != "quantile":
                for it in cand:
                    other = paired_keys.get(it.key) if it.key is not None else None
                    if other is None:
                        continue
                    a, b = _observe(spec, other), _observe(spec, it)
                    if a is not None and b is not None:
                        pairs.append((a, b))
            plan.append((spec, cohort, xb, xc, pairs))
    k = max(1, sum(1 for _, _, xb, xc, _ in plan if len(xb) >= g.min_samples and len(xc) >= g.min_samples))
    alpha = g.alpha / k
    rows = [
        _row(spec, cohort, xb, xc, pairs, alpha, g.method, g.min_samples)
        for spec, cohort, xb, xc, pairs in plan
    ]
    _apply_tradeoffs(rows, config.promotion.tradeoffs)
    regress = [r for r in rows if r.verdict == "regression" and not r.excused_by]
    open_whole = [
        r for r in rows if r.cohort == WHOLE and r.verdict in ("inconclusive", "missing") and not r.excused_by
    ]
    open_seg = [r for r in rows if r.cohort != WHOLE and r.verdict in ("inconclusive", "missing")]
    if open_seg:
        notes.append(
            f"{len(open_seg)} segment test(s) inconclusive (they do not block; the whole run decides)"
        )
    result = "regression" if regress else "inconclusive" if open_whole or not rows else "pass"
    if not rows:
        notes.append("no metric had data in either run")
    method = (
        "fixed-sample normal interval (paired on item_id when possible, else Welch); tails: order statistics"
        if g.method == "fixed"
        else "anytime-valid mixture confidence sequence (as online); tails: quantile CS"
    )
    return GateReport(result, rows, g.alpha, method, notes)


def _row(spec: MetricSpec, cohort: str, xb: list[float], xc: list[float], pairs: list[tuple[float, float]],
         alpha: float, method: str, min_n: int) -> GateRow:  # fmt: skip
    nb, nc = len(xb), len(xc)
    mb = float(np.mean(xb)) if xb else None
    mc = float(np.mean(xc)) if xc else None
    row = GateRow(
        spec.name, spec.family, cohort, nb, nc, mb, mc, None, None, None, spec.margin, spec.relative,
        "missing", "-", alpha,
    )  # fmt: skip
    if mb is None or mc is None:
        return row
    s = 1.0 if spec.higher_is_worse else -1.0
    row.effect = s * (mc - mb)
    if nb < min_n or nc < min_n:
        row.verdict, row.test = "inconclusive", f"fewer than {min_n} items"
        return row
    if spec.kind == "quantile":
        return _quantile_row(row, spec, xb, xc, alpha, method)
    lam = 1.0 + s * (spec.margin if spec.relative else 0.0)
    m = 0.0 if spec.relative else spec.margin
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    use_pairs = len(pairs) >= min_n and method == "fixed"
    if use_pairs:
        a = np.asarray(pairs)
        d = s * (a[:, 1] - lam * a[:, 0]) - m
        e = s * (a[:, 1] - a[:, 0])
        half_d = z * float(np.std(d, ddof=1)) / math.sqrt(len(d))
        half_e = z * float(np.std(e, ddof=1)) / math.sqrt(len(e))
        lo, hi = float(np.mean(d)) - half_d, float(np.mean(d)) + half_d
        e_mid = float(np.mean(e))
        row.test = f"paired normal interval on {len(d)} shared items"
    else:
        vb, vc = _variance(spec, xb), _variance(spec, xc)
        if method == "sequential":
            tau2 = contrast_scale(spec, mb) ** 2
            _, ev = compare_means(spec, ArmSummary(nb, mb, vb), ArmSummary(nc, mc, vc), alpha, tau2)
            lo, hi = ev.interval
            row.test = "anytime-valid mixture CS"
        else:
            se = math.sqrt(vc / nc + lam * lam * vb / nb)
            d_hat = s * (mc - lam * mb) - m
            lo, hi = d_hat - z * se, d_hat + z * se
            row.test = "Welch normal interval"
        half_e = z * math.sqrt(vc / nc + vb / nb)
        e_mid = s * (mc - mb)
    row.effect_ci = (e_mid - half_e, e_mid + half_e)
    if mb:
        row.relative_ci = (row.effect_ci[0] / abs(mb), row.effect_ci[1] / abs(mb))
    row.verdict = "regression" if lo > 0 else "pass" if hi < 0 else "inconclusive"
    return row


def _variance(spec: MetricSpec, x: list[float]) -> float:
    if spec.kind == "rate":
        return float(regularised_bernoulli_variance(np.float64(sum(x)), np.float64(len(x))))
    return float(np.var(x, ddof=1)) if len(x) > 1 else 0.0


def _order_statistic_ci(x: npt.NDArray[np.float64], q: float, alpha: float) -> tuple[float, float]:
    """Distribution-free (1 − α) interval for the q-quantile from order statistics (binomial ranks, normal
    approximation); infinite on a side where the sample is too small to bound it."""
    n = x.size
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    spread = z * math.sqrt(n * q * (1.0 - q))
    k_lo = math.floor(n * q - spread)  # 1-based ranks
    k_hi = math.ceil(n * q + spread) + 1
    xs = np.sort(x)
    lo = float(xs[k_lo - 1]) if k_lo >= 1 else -math.inf
    hi = float(xs[k_hi - 1]) if k_hi <= n else math.inf
    return lo, hi


def _quantile_row(row: GateRow, spec: MetricSpec, xb: list[float], xc: list[float], alpha: float,
                  method: str) -> GateRow:  # fmt: skip
    assert spec.quantile is not None
    q = spec.quantile
    if method == "sequential":
        hb, hc = LogHistogram(), LogHistogram()
        hb.update_many(np.asarray(xb))
        hc.update_many(np.asarray(xc))
        state, ev = compare_quantiles(spec, hb, hc, alpha)
        row.baseline, row.candidate, row.effect = ev.control, ev.canary, ev.effect
        (lo_t, hi_t), (lo_c, hi_c) = ev.extra["canary_interval"], ev.extra["control_interval"]
        row.test = "exact quantile confidence sequences (anytime-valid)"
        verdict = state.value
    else:
        b, c = np.asarray(xb), np.asarray(xc)
        row.baseline, row.candidate = float(np.quantile(b, q)), float(np.quantile(c, q))
        row.effect = row.candidate - row.baseline
        lo_c, hi_c = _order_statistic_ci(b, q, alpha / 2.0)
        lo_t, hi_t = _order_statistic_ci(c, q, alpha / 2.0)
        r = spec.margin if spec.relative else 0.0
        m = 0.0 if spec.relative else spec.margin
        d_lo, d_hi = lo_t - (1.0 + r) * hi_c - m, hi_t - (1.0 + r) * lo_c - m
        verdict = "regressed" if d_lo > 0 else "non_inferior" if d_hi < 0 else "insufficient"
        row.test = "order-statistic intervals per run (union bound)"
    if math.isfinite(hi_t) and math.isfinite(hi_c) and math.isfinite(lo_t) and math.isfinite(lo_c):
        row.effect_ci = (lo_t - hi_c, hi_t - lo_c)
        if row.baseline:
            row.relative_ci = (row.effect_ci[0] / row.baseline, row.effect_ci[1] / row.baseline)
    row.verdict = {"regressed": "regression", "non_inferior": "pass"}.get(verdict, "inconclusive")
    return row


def _apply_tradeoffs(rows: list[GateRow], tradeoffs: tuple[Tradeoff, ...]) -> None:
    by = {(r.cohort, r.metric): r for r in rows}
    for r in rows:
        if r.verdict == "pass":
            continue
        for t in tradeoffs:
            other = by.get((r.cohort, t.when))
            if not fnmatchcase(r.metric, t.metric) or other is None:
                continue
            if (
                r.relative_ci
                and other.relative_ci
                and r.relative_ci[1] <= t.max_relative_drop
                and (other.relative_ci[1] <= -t.min_relative_saving)
            ):
                r.excused_by = f"{t.when} certainly {-other.relative_ci[1]:.0%}+ better"
                break


def gate_files(baseline: str | Path, candidate: str | Path, config: Config) -> GateReport:
    base, e1 = read_items(baseline)
    cand, e2 = read_items(candidate)
    report = run_gate(base, cand, config)
    report.notes += [f"baseline {e}" for e in e1[:20]] + [f"candidate {e}" for e in e2[:20]]
    return report
