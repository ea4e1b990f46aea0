"""Oracle CUSUM: the best a detector could do that knows exactly what changes, where, and how much.

It watches one stream (by default the canary events of the injected cohort) for a change of one
observation from known pre-change to known post-change parameters, with Page's CUSUM of the
log-likelihood ratio: ``S_n = max(0, S_{n-1} + log f1(x_n)/f0(x_n))``, alarm at ``S_n >= h``.

Kinds: ``bernoulli`` (rates, thumbs, or the exceedance of a latency threshold: the tail),
``gaussian`` (log-latency, log-ttft, log-tokens, log-cost, eval_score; mean shift, common sigma),
``binned`` (the likelihood ratio of the observation's histogram over pre-change quantile bins: the
default oracle for a change of the latency tail, where it uses all of the shape change rather than
one exceedance threshold).

False alarms: each start point of the CUSUM is an SPRT whose likelihood ratio is a non-negative
martingale under the pre-change law, so it crosses ``e^h`` with probability <= ``e^-h`` (Ville); a union
over at most ``horizon`` start points gives P(any alarm within ``horizon`` observations) <=
``horizon * e^-h`` = alpha for ``h = log(horizon / alpha)``. The Gaussian kinds rely on the model: log
latency and Beta scores are only approximately Gaussian (see the caveats in the report).

``oracle_spec_for(scenario, injection_index)`` derives the parameters from the simulator itself
(large Monte Carlo samples of the cohort's canary responses just before and at the onset).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .columns import F64, EventColumns
from .observations import observe

_ARM = {"control": 0, "canary": 1, "shadow": 2}


@dataclass
class OracleSpec:
    kind: str  # "bernoulli" or "gaussian"
    observation: str  # see observations.OBSERVATIONS, or "latency_exceeds" (with ``threshold``)
    cohort: dict[str, str] = field(default_factory=dict)
    arm: str = "canary"
    p0: float = math.nan
    p1: float = math.nan
    mu0: float = math.nan
    mu1: float = math.nan
    sigma: float = math.nan
    threshold: float = math.nan  # latency_exceeds: x = latency > threshold
    edges: list[float] = field(default_factory=list)  # binned: inner bin edges of the observation
    probs0: list[float] = field(default_factory=list)  # binned: pre-change bin probabilities
    probs1: list[float] = field(default_factory=list)  # binned: post-change bin probabilities
    onset_ts: float | None = None  # the known change time (for reporting delays)

    def llr(self, x: F64) -> F64:
        if self.kind == "bernoulli":
            p0 = min(max(self.p0, 1e-12), 1 - 1e-12)
            p1 = min(max(self.p1, 1e-12), 1 - 1e-12)
            return np.where(x > 0.5, math.log(p1 / p0), math.log((1 - p1) / (1 - p0)))
        if self.kind == "binned":
            floor = 1e-9
            p0 = np.maximum(np.asarray(self.probs0), floor)
            p1 = np.maximum(np.asarray(self.probs1), floor)
            llr: F64 = np.log(p1 / p0)[np.searchsorted(np.asarray(self.edges), x, side="right")]
            return llr
        if self.kind == "gaussian":
            d = self.mu1 - self.mu0
            return d / self.sigma**2 * (x - (self.mu0 + self.mu1) / 2.0)
        raise ValueError(f"unknown kind {self.kind!r}")


@dataclass
class OracleResult:
    alarm_ts: float | None  # event time of the alarm (None: no alarm)
    alarm_index: int | None  # observation number of the alarm (0-based)
    h: float
    n_obs: int
    max_stat: float
    spec: OracleSpec

    @property
    def false_alarm(self) -> bool:
        onset = self.spec.onset_ts
        return self.alarm_ts is not None and onset is not None and self.alarm_ts < onset

    @property
    def delay_s(self) -> float | None:
        if self.alarm_ts is None or self.spec.onset_ts is None:
            return None
        return self.alarm_ts - self.spec.onset_ts


def cusum(llr: F64) -> F64:
    """Page's CUSUM path ``S_n = max(0, S_{n-1} + llr_n)``, S_0 = 0.

    Vectorised: with ``C_n`` the cumulative sum, ``S_n = C_n - min(0, min_{k<=n} C_k)``."""
    c = np.cumsum(llr)
    return c - np.minimum(np.minimum.accumulate(c), 0.0)


def oracle_cusum(
    events: Iterable[Mapping[str, Any]] | EventColumns,
    spec: OracleSpec,
    *,
    alpha: float = 0.01,
    horizon: float | None = None,
) -> OracleResult:
    """Run the CUSUM on the stream's ``spec.arm`` events of ``spec.cohort``, in event-time order.
    ``horizon`` (observations) sets ``h = log(horizon/alpha)``; default: the observations in the stream."""
    cols = events if isinstance(events, EventColumns) else EventColumns.from_events(events)
    if spec.observation == "latency_exceeds":
        valid, values = observe(cols, "latency")
        values = (np.nan_to_num(values) > spec.threshold).astype(np.float64)
    else:
        valid, values = observe(cols, spec.observation)
    rows = valid & cols.cohort_mask(spec.cohort) & (cols.arm == _ARM[spec.arm])
    idx = np.flatnonzero(rows)
    idx = idx[np.argsort(cols.ts[idx], kind="stable")]
    x = values[idx]
    n = len(x)
    h = math.log(max(horizon if horizon is not None else n, 1) / alpha)
    if n == 0:
        return OracleResult(None, None, h, 0, 0.0, spec)
    path = cusum(spec.llr(x))
    hits = np.flatnonzero(path >= h)
    if len(hits) == 0:
        return OracleResult(None, None, h, n, float(path.max()), spec)
    i = int(hits[0])
    return OracleResult(float(cols.ts[idx[i]]), i, h, n, float(path.max()), spec)


_OBSERVATION_FOR = {
    "error_rate": ("bernoulli", "error"),
    "timeout_rate": ("bernoulli", "timeout"),
    "refusal_rate": ("bernoulli", "refusal"),
    "format_invalid_rate": ("bernoulli", "format_invalid"),
    "thumbs": ("bernoulli", "thumbs"),
    "latency_tail": ("bernoulli", "latency_exceeds"),
    "latency": ("gaussian", "log_latency"),
    "ttft": ("gaussian", "log_ttft"),
    "tokens_out": ("gaussian", "log_tokens_out"),
    "cost": ("gaussian", "log_cost"),
    "eval_score": ("gaussian", "eval_score"),
}


def _sample_columns(sample: Mapping[str, Any]) -> EventColumns:
    n = len(sample["status"])
    tout = sample["tokens_out"].astype(np.float64)
    tout[sample["tokens_out"] < 0] = np.nan
    thumbs = sample["thumbs"].astype(np.float64)
    thumbs[sample["thumbs"] < 0] = np.nan
    return EventColumns(
        ts=np.zeros(n),
        arm=np.ones(n, dtype=np.int64),
        status=sample["status"].astype(np.int64),
        latency_ms=sample["latency_ms"],
        ttft_ms=sample["ttft_ms"],
        tokens_out=tout,
        cost_usd=sample["cost_usd"],
        format_valid=sample["format_valid"].astype(np.int64),
        eval_score=sample["eval_score"],
        thumbs=thumbs,
    )


def oracle_spec_for(
    scenario: Any,
    injection_index: int = 0,
    *,
    n_mc: int = 200_000,
    arm: str = "canary",
    tail: str = "binned",
    tail_quantile: float = 0.95,
    bins: int = 20,
) -> OracleSpec:
    """Pre- and post-change parameters of the injected metric in the injected cohort, from the simulator.

    For ``latency_tail`` injections ``tail`` chooses the oracle: ``"binned"`` (likelihood ratio over
    ``bins`` pre-change quantile bins of ok latency) or ``"exceedance"`` (Bernoulli on latency above
    the pre-change ``tail_quantile``)."""
    from rollguard.sim.generator import sample_requests

    inj = scenario.injections[injection_index]
    try:
        kind, obs = _OBSERVATION_FOR[inj.metric]
    except KeyError:
        raise ValueError(f"no oracle for injected metric {inj.metric!r}") from None
    pre = _sample_columns(sample_requests(scenario, n_mc, inj.start_s - 1e-6, arm, inj.cohort, seed=11))
    post = _sample_columns(sample_requests(scenario, n_mc, inj.start_s, arm, inj.cohort, seed=12))
    spec = OracleSpec(kind, obs, dict(inj.cohort), arm, onset_ts=scenario.start_ts + inj.start_s)
    if obs == "latency_exceeds":
        v0, x0 = observe(pre, "latency")
        v1, x1 = observe(post, "latency")
        if tail == "binned":
            spec.kind, spec.observation = "binned", "latency"
            edges = np.quantile(x0[v0], np.arange(1, bins) / bins)
            spec.edges = [float(e) for e in edges]
            spec.probs0 = (
                np.bincount(np.searchsorted(edges, x0[v0], side="right"), minlength=bins) / v0.sum()
            ).tolist()
            spec.probs1 = (
                np.bincount(np.searchsorted(edges, x1[v1], side="right"), minlength=bins) / v1.sum()
            ).tolist()
            return spec
        if tail != "exceedance":
            raise ValueError(f"tail must be 'binned' or 'exceedance', not {tail!r}")
        spec.threshold = float(np.quantile(x0[v0], tail_quantile))
        spec.p0 = float(np.mean(x0[v0] > spec.threshold))
        spec.p1 = float(np.mean(x1[v1] > spec.threshold))
        return spec
    v0, x0 = observe(pre, obs)
    v1, x1 = observe(post, obs)
    if kind == "bernoulli":
        spec.p0 = float(np.mean(x0[v0]))
        spec.p1 = float(np.mean(x1[v1]))
    else:
        spec.mu0 = float(np.mean(x0[v0]))
        spec.mu1 = float(np.mean(x1[v1]))
        spec.sigma = float(math.sqrt((np.var(x0[v0]) + np.var(x1[v1])) / 2.0))
    return spec
