"""Shadow (dual-write) comparison: the new model answers copies of live requests nobody sees.

:class:`ShadowPairer` joins each ``arm: "shadow"`` event with the live event of the same
``request_id``. A partner may lag by up to ``max_wait_s`` of event time; after that the waiting event is
counted as unpaired (``unpaired_live``: the shadow copy never came; ``unpaired_shadow``: the live
event never came) and dropped, and a partner that shows up later still is counted as
``late_partners``. At most ``max_pending`` events wait at any time (the oldest is evicted and counted
beyond that), so memory is bounded whatever the loss or reordering. A rollout's pairer starts with its
first shadow event (rollouts without shadow traffic hold nothing), so copies of the few requests answered
just before it count as ``unpaired_shadow``.

:class:`ShadowComparison` turns pairs into per-cohort *paired* sequential tests, one per difference:

======================  ==========================================  =========================
metric                  per-pair difference (shadow - live)          margin (default)
======================  ==========================================  =========================
shadow.latency_ms       log latency (ok answers)                     +10 % (log 1.1)
shadow.tokens_out       log tokens_out (ok answers)                  +15 %
shadow.cost_usd         log cost (ok answers)                        +10 %
shadow.failure_rate     1{error or timeout}                          +0.5 points
shadow.refusal_rate     1{refusal}                                   +1 point
shadow.embedding        feature vector of the answer embedding       distance 0.25
======================  ==========================================  =========================

Pairing cancels the request-to-request variation that dominates an unpaired comparison. The scalar
tests are one-sample normal-mixture confidence sequences on the mean difference (rates with a
Laplace-smoothed variance floor); the embedding test is the Mahalanobis confidence ball of
:mod:`rollguard.stats.mahalanobis_cs` on the mean feature difference, in standard deviations of the
paired differences. Verdicts read like the canary's ("shadow diverges from live in
input_class=coding"), with phase ``shadow``, so shadow results are usable before any user sees the
new model.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from rollguard.domain.cohorts import WHOLE, CohortRegistry, segment_slots
from rollguard.domain.events import Event
from rollguard.domain.verdicts import Evidence, VerdictChange, VerdictState
from rollguard.settings.embeddings import ShadowSettings
from rollguard.settings.engine import EngineSettings
from rollguard.settings.segments import SegmentSettings
from rollguard.stats.confseq import normal_mixture_halfwidth, regularised_bernoulli_variance
from rollguard.stats.mahalanobis_cs import (
    distance_cs,
    log_e_value_beyond,
    mahalanobis_norm,
    optimal_ball_tau2,
)
from rollguard.stats.moments import Moments
from rollguard.stats.vector_moments import VectorMoments

FloatArray = npt.NDArray[np.float64]
STATES: Final = (VerdictState.INSUFFICIENT, VerdictState.NON_INFERIOR, VerdictState.REGRESSED)
LOG_METRICS: Final = ("latency_ms", "tokens_out", "cost_usd")
RATE_METRICS: Final = ("failure_rate", "refusal_rate")
SCALAR_METRICS: Final = LOG_METRICS + RATE_METRICS


@dataclass(slots=True)
class Half:
    """What the comparison needs of one side of a pair (no text is kept once it is embedded)."""

    event_id: str
    ts: float
    status: str
    latency_ms: float | None
    tokens_out: float | None
    cost_usd: float | None
    text: str | None
    embedding: list[float] | None
    segment: dict[str, str]

    @classmethod
    def of(cls, ev: Event, keep_text: bool) -> Half:
        return cls(ev.event_id, ev.ts, ev.status, ev.latency_ms, ev.tokens_out, ev.cost_usd,
                   ev.response_text if keep_text else None, ev.response_embedding, ev.segment)  # fmt: skip

    def to_state(self) -> list[Any]:
        return [self.event_id, self.ts, self.status, self.latency_ms, self.tokens_out, self.cost_usd,
                self.text, self.embedding, self.segment]  # fmt: skip

    @classmethod
    def from_state(cls, s: list[Any]) -> Half:
        return cls(str(s[0]), float(s[1]), str(s[2]), s[3], s[4], s[5], s[6], s[7], dict(s[8]))


@dataclass(slots=True)
class Pair:
    request_id: str
    live: Half
    shadow: Half


class ShadowPairer:
    """Joins live and shadow events by ``request_id`` within a bounded wait (event time)."""

    def __init__(self, settings: ShadowSettings, keep_text: bool = True) -> None:
        self.max_wait_s = settings.max_wait_s
        self.max_pending = settings.max_pending
        self.keep_text = keep_text
        # request_id -> (is_shadow, half); insertion order = arrival order, so expiry pops from the front
        self.pending: OrderedDict[str, tuple[bool, Half]] = OrderedDict()
        self.gone: OrderedDict[str, None] = OrderedDict()  # recently given up: to recognise late partners
        self.counters = {"live": 0, "shadow": 0, "paired": 0, "unpaired_live": 0, "unpaired_shadow": 0,
                         "late_partners": 0, "evicted": 0, "duplicates": 0}  # fmt: skip

    def add(self, ev: Event) -> Pair | None:
        """Take a live or shadow event; returns the pair it completes, if any."""
        is_shadow = ev.arm == "shadow"
        self.counters["shadow" if is_shadow else "live"] += 1
        self.expire(ev.ts)
        rid = ev.request_id
        waiting = self.pending.get(rid)
        if waiting is not None:
            if waiting[0] == is_shadow:
                self.counters["duplicates"] += 1  # a second live (or shadow) answer: keep the first
                return None
            del self.pending[rid]
            self.counters["paired"] += 1
            half = Half.of(ev, self.keep_text)
            return Pair(rid, waiting[1], half) if is_shadow else Pair(rid, half, waiting[1])
        if rid in self.gone:
            self.counters["late_partners"] += 1
            return None
        if len(self.pending) >= self.max_pending:
            old_rid, (old_shadow, _) = self.pending.popitem(last=False)
            self.counters["evicted"] += 1
            self.counters["unpaired_shadow" if old_shadow else "unpaired_live"] += 1
            self._remember(old_rid)
        self.pending[rid] = (is_shadow, Half.of(ev, self.keep_text))
        return None

    def expire(self, now: float) -> None:
        """Give up on events that waited more than ``max_wait_s`` of event time."""
        limit = now - self.max_wait_s
        pending = self.pending
        while pending:
            rid, (is_shadow, half) = next(iter(pending.items()))
            if half.ts >= limit:
                break
            del pending[rid]
            self.counters["unpaired_shadow" if is_shadow else "unpaired_live"] += 1
            self._remember(rid)

    def _remember(self, rid: str) -> None:
        self.gone[rid] = None
        if len(self.gone) > self.max_pending:
            self.gone.popitem(last=False)

    def to_state(self) -> dict[str, Any]:
        return {
            "v": 1,
            "pending": [[rid, s, h.to_state()] for rid, (s, h) in self.pending.items()],
            "gone": list(self.gone),
            "counters": dict(self.counters),
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], settings: ShadowSettings, keep_text: bool = True
    ) -> ShadowPairer:
        if state.get("v") != 1:
            raise ValueError(f"unsupported pairer state version {state.get('v')!r}")
        p = cls(settings, keep_text)
        p.pending = OrderedDict((str(r), (bool(s), Half.from_state(h))) for r, s, h in state["pending"])
        p.gone = OrderedDict((str(r), None) for r in state["gone"])
        p.counters = {k: int(v) for k, v in state["counters"].items()}
        return p


def pair_differences(pair: Pair) -> dict[str, float]:
    """Per-pair differences shadow - live (log scale for positive quantities; absent when undefined)."""
    live, sh = pair.live, pair.shadow
    out: dict[str, float] = {
        "failure_rate": float(sh.status in ("error", "timeout")) - float(live.status in ("error", "timeout")),
        "refusal_rate": float(sh.status == "refusal") - float(live.status == "refusal"),
    }
    if live.status == "ok" and sh.status == "ok":
        for name in LOG_METRICS:
            a, b = getattr(live, name), getattr(sh, name)
            if a is not None and b is not None and a > 0 and b > 0:
                out[name] = math.log(b) - math.log(a)
    return out


@dataclass
class _PairCohort:
    scalars: dict[str, Moments] = field(default_factory=lambda: {m: Moments() for m in SCALAR_METRICS})
    live_log: dict[str, Moments] = field(default_factory=lambda: {m: Moments() for m in LOG_METRICS})
    nonzero: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RATE_METRICS, 0))
    states: dict[str, int] = field(default_factory=dict)
    emb: VectorMoments | None = None
    cos: Moments = field(default_factory=Moments)


class ShadowComparison:
    """Paired sequential tests of shadow against live, per cohort of one rollout."""

    def __init__(self, rollout_id: str, settings: ShadowSettings, segments: SegmentSettings | None = None,
                 engine: EngineSettings | None = None) -> None:  # fmt: skip
        self.rollout_id = rollout_id
        self.settings = settings
        self.segments = segments or SegmentSettings()
        eng = engine or EngineSettings()
        self.registry = CohortRegistry(eng.max_cohorts_per_rollout)
        self.dims: list[str] = list(self.segments.dimensions or [])
        n_tests = len(SCALAR_METRICS) + 1
        share = eng.whole_rollout_alpha_share
        self.alpha_whole = settings.alpha * share / n_tests
        self.alpha_segment = (
            settings.alpha * (1 - share) / (n_tests * max(eng.max_cohorts_per_rollout - 1, 1))
        )
        self.cohorts: dict[int, _PairCohort] = {}
        self.touched: set[int] = set()
        self.cohort_ttl_s = eng.cohort_ttl_s

    def _slots(self, seg: dict[str, str], ts: float) -> list[int]:
        reg = self.registry
        out = [reg.slot(WHOLE, ts)]  # slot 0, born at the first pair (state stays finite JSON)
        out += segment_slots(reg, seg, ts, self.dims, self.segments)
        for c in reg.live():
            if c.slot in out:
                c.last_seen = ts
        return out

    def observe_scalars(self, pair: Pair) -> None:
        diffs = pair_differences(pair)
        for slot in self._slots(pair.live.segment, pair.shadow.ts):
            c = self.cohorts.get(slot)
            if c is None:
                c = self.cohorts[slot] = _PairCohort()
            for name, d in diffs.items():
                c.scalars[name].update(d)
                if name in RATE_METRICS:
                    c.nonzero[name] += d != 0.0
                else:
                    c.live_log[name].update(math.log(getattr(pair.live, name)))
            self.touched.add(slot)

    def observe_embeddings(self, ts: float, segment: dict[str, str], diff: FloatArray, weight: float,
                           cosine_distance: float) -> None:  # fmt: skip
        """One pair's feature difference (shadow - live) with its sampling weight ``1/p``."""
        for slot in self._slots(segment, ts):
            c = self.cohorts.get(slot)
            if c is None:
                c = self.cohorts[slot] = _PairCohort()
            if c.emb is None:
                c.emb = VectorMoments(diff.shape[0])
            c.emb.update_many(diff[None, :], np.array([weight]))
            c.cos.update(cosine_distance)
            self.touched.add(slot)

    def evaluate(self, now: float, counters: dict[str, int]) -> list[VerdictChange]:
        out: list[VerdictChange] = []
        for slot in sorted(self.touched):
            c = self.cohorts.get(slot)
            if c is None:
                continue
            alpha = self.alpha_whole if slot == 0 else self.alpha_segment
            for name in SCALAR_METRICS:
                out.extend(self._scalar(now, slot, c, name, alpha, counters))
            if c.emb is not None:
                out.extend(self._embedding(now, slot, c, alpha, counters))
        self.touched.clear()
        for gone in self.registry.expire(now, self.cohort_ttl_s):
            self.cohorts.pop(gone.slot, None)
        return out

    def _scalar(self, now: float, slot: int, c: _PairCohort, name: str, alpha: float,
                counters: dict[str, int]) -> list[VerdictChange]:  # fmt: skip
        m = c.scalars[name]
        if m.n < self.settings.min_pairs:
            return []
        margin_cfg = self.settings.margins[name]
        if name in LOG_METRICS:
            margin = math.log1p(margin_cfg)
            var = m.variance
        else:
            margin = margin_cfg
            var = max(m.variance, regularised_bernoulli_variance(c.nonzero[name], m.n))
        tau2 = margin * margin
        h = normal_mixture_halfwidth(max(var, 1e-12) / m.n, tau2, alpha)
        lo, hi = m.mean - h, m.mean + h
        prev = c.states.get(name, -1)
        state = 2 if prev == 2 or lo > margin else 1 if hi < margin else 0
        if state == prev:
            return []
        c.states[name] = state
        if name in LOG_METRICS:
            live = math.exp(c.live_log[name].mean)
            shadow = math.exp(c.live_log[name].mean + m.mean)
            rel = math.expm1(m.mean)
        else:
            live, shadow, rel = 0.0, m.mean, 0.0
        gap = (m.mean - margin) if m.mean > margin else 0.0
        v = max(var, 1e-12) / m.n
        stat = 0.5 * math.log(v / (v + tau2)) + tau2 * gap * gap / (2 * v * (v + tau2))
        evidence = Evidence(
            n_control=m.n, n_canary=m.n, control=live, canary=shadow, effect=m.mean, relative_effect=rel,
            interval=(lo - margin, hi - margin), margin=margin_cfg, margin_relative=name in LOG_METRICS,
            statistic=stat, threshold=math.log(1 / alpha), alpha=alpha,
            method="paired-mixture-cs" + ("(log)" if name in LOG_METRICS else ""),
            extra={"pairs": m.n, **_pair_counts(counters)},
        )  # fmt: skip
        return [self._change(now, slot, f"shadow.{name}", state, prev, evidence.to_dict())]

    def _embedding(self, now: float, slot: int, c: _PairCohort, alpha: float,
                   counters: dict[str, int]) -> list[VerdictChange]:  # fmt: skip
        emb = c.emb
        assert emb is not None
        if emb.n < self.settings.min_pairs:
            return []
        k = emb.dim
        margin = self.settings.margins["embedding"]
        tau2 = optimal_ball_tau2(margin, alpha, k)
        v = 1.0 / emb.n_eff
        cov = emb.covariance
        dist = mahalanobis_norm(emb.mean, cov, 1e-3 * float(np.trace(cov)) / k + 1e-12)
        lo, hi = distance_cs(dist, v, tau2, alpha, k)
        prev = c.states.get("embedding", -1)
        state = 2 if prev == 2 or lo > margin else 1 if hi < margin else 0
        if state == prev:
            return []
        c.states["embedding"] = state
        evidence = Evidence(
            n_control=emb.n, n_canary=emb.n, control=0.0, canary=dist, effect=dist,
            relative_effect=dist / margin, interval=(lo - margin, hi - margin), margin=margin,
            margin_relative=False, statistic=log_e_value_beyond(dist, margin, v, tau2, k),
            threshold=math.log(1 / alpha), alpha=alpha, method="paired-mahalanobis-mixture-cs",
            extra={"pairs": emb.n, "n_eff": emb.n_eff, "features": k,
                   "mean_pair_cosine_distance": c.cos.mean, **_pair_counts(counters)},
        )  # fmt: skip
        return [self._change(now, slot, "shadow.embedding", state, prev, evidence.to_dict())]

    def _change(self, now: float, slot: int, metric: str, state: int, prev: int,
                evidence: dict[str, Any]) -> VerdictChange:  # fmt: skip
        cohort = next(c for c in self.registry.live() if c.slot == slot)
        previous = None if prev < 0 else STATES[prev].value
        return VerdictChange("verdict", now, self.rollout_id, cohort.key, dict(cohort.scope), metric,
                             "shadow", STATES[state].value, previous, evidence)  # fmt: skip

    def to_state(self) -> dict[str, Any]:
        return {
            "v": 1,
            "registry": self.registry.to_state(),
            "dims": list(self.dims),
            "cohorts": {
                str(slot): {
                    "scalars": {k: m.to_state() for k, m in c.scalars.items()},
                    "live_log": {k: m.to_state() for k, m in c.live_log.items()},
                    "nonzero": dict(c.nonzero),
                    "states": dict(c.states),
                    "emb": None if c.emb is None else c.emb.to_state(),
                    "cos": c.cos.to_state(),
                }
                for slot, c in self.cohorts.items()
            },
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], rollout_id: str, settings: ShadowSettings,
                   segments: SegmentSettings | None = None, engine: EngineSettings | None = None,
                   ) -> ShadowComparison:  # fmt: skip
        if state.get("v") != 1:
            raise ValueError(f"unsupported shadow comparison state version {state.get('v')!r}")
        self = cls(rollout_id, settings, segments, engine)
        self.registry = CohortRegistry.from_state(state["registry"])
        self.dims = list(state["dims"])
        self.cohorts = {}
        for slot, raw in state["cohorts"].items():
            c = _PairCohort()
            c.scalars = {k: Moments.from_state(v) for k, v in raw["scalars"].items()}
            c.live_log = {k: Moments.from_state(v) for k, v in raw["live_log"].items()}
            c.nonzero = {k: int(v) for k, v in raw["nonzero"].items()}
            c.states = {k: int(v) for k, v in raw["states"].items()}
            c.emb = None if raw["emb"] is None else VectorMoments.from_state(raw["emb"])
            c.cos = Moments.from_state(raw["cos"])
            self.cohorts[int(slot)] = c
        return self


def _pair_counts(counters: dict[str, int]) -> dict[str, int]:
    keys = ("paired", "unpaired_live", "unpaired_shadow", "late_partners", "evicted")
    return {k: counters[k] for k in keys if k in counters}
