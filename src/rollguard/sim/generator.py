"""Rollout traffic generator: a :class:`~rollguard.sim.scenario.Scenario` in, v1 event dicts out.

Everything is drawn in numpy batches (``Scenario.chunk_size`` arrivals at a time) and only the last
step builds Python dicts, so a million events take seconds. Output is in event-time order
(non-decreasing ``ts``), including shadow copies, which arrive a little after their live request.

Determinism and common random numbers: each aspect (arrivals, unit choice, segments, status, tokens,
latency, quality, drops, shadow copies, texts) draws from its own stream spawned from ``seed``. Two
scenarios that differ only in their injections therefore share arrivals, routing, segments and every
draw before the injection starts, which makes "A/A vs injected" comparisons paired.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from rollguard.sim.scenario import Behaviour, Injection, Scenario, ScenarioError, parse_conditions
from rollguard.sim.text import TextContext, TextGenerator, build_text_generator, text_markers

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
B = npt.NDArray[np.bool_]

ARM_NAMES: Final = ("control", "canary", "shadow")
STATUS_NAMES: Final = ("ok", "error", "timeout", "refusal")
CONTROL: Final = 0
CANARY: Final = 1
SHADOW: Final = 2
OK: Final = 0
ERROR: Final = 1
TIMEOUT: Final = 2
REFUSAL: Final = 3

_STREAMS: Final = (
    "arrivals",
    "units",
    "segments",
    "status",
    "tokens",
    "latency",
    "quality",
    "eval",
    "drop",
    "shadow",
    "text",
)


@dataclass
class EventBatch:
    """Events as columns. Absent values: NaN for floats, -1 for integers and flags."""

    t: F64  # scenario seconds (event time - start_ts)
    seq: I64  # request number; live and shadow copies of one request share it
    arm: I8
    unit: I64
    combo: I64  # index of the segment combination (see ``Plan.segments``)
    weight: F64  # canary weight the router applied
    status: I8
    latency_ms: F64
    ttft_ms: F64
    tokens_in: I64
    tokens_out: I64
    cost_usd: F64
    format_valid: I8
    eval_score: F64
    thumbs: I8
    texts: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.t)

    def take(self, idx: Any) -> EventBatch:
        """Rows selected by a boolean mask, an index array or a slice."""
        cols: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "texts":
                if value is None:
                    cols[f.name] = None
                else:
                    ii = np.arange(len(self.t))[idx]
                    cols[f.name] = [value[int(i)] for i in ii]
            else:
                cols[f.name] = value[idx]
        return EventBatch(**cols)

    @staticmethod
    def concat(batches: list[EventBatch]) -> EventBatch:
        cols: dict[str, Any] = {}
        for f in fields(EventBatch):
            if f.name == "texts":
                if all(b.texts is None for b in batches):
                    cols[f.name] = None
                else:
                    texts: list[str | None] = []
                    for b in batches:
                        texts.extend(b.texts if b.texts is not None else [None] * len(b))
                    cols[f.name] = texts
            else:
                cols[f.name] = np.concatenate([getattr(b, f.name) for b in batches])
        return EventBatch(**cols)


@dataclass
class _Inj:
    spec: Injection
    combo_match: B
    arm_match: B  # indexed by arm code
    tail_lo: float = math.nan  # latency_tail: baseline quantiles of the cohort's ok latency
    tail_hi: float = math.nan


class Plan:
    """A scenario compiled into lookup tables (segment combinations, per-combination parameters, units)."""

    def __init__(self, scenario: Scenario, arrival_times: npt.ArrayLike | None = None) -> None:
        scenario.validate()
        self.scenario = scenario
        self.seed_seq = np.random.SeedSequence(scenario.seed)
        dims = scenario.dimensions
        self.dims = dims
        sizes = [len(d.values) for d in dims]
        self.n_combos = int(np.prod(sizes)) if sizes else 1
        strides: list[int] = []
        s = 1
        for size in reversed(sizes):
            strides.append(s)
            s *= size
        self.strides = list(reversed(strides))
        # combination index -> value index per dimension
        self.combo_values = np.zeros((self.n_combos, len(dims)), dtype=np.int64)
        rest = np.arange(self.n_combos)
        for j, stride in enumerate(self.strides):
            self.combo_values[:, j] = rest // stride
            rest = rest % stride
        self.segments: list[dict[str, str]] = [
            {d.name: d.values[int(v)] for d, v in zip(dims, row, strict=True)} for row in self.combo_values
        ]
        probs = np.ones(self.n_combos)
        for j, d in enumerate(dims):
            probs *= np.asarray(d.probabilities())[self.combo_values[:, j]]
        self.combo_prob = probs / probs.sum()

        # per-combination behaviour parameters (segment overrides applied in order)
        dim_map = {d.name: d for d in dims}
        overrides = [
            (parse_conditions(key, dim_map, f"segment_behaviour[{key!r}]"), values)
            for key, values in scenario.segment_behaviour.items()
        ]
        behaviours: list[Behaviour] = []
        for seg in self.segments:
            b = scenario.behaviour
            for conds, values in overrides:
                if all(seg[k] == v for k, v in conds.items()):
                    b = b.replace(values)
            behaviours.append(b)
        self.params: dict[str, F64] = {
            f.name: np.array([getattr(b, f.name) for b in behaviours], dtype=np.float64)
            for f in fields(Behaviour)
        }

        # units: activity, sticky hash bucket, per-unit dimensions
        units = scenario.units
        rng_units = self._rng("units")
        activity = rng_units.lognormal(0.0, units.activity_sigma, size=units.n_units)
        self.unit_cdf = np.cumsum(activity) / activity.sum()
        self.unit_ids = [f"{units.id_prefix}{i:06d}" for i in range(units.n_units)]
        salt = scenario.routing_salt if scenario.routing_salt is not None else f"seed:{scenario.seed}"
        self.unit_bucket = unit_buckets(salt, units.n_units)
        self.unit_dim: dict[int, I64] = {}
        for j, d in enumerate(dims):
            if d.per_unit:
                self.unit_dim[j] = _draw_categorical(rng_units, d.probabilities(), units.n_units)

        # weight schedule
        steps = sorted(scenario.weights, key=lambda st: st.at_s)
        self.weight_at = np.array([st.at_s for st in steps], dtype=np.float64)
        self.weight_val = np.array([st.weight for st in steps], dtype=np.float64)

        # injections
        self.injections: list[_Inj] = []
        for k, inj in enumerate(scenario.injections):
            match = np.ones(self.n_combos, dtype=bool)
            for name, value in inj.cohort.items():
                j = [d.name for d in dims].index(name)
                match &= self.combo_values[:, j] == dims[j].values.index(value)
            arms = np.array([a in inj.arms for a in ARM_NAMES], dtype=bool)
            compiled = _Inj(inj, match, arms)
            if inj.metric == "latency_tail":
                lat = self._baseline_ok_latency(match, k)
                compiled.tail_lo = float(np.quantile(lat, inj.tail_from_quantile))
                compiled.tail_hi = float(np.quantile(lat, inj.tail_at_quantile))
            self.injections.append(compiled)
        self.text_generator: TextGenerator | None = (
            build_text_generator(scenario.response_text, scenario) if scenario.response_text else None
        )
        self.arrival_times: F64 | None = (
            None if arrival_times is None else np.sort(np.asarray(arrival_times, dtype=np.float64))
        )

    # ---- randomness ------------------------------------------------------------------------------
    def _rng(self, name: str, *extra: int) -> np.random.Generator:
        key = (_STREAMS.index(name), *extra) if name in _STREAMS else (len(_STREAMS), *extra)
        seq = np.random.SeedSequence(self.seed_seq.entropy, spawn_key=key)
        return np.random.Generator(np.random.PCG64(seq))

    def streams(self, copy: int = 0) -> dict[str, np.random.Generator]:
        """Independent generators per aspect; ``copy`` 0 = live traffic, 1 = shadow copies, 2+ = helpers."""
        return {name: self._rng(name, copy) for name in _STREAMS}

    def _baseline_ok_latency(self, match: B, k: int, n: int = 60_000) -> F64:
        if not match.any():
            raise ScenarioError(f"injections[{k}]: the cohort matches no segment combination")
        rng = self._rng("latency", 1000 + k)
        p = np.where(match, self.combo_prob, 0.0)
        combo = _draw_categorical(rng, p / p.sum(), n)
        streams = {name: self._rng(name, 2000 + k) for name in _STREAMS}
        cols = respond(self, streams, combo, np.full(n, CONTROL, dtype=np.int8), np.zeros(n), injections=())
        lat: F64 = cols["latency_ms"][cols["status"] == OK]
        return lat

    def weights_for(self, t: F64) -> F64:
        idx = np.searchsorted(self.weight_at, t, side="right") - 1
        w = np.where(idx >= 0, self.weight_val[np.clip(idx, 0, None)], 0.0)
        if self.scenario.promote_at_s is not None:
            w = np.where(t >= self.scenario.promote_at_s, 1.0, w)
        if self.scenario.control_only_s > 0:  # the canary has not started: every unit goes to control
            w = np.where(t < self.scenario.control_only_s, 0.0, w)
        return w


def unit_buckets(salt: str, n_units: int) -> F64:
    """The router's sticky hash bucket in [0, 1) of units 0..n-1: a unit is on the canary while its bucket
    is below the canary weight, so a unit stays there as the weight ramps up. splitmix64 of the unit
    number mixed with a hash of ``salt``: independent of activity and segment."""
    key = int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "big")
    with np.errstate(over="ignore"):
        x = np.arange(n_units, dtype=np.uint64) ^ np.uint64(key)
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _draw_categorical(rng: np.random.Generator, probs: Iterable[float], n: int) -> I64:
    cdf = np.cumsum(np.asarray(list(probs), dtype=np.float64))
    cdf /= cdf[-1]
    out = np.searchsorted(cdf, rng.random(n), side="right")
    return np.minimum(out, len(cdf) - 1).astype(np.int64)


# ---- responses -------------------------------------------------------------------------------------
def respond(
    plan: Plan,
    s: Mapping[str, np.random.Generator],
    combo: I64,
    arm: I8,
    t: F64,
    tokens_in: I64 | None = None,
    injections: Iterable[_Inj] | None = None,
) -> dict[str, Any]:
    """Draw the responses of requests (segment combination, arm, scenario time) as columns.

    A fixed number of draws per event from each stream (except the Beta draws of eval_score), so an
    injection does not shift the random numbers of other aspects.
    """
    n = len(combo)
    P = plan.params
    pe = P["error_rate"][combo]
    pt = P["timeout_rate"][combo]
    pr = P["refusal_rate"][combo]
    pf = P["format_invalid_rate"][combo]
    eval_mean = P["eval_mean"][combo]
    thumbs_up = P["thumbs_up_rate"][combo]
    lat_mult = np.ones(n)
    ttft_mult = np.ones(n)
    tout_mult = np.ones(n)
    cost_mult = np.ones(n)
    drop = np.zeros(n)
    tails: list[tuple[_Inj, B]] = []
    for inj in plan.injections if injections is None else injections:
        spec = inj.spec
        if spec.metric == "text":
            continue
        m = inj.combo_match[combo] & inj.arm_match[arm] & (t >= spec.start_s)
        if spec.end_s is not None:
            m &= t < spec.end_s
        if not m.any():
            continue
        metric, mode, v = spec.metric, spec.effective_mode, spec.value
        if metric == "error_rate":
            pe = _apply(pe, m, mode, v)
        elif metric == "timeout_rate":
            pt = _apply(pt, m, mode, v)
        elif metric == "refusal_rate":
            pr = _apply(pr, m, mode, v)
        elif metric == "format_invalid_rate":
            pf = _apply(pf, m, mode, v)
        elif metric == "thumbs":
            thumbs_up = _apply(thumbs_up, m, mode, v)
        elif metric == "drop_events":
            drop = _apply(drop, m, mode, v)
        elif metric == "eval_score":
            eval_mean = np.clip(_apply(eval_mean, m, mode, v, clip=False), 1e-3, 1 - 1e-3)
        elif metric == "latency":
            lat_mult = np.where(m, lat_mult * v, lat_mult)
        elif metric == "ttft":
            ttft_mult = np.where(m, ttft_mult * v, ttft_mult)
        elif metric == "tokens_out":
            tout_mult = np.where(m, tout_mult * v, tout_mult)
        elif metric == "cost":
            cost_mult = np.where(m, cost_mult * v, cost_mult)
        elif metric == "latency_tail":
            tails.append((inj, m))

    # status: one uniform per event, with the three failure bands anchored apart (error grows up from
    # 0, timeout down from 1, refusal both ways around 1/2) so that changing one rate only moves events
    # between that status and ok; where the bands would overlap, consecutive bands keep rates exact
    u = s["status"].random((2, n))
    apart = (pe <= 0.5 - pr / 2) & (1.0 - pt >= 0.5 + pr / 2)
    c1 = pe
    c2 = np.minimum(c1 + pt, 1.0)
    c3 = np.minimum(c2 + pr, 1.0)
    stacked = np.where(u[0] < c1, ERROR, np.where(u[0] < c2, TIMEOUT, np.where(u[0] < c3, REFUSAL, OK)))
    banded = np.where(
        u[0] < pe,
        ERROR,
        np.where(u[0] >= 1.0 - pt, TIMEOUT, np.where(np.abs(u[0] - 0.5) < pr / 2, REFUSAL, OK)),
    )
    status = np.where(apart, banded, stacked).astype(np.int8)
    ok = status == OK
    served = ok | (status == REFUSAL)
    format_valid = np.where(ok, (u[1] >= pf).astype(np.int8), np.int8(-1)).astype(np.int8)

    # tokens
    z = s["tokens"].standard_normal((3, n))
    if tokens_in is None:
        tin = P["tokens_in_median"][combo] * np.exp(P["tokens_in_sigma"][combo] * z[0])
        tokens_in = np.maximum(1, np.rint(tin)).astype(np.int64)
    tout_ok = np.rint(P["tokens_out_median"][combo] * tout_mult * np.exp(P["tokens_out_sigma"][combo] * z[1]))
    tout_ok = np.clip(tout_ok, 1, P["max_tokens_out"][combo])
    tout_ref = np.maximum(1, np.rint(P["refusal_tokens_out_median"][combo] * np.exp(0.5 * z[2])))
    tokens_out = np.where(ok, tout_ok, np.where(status == REFUSAL, tout_ref, -1)).astype(np.int64)

    # latency = ttft + tokens_out * time per token (served); errors fail fast; timeouts hit the limit
    zl = s["latency"].standard_normal((3, n))
    ttft = (
        (
            P["ttft_median_ms"][combo] * np.exp(P["ttft_sigma"][combo] * zl[0])
            + tokens_in * P["prefill_ms_per_1k_tokens"][combo] / 1000.0
        )
        * ttft_mult
        * lat_mult
    )
    tpot = P["tpot_median_ms"][combo] * np.exp(P["tpot_sigma"][combo] * zl[1]) * lat_mult
    served_latency = ttft + np.maximum(tokens_out, 0) * tpot
    for inj, m in tails:
        mm = m & ok
        if mm.any():
            served_latency = np.where(mm, _stretch_tail(served_latency, inj), served_latency)
    latency = np.where(
        served,
        served_latency,
        np.where(
            status == ERROR,
            P["error_latency_median_ms"][combo] * np.exp(0.6 * zl[2]),
            P["timeout_ms"][combo] + 20.0 * np.abs(zl[2]),
        ),
    )
    ttft_out = np.where(served, ttft, np.nan)

    # cost: prompt + completion tokens at the segment's prices; failed requests are not charged the
    # completion, errors not at all
    cost = tokens_in * P["price_in_per_1k"][combo] / 1000.0
    cost = np.where(served, cost + np.maximum(tokens_out, 0) * P["price_out_per_1k"][combo] / 1000.0, cost)
    cost = np.where(status == ERROR, 0.0, cost) * cost_mult

    # quality: eval_score on most ok responses (Beta), thumbs on a sparse share of served ones
    q = s["quality"].random((3, n))
    kappa = P["eval_concentration"][combo]
    ev = s["eval"].beta(eval_mean * kappa, (1.0 - eval_mean) * kappa)
    eval_score = np.where(ok & (q[0] < P["eval_share"][combo]), ev, np.nan)
    up_rate = np.where(ok, thumbs_up, P["refusal_thumbs_up_rate"][combo])
    thumbs = np.where(served & (q[1] < P["thumbs_share"][combo]), (q[2] < up_rate).astype(np.int8), -1)

    keep = s["drop"].random(n) >= drop
    return {
        "status": status,
        "latency_ms": latency,
        "ttft_ms": ttft_out,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost_usd": cost,
        "format_valid": format_valid,
        "eval_score": eval_score,
        "thumbs": thumbs.astype(np.int8),
        "keep": keep,
    }


def _apply(x: F64, m: B, mode: str, v: float, clip: bool = True) -> F64:
    if mode == "set":
        y = np.where(m, v, x)
    elif mode == "add":
        y = np.where(m, x + v, x)
    else:
        y = np.where(m, x * v, x)
    return np.clip(y, 0.0, 1.0) if clip else y


def _stretch_tail(lat: F64, inj: _Inj) -> F64:
    """Monotone map: identity below the cohort's ``tail_from`` quantile, x value at and above ``tail_at``."""
    lo, hi = math.log(inj.tail_lo), math.log(inj.tail_hi)
    frac = np.clip((np.log(np.maximum(lat, 1e-9)) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    return lat * (1.0 + (inj.spec.value - 1.0) * frac)


# ---- arrivals --------------------------------------------------------------------------------------
def _arrival_chunks(plan: Plan, rng: np.random.Generator) -> Iterator[F64]:
    sc = plan.scenario
    arr = sc.arrivals
    chunk = sc.chunk_size
    times = plan.arrival_times
    if times is None and arr.times_s is not None:
        times = np.sort(np.asarray(arr.times_s, dtype=np.float64))
    if times is not None:
        times = times[(times >= 0) & (times < sc.duration_s)]
        for i in range(0, len(times), chunk):
            yield times[i : i + chunk]
        return
    peak = arr.rate_per_s * (1.0 + arr.diurnal_amplitude)
    for b in arr.bursts:
        peak *= max(1.0, b.multiplier)
    modulated = arr.diurnal_amplitude > 0 or bool(arr.bursts)
    t0 = 0.0
    while t0 < sc.duration_s:
        gaps = rng.exponential(1.0 / peak, size=chunk)
        accept_u = rng.random(chunk)
        t = t0 + np.cumsum(gaps)
        t0 = float(t[-1])
        keep = t < sc.duration_s
        if modulated:
            keep &= accept_u * peak < _rate(plan, t)
        yield t[keep]


def _rate(plan: Plan, t: F64) -> F64:
    arr = plan.scenario.arrivals
    rate = arr.rate_per_s * (
        1.0 + arr.diurnal_amplitude * np.sin(2.0 * np.pi * (t + arr.diurnal_phase_s) / arr.diurnal_period_s)
    )
    for b in arr.bursts:
        rate = np.where((t >= b.start_s) & (t < b.start_s + b.duration_s), rate * b.multiplier, rate)
    return rate


# ---- batches ---------------------------------------------------------------------------------------
def generate_batches(scenario: Scenario, arrival_times: npt.ArrayLike | None = None) -> Iterator[EventBatch]:
    """The scenario's events as column batches in event-time order (:func:`generate` makes dicts of them)."""
    plan = Plan(scenario, arrival_times)
    yield from _batches(plan)


def _batches(plan: Plan) -> Iterator[EventBatch]:
    sc = plan.scenario
    live_s = plan.streams(0)
    shadow_s = plan.streams(1)
    dims = plan.dims
    seq0 = 0
    pending: EventBatch | None = None
    for t in _arrival_chunks(plan, live_s["arrivals"]):
        n = len(t)
        if n == 0:
            continue
        unit = np.searchsorted(plan.unit_cdf, live_s["units"].random(n), side="right")
        unit = np.minimum(unit, len(plan.unit_cdf) - 1).astype(np.int64)
        combo = np.zeros(n, dtype=np.int64)
        seg_u = live_s["segments"].random((max(len(dims), 1), n))
        for j, d in enumerate(dims):
            if j in plan.unit_dim:
                vals = plan.unit_dim[j][unit]
            else:
                cdf = np.cumsum(d.probabilities())
                vals = np.minimum(np.searchsorted(cdf / cdf[-1], seg_u[j], side="right"), len(cdf) - 1)
            combo += vals * plan.strides[j]
        weight = plan.weights_for(t)
        promoted = t >= sc.promote_at_s if sc.promote_at_s is not None else np.zeros(n, dtype=bool)
        arm = np.where(promoted | (plan.unit_bucket[unit] < weight), CANARY, CONTROL).astype(np.int8)
        seq = seq0 + np.arange(n, dtype=np.int64)
        seq0 += n
        cols = respond(plan, live_s, combo, arm, t)
        live = _batch(plan, live_s, t, seq, arm, unit, combo, weight, cols)
        parts = [] if pending is None else [pending]
        parts.append(live.take(cols["keep"]))

        if sc.shadow is not None:
            is_control = np.flatnonzero(arm == CONTROL)
            u = shadow_s["shadow"].random((3, len(is_control)))
            chosen = is_control[(u[0] < sc.shadow.share) & (u[1] >= sc.shadow.missing_share)]
            if len(chosen):
                delay = sc.shadow.delay_median_s * np.exp(
                    sc.shadow.delay_sigma * shadow_s["shadow"].standard_normal(len(chosen))
                )
                sh_arm = np.full(len(chosen), SHADOW, dtype=np.int8)
                sh_cols = respond(plan, shadow_s, combo[chosen], sh_arm, t[chosen], cols["tokens_in"][chosen])
                sh_cols["thumbs"][:] = -1  # nobody sees a shadow answer: no user feedback
                shadow = _batch(
                    plan,
                    shadow_s,
                    t[chosen] + delay,
                    seq[chosen],
                    sh_arm,
                    unit[chosen],
                    combo[chosen],
                    weight[chosen],
                    sh_cols,
                    request_t=t[chosen],
                )
                parts.append(shadow.take(sh_cols["keep"]))
        merged = EventBatch.concat(parts) if len(parts) > 1 else parts[0]
        order = np.argsort(merged.t, kind="stable")
        merged = merged.take(order)
        cut = int(np.searchsorted(merged.t, t[-1], side="right"))
        if cut < len(merged):
            pending = merged.take(slice(cut, None))
            merged = merged.take(slice(0, cut))
        else:
            pending = None
        if len(merged):
            yield merged
    if pending is not None and len(pending):
        yield pending


def _batch(
    plan: Plan,
    s: Mapping[str, np.random.Generator],
    t: F64,
    seq: I64,
    arm: I8,
    unit: I64,
    combo: I64,
    weight: F64,
    cols: dict[str, Any],
    request_t: F64 | None = None,
) -> EventBatch:
    texts: list[str | None] | None = None
    if plan.text_generator is not None and plan.scenario.response_text is not None:
        rt = t if request_t is None else request_t
        matches = [inj.combo_match for inj in plan.injections]
        ctx = TextContext(
            plan.scenario,
            plan.segments,
            combo,
            arm,
            cols["status"],
            cols["tokens_out"],
            rt,
            text_markers(plan.scenario, matches, combo, arm, rt),
        )
        texts = plan.text_generator(ctx, s["text"])
        share = plan.scenario.response_text.share
        if share < 1.0:
            has = s["text"].random(len(t)) < share
            texts = [x if h else None for x, h in zip(texts, has.tolist(), strict=True)]
    return EventBatch(
        t=t,
        seq=seq,
        arm=arm,
        unit=unit,
        combo=combo,
        weight=weight,
        status=cols["status"],
        latency_ms=cols["latency_ms"],
        ttft_ms=cols["ttft_ms"],
        tokens_in=cols["tokens_in"],
        tokens_out=cols["tokens_out"],
        cost_usd=cols["cost_usd"],
        format_valid=cols["format_valid"],
        eval_score=cols["eval_score"],
        thumbs=cols["thumbs"],
        texts=texts,
    )


# ---- dicts -----------------------------------------------------------------------------------------
def generate(scenario: Scenario, arrival_times: npt.ArrayLike | None = None) -> Iterator[dict[str, Any]]:
    """Yield the scenario's v1 event dicts in event-time order, deterministically from ``scenario.seed``.

    ``arrival_times`` (seconds from the start) replays a recorded arrival process instead of the
    scenario's Poisson process.
    """
    plan = Plan(scenario, arrival_times)
    for batch in _batches(plan):
        yield from batch_to_dicts(plan, batch)


def batch_to_dicts(plan: Plan, batch: EventBatch) -> Iterator[dict[str, Any]]:
    sc = plan.scenario
    rid = sc.rollout_id
    req_prefix = f"{rid}:r"
    ev_prefix = (f"{rid}:c", f"{rid}:k", f"{rid}:s")  # control / canary / shadow: distinct event ids
    variants = (sc.control_variant, sc.canary_variant, sc.canary_variant)
    vp = sc.variant_parts
    parts = None if vp is None else (vp.control, vp.canary, vp.canary)
    segs = plan.segments
    uids = plan.unit_ids
    ts = np.round(sc.start_ts + batch.t, 3).tolist()
    lat = np.round(batch.latency_ms, 1).tolist()
    ttft = np.round(batch.ttft_ms, 1).tolist()
    cost = np.round(batch.cost_usd, 8).tolist()
    ev_score = np.round(batch.eval_score, 4).tolist()
    texts = batch.texts if batch.texts is not None else [None] * len(batch)
    for ts_i, s_i, a, u, c, w, st, lat_i, ttft_i, tin, tout, cost_i, fv, q_i, th, text in zip(
        ts,
        batch.seq.tolist(),
        batch.arm.tolist(),
        batch.unit.tolist(),
        batch.combo.tolist(),
        batch.weight.tolist(),
        batch.status.tolist(),
        lat,
        ttft,
        batch.tokens_in.tolist(),
        batch.tokens_out.tolist(),
        cost,
        batch.format_valid.tolist(),
        ev_score,
        batch.thumbs.tolist(),
        texts,
        strict=True,
    ):
        ev: dict[str, Any] = {
            "event_id": f"{ev_prefix[a]}{s_i}",
            "request_id": f"{req_prefix}{s_i}",
            "ts": ts_i,
            "rollout_id": rid,
            "arm": ARM_NAMES[a],
            "variant": variants[a],
            "segment": segs[c].copy(),
            "unit_id": uids[u],
            "canary_weight": w,
            "status": STATUS_NAMES[st],
            "latency_ms": lat_i,
            "tokens_in": tin,
            "cost_usd": cost_i,
        }
        if tout >= 0:
            ev["tokens_out"] = tout
            ev["ttft_ms"] = ttft_i
        if fv >= 0:
            ev["format_valid"] = fv == 1
        if q_i == q_i:  # not NaN
            ev["quality"] = {"eval_score": q_i} if th < 0 else {"eval_score": q_i, "thumbs": th}
        elif th >= 0:
            ev["quality"] = {"thumbs": th}
        if text is not None:
            ev["response_text"] = text
        if parts is not None:
            ev["variant_parts"] = parts[a].copy()
        yield ev


# ---- helpers ---------------------------------------------------------------------------------------
def sample_requests(
    scenario: Scenario,
    n: int,
    t: float,
    arm: str = "canary",
    cohort: Mapping[str, str] | None = None,
    seed: int = 0,
    injections: bool = True,
) -> dict[str, Any]:
    """``n`` responses of one arm at scenario time ``t``, segments drawn by their shares within
    ``cohort``: columns as in :class:`EventBatch` (``status`` codes 0 ok, 1 error, 2 timeout, 3 refusal).

    Independent of the event stream: used to know a metric's distribution before and after an
    injection (e.g. by the oracle CUSUM baseline) without simulating a whole rollout.
    """
    plan = Plan(scenario)
    match = np.ones(plan.n_combos, dtype=bool)
    names = [d.name for d in plan.dims]
    for key, value in (cohort or {}).items():
        j = names.index(key)
        match &= plan.combo_values[:, j] == plan.dims[j].values.index(value)
    if not match.any():
        raise ScenarioError(f"cohort {dict(cohort or {})} matches no segment combination")
    p = np.where(match, plan.combo_prob, 0.0)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([scenario.seed, seed, 7919])))
    combo = _draw_categorical(rng, p / p.sum(), n)
    streams = {
        name: np.random.Generator(np.random.PCG64(np.random.SeedSequence([scenario.seed, seed, i])))
        for i, name in enumerate(_STREAMS)
    }
    arm_code = np.full(n, ARM_NAMES.index(arm), dtype=np.int8)
    active = None if injections else ()
    cols = respond(plan, streams, combo, arm_code, np.full(n, float(t)), injections=active)
    cols["combo"] = combo
    return cols


def write_jsonl(events: Iterable[Mapping[str, Any]], path: str | Path) -> int:
    """Write events as JSON lines with orjson; returns the number of events written."""
    n = 0
    dumps = orjson.dumps
    opt = orjson.OPT_APPEND_NEWLINE
    with open(path, "wb", buffering=1 << 20) as fh:
        write = fh.write
        for ev in events:
            write(dumps(ev, option=opt))
            n += 1
    return n


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Read back a JSON-lines file of events (one object per line)."""
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                yield orjson.loads(line)


def merge_streams(*streams: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Merge several rollouts' event streams into one, in event-time order."""
    import heapq

    return heapq.merge(*streams, key=lambda ev: float(ev["ts"]))
