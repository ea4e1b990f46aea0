"""Semantic drift of one rollout: do the canary's answers *mean* something else than the control's?

Per cohort (the whole rollout, each segment value, configured crosses: the same cohorts and slot
budget as the scalar metrics), each arm's sampled response embeddings are mapped by a frozen
:class:`~rollguard.embeddings.features.FeatureMap` (principal components, codebook memberships,
novelty) and accumulated as Horvitz-Thompson-weighted mean vectors and covariances
(:class:`~rollguard.stats.VectorMoments`: O(k²) numbers per arm, whatever the traffic).

The drift is the Mahalanobis distance between the arms' feature means, in standard deviations. Its
anytime-valid confidence sequence (:func:`rollguard.stats.mahalanobis_cs.distance_cs`, a k-dimensional
normal mixture) gives the three verdict states of every other metric against a margin: **regressed**
when the whole interval lies beyond the margin, **non_inferior** when it lies inside, otherwise
**insufficient** (with an estimate of the samples still needed). The interval may be read after every
batch at no cost in false alarms; ``alpha`` is split over the cohort slots like the scalar metrics'.

A change in the middle of a canary is diluted in cumulative means by the minutes before it, so half
of each cohort's α goes to a **recent-window** test: every ``onset_step_s`` a new window starts (a
snapshot of the running sums), each is tested by the same mixture on its own data until it is
``onset_window_s`` old, and Ville's inequality with a union over the ``onset_horizon_s / onset_step_s``
possible starts keeps the false-alarm probability within the horizon below α (the e-detector idea of
Shin, Ramdas & Rinaldo, arXiv:2203.03532, with a k-dimensional normal mixture per start). A window
alarm turns the verdict to regressed with ``window: "recent"`` in the evidence.

Metrics: ``semantic_drift`` (canary vs concurrent control) and, when an approved reference set applies,
``semantic_drift.reference`` (canary vs reference; the reference mean gets a fixed-sample ball).
The evidence carries numbers only (sample sizes, distance, interval, the cosine distance between arm
centroids, the codebook cluster whose share moved most): never response text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from rollguard.domain.cohorts import WHOLE, CohortRegistry, segment_slots
from rollguard.domain.verdicts import Evidence, VerdictChange, VerdictState
from rollguard.embeddings.features import FeatureMap
from rollguard.embeddings.reference import ReferenceSet
from rollguard.settings.embeddings import EmbeddingSettings
from rollguard.settings.engine import EngineSettings
from rollguard.settings.segments import SegmentSettings
from rollguard.stats.mahalanobis_cs import (
    ball_radius,
    chi2_upper_bound,
    distance_cs,
    log_e_value_beyond,
    optimal_ball_tau2,
)
from rollguard.stats.vector_moments import VectorMoments

FloatArray = npt.NDArray[np.float64]
CONTROL: Final = 0
CANARY: Final = 1
STATES: Final = (VerdictState.INSUFFICIENT, VerdictState.NON_INFERIOR, VerdictState.REGRESSED)
REGRESSED: Final = 2
METHOD: Final = "mahalanobis-mixture-cs(pca+codebook+novelty)"


@dataclass
class _Cohort:
    """Running statistics of one cohort slot (both arms)."""

    arms: list[VectorMoments]
    sums: FloatArray  # (2, d) weighted sums of raw embeddings: centroid cosine distance
    weights: FloatArray  # (2,)
    clusters: FloatArray  # (2, K) weighted codebook counts: which cluster moved
    state: int = -1
    ref: VectorMoments | None = None
    ref_state: int = -1
    # recent windows: (start time, per-arm [n, w, w2, Σ w·x] at that time); the window is now - snapshot
    starts: list[tuple[float, FloatArray]] = field(default_factory=list)
    min_p: float = 1.0  # running min of the always-valid p-value of "no drift at all" (margin 0)
    fresh: int = 0  # samples since the tests were last read


class SemanticMonitor:
    """One rollout's semantic drift tests; feed embedded samples with :meth:`observe`."""

    def __init__(
        self,
        rollout_id: str,
        settings: EmbeddingSettings,
        segments: SegmentSettings | None = None,
        engine: EngineSettings | None = None,
        reference: ReferenceSet | None = None,
    ) -> None:
        self.rollout_id = rollout_id
        self.settings = settings
        self.segments = segments or SegmentSettings()
        eng = engine or EngineSettings()
        self.cohort_ttl_s = eng.cohort_ttl_s
        self.registry = CohortRegistry(eng.max_cohorts_per_rollout)
        self.dims: list[str] = list(self.segments.dimensions or [])
        self.reference = reference if reference is not None and len(reference) >= 4 else None
        n_tests = 2 if self.reference is not None else 1
        share = eng.whole_rollout_alpha_share
        slots = max(eng.max_cohorts_per_rollout - 1, 1)
        self.alpha_whole = settings.alpha * share / n_tests
        self.alpha_segment = settings.alpha * (1.0 - share) / (n_tests * slots)
        self.fmap: FeatureMap | None = None
        self.tau2: dict[str, float] = {}  # set when the feature map (and so k) is known
        self.n_starts = max(1.0, settings.onset_horizon_s / settings.onset_step_s)
        self.warm: list[npt.NDArray[np.float32]] = []
        self.cohorts: dict[int, _Cohort] = {}
        self.touched: set[int] = set()
        self.counters = {"observed": 0, "warmup_used": 0, "warmup_skipped": 0}
        seed = settings.seed + sum(rollout_id.encode())  # deterministic per rollout
        self._seed = seed
        if self.reference is not None and len(self.reference) >= 2 * settings.codebook_size:
            self._fit(self.reference.vectors)

    # ------------------------------------------------------------------ data in
    def observe(
        self,
        ts: float,
        arms: npt.ArrayLike,
        segments: list[dict[str, str]],
        vectors: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
    ) -> None:
        """Add embedded samples (rows of ``vectors``, L2-normalised) with their arm and weight ``1/p``."""
        arm = np.asarray(arms, dtype=np.int8)
        x = np.asarray(vectors, dtype=np.float32)
        w = np.ones(len(arm)) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(arm) == 0:
            return
        self.counters["observed"] += len(arm)
        if self.fmap is None:
            ctl = x[arm == CONTROL]
            self.counters["warmup_skipped"] += int((arm != CONTROL).sum())
            if len(ctl):
                self.warm.append(ctl)
                self.counters["warmup_used"] += len(ctl)
            if sum(len(b) for b in self.warm) >= self.settings.warmup:
                self._fit(np.concatenate(self.warm))
                self.warm = []
            return
        fmap = self.fmap
        feats, assign = fmap.transform(x)
        members: dict[int, list[int]] = {}
        cache: dict[tuple[tuple[str, str], ...], list[int]] = {}
        for i, seg in enumerate(segments):
            key = tuple(sorted(seg.items()))
            slots = cache.get(key)
            if slots is None:
                slots = cache[key] = self._slots(seg, ts)
            for s in slots:
                members.setdefault(s, []).append(i)
        xd = x.astype(np.float64)
        for slot, rows in members.items():
            c = self.cohorts.get(slot)
            if c is None:
                c = self.cohorts[slot] = self._new_cohort(slot)
            idx = np.asarray(rows)
            if not c.starts or ts >= c.starts[-1][0] + self.settings.onset_step_s:
                c.starts.append((ts, _snapshot(c)))
            horizon = ts - self.settings.onset_window_s
            while c.starts and c.starts[0][0] < horizon:
                c.starts.pop(0)
            for a in (CONTROL, CANARY):
                sel = idx[arm[idx] == a]
                if len(sel) == 0:
                    continue
                ws = w[sel]
                c.arms[a].update_many(feats[sel], ws)
                c.sums[a] += ws @ xd[sel]
                c.weights[a] += ws.sum()
                np.add.at(c.clusters[a], assign[sel], ws)
            c.fresh += len(idx)
            self.touched.add(slot)

    def _fit(self, x: npt.ArrayLike) -> None:
        s = self.settings
        self.fmap = FeatureMap.fit(x, s.pca_components, s.codebook_size, self._seed)
        self._set_tau2()

    def _set_tau2(self) -> None:
        """Mixing variances: the cumulative test resolves one margin from it, a window two margins
        (a window sees only recent data, so it is there for changes that are not small)."""
        assert self.fmap is not None
        k, m, n = self.fmap.dim, self.settings.margin, self.n_starts
        for name, a in (("whole", self.alpha_whole), ("segment", self.alpha_segment)):
            self.tau2[name] = optimal_ball_tau2(m, a / 2, k)
            self.tau2["window." + name] = optimal_ball_tau2(2 * m, a / 2 / n, k)

    def _new_cohort(self, slot: int) -> _Cohort:
        assert self.fmap is not None
        k, d, kc = self.fmap.dim, self.fmap.input_dim, self.fmap.n_clusters
        c = _Cohort([VectorMoments(k), VectorMoments(k)], np.zeros((2, d)), np.zeros(2), np.zeros((2, kc)))
        if self.reference is not None:
            rows = self.reference.matching(self._cohort(slot).scope)
            if len(rows) >= self.settings.min_samples:
                ref = VectorMoments(k)
                ref.update_many(self.fmap.transform(rows)[0])
                c.ref = ref
        return c

    def _slots(self, seg: dict[str, str], ts: float) -> list[int]:
        reg = self.registry
        out = [reg.slot(WHOLE, ts)]  # slot 0, born at the first answer (state stays finite JSON)
        out += segment_slots(reg, seg, ts, self.dims, self.segments)
        by_slot = {c.slot: c for c in reg.live()}
        for s in out:
            by_slot[s].last_seen = ts
        return out

    def _cohort(self, slot: int) -> Any:
        return next(c for c in self.registry.live() if c.slot == slot)

    # ------------------------------------------------------------------ verdicts out
    def evaluate(self, now: float, phase: str = "canary", force: bool = False) -> list[VerdictChange]:
        """Re-read the tests of the cohorts that grew by ``min(25 samples, 5 %)`` since their last
        reading (all touched ones with ``force``); returns the state changes. Skipping a look never
        costs validity (the intervals hold at all times); it only saves work on busy cohorts."""
        out: list[VerdictChange] = []
        for slot in sorted(self.touched):
            c = self.cohorts.get(slot)
            if c is None:
                self.touched.discard(slot)
                continue
            if not force and c.fresh < min(25.0, max(1.0, 0.05 * (c.arms[0].n + c.arms[1].n))):
                continue
            c.fresh = 0
            self.touched.discard(slot)
            out.extend(self._evaluate_drift(now, phase, slot, c))
            if c.ref is not None:
                out.extend(self._evaluate_reference(now, phase, slot, c))
        for gone in self.registry.expire(now, self.cohort_ttl_s):
            self.cohorts.pop(gone.slot, None)
        return out

    def _alpha_tau2(self, slot: int) -> tuple[float, float]:
        """The slot's α (both tests together) and the cumulative test's τ²."""
        if slot == 0:
            return self.alpha_whole, self.tau2["whole"]
        return self.alpha_segment, self.tau2["segment"]

    def _evaluate_drift(self, now: float, phase: str, slot: int, c: _Cohort) -> list[VerdictChange]:
        ctl, can = c.arms
        s = self.settings
        if ctl.n < s.min_samples or can.n < s.min_samples:
            return []
        alpha_slot, tau2 = self._alpha_tau2(slot)
        alpha = alpha_slot / 2  # the other half: the recent windows
        k = ctl.dim
        ne_c, ne_t = ctl.n_eff, can.n_eff
        v = 1.0 / ne_t + 1.0 / ne_c
        inv = _inverse(_effective_covariance([(can, ne_t), (ctl, ne_c)], k) / v)
        diff = can.mean - ctl.mean
        dist = math.sqrt(max(float(diff @ inv @ diff), 0.0))
        lo, hi = distance_cs(dist, v, tau2, alpha, k)
        state = _state(lo, hi, s.margin, c.state)
        window, log_e0_window = None, -math.inf
        if state != REGRESSED:
            window, log_e0_window = self._window_alarm(c, inv, slot, now)
        # both halves against "no drift at all" (Bonferroni over the two): how close to any difference
        p_cum = math.exp(-max(log_e_value_beyond(dist, 0.0, v, tau2, k), 0.0))
        p_win = self.n_starts * math.exp(-max(log_e0_window, 0.0))
        c.min_p = min(c.min_p, 1.0, 2.0 * min(p_cum, p_win))
        if window is not None:
            state = REGRESSED
        if state == c.state:
            return []
        prev, c.state = c.state, state
        if window is not None:
            return [self._change(now, phase, slot, "semantic_drift", state, prev, window)]
        more = None
        if state == 0:
            more = _samples_to_decide(dist, s.margin, v, tau2, alpha, k, ctl.n + can.n)
        evidence = Evidence(
            n_control=ctl.n, n_canary=can.n, control=0.0, canary=dist, effect=dist,
            relative_effect=dist / s.margin, interval=(lo - s.margin, hi - s.margin), margin=s.margin,
            margin_relative=False, statistic=log_e_value_beyond(dist, s.margin, v, tau2, k),
            threshold=math.log(1.0 / alpha), alpha=alpha, method=METHOD, samples_to_decide=more,
            extra={"n_eff_control": ne_c, "n_eff_canary": ne_t, "features": k, "p_value_no_drift": c.min_p,
                   "centroid_cosine_distance": _cosine_distance(c.sums[CANARY], c.sums[CONTROL]),
                   **_moved_cluster(c.clusters)},
        )  # fmt: skip
        return [self._change(now, phase, slot, "semantic_drift", state, prev, evidence.to_dict())]

    def _window_alarm(
        self, c: _Cohort, inv: FloatArray, slot: int, now: float
    ) -> tuple[dict[str, Any] | None, float]:
        """Evidence of the strongest recent window whose e-value crossed its threshold (else None), and
        the largest log e-value of any window against "no drift at all"."""
        if not c.starts:
            return None, -math.inf
        s = self.settings
        k = c.arms[0].dim
        alpha = (self.alpha_whole if slot == 0 else self.alpha_segment) / 2
        tau2 = self.tau2["window.whole" if slot == 0 else "window.segment"]
        threshold = math.log(self.n_starts / alpha)
        win = _snapshot(c)[None] - np.stack([snap for _, snap in c.starts])  # (starts, arm, [n, w, w2, Σwx])
        use = win[:, :, 0].min(axis=1) >= s.min_samples / 2
        if not use.any():
            return None, -math.inf
        win = win[use]
        ne = win[:, :, 1] ** 2 / np.maximum(win[:, :, 2], 1e-300)
        v = 1.0 / ne[:, CANARY] + 1.0 / ne[:, CONTROL]
        diff = win[:, CANARY, 3:] / win[:, CANARY, 1:2] - win[:, CONTROL, 3:] / win[:, CONTROL, 1:2]
        dist = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", diff, inv, diff), 0.0))
        gap = np.maximum(dist - s.margin, 0.0)
        penalty = -0.5 * k * np.log1p(tau2 / v)
        e = penalty + tau2 * gap * gap / (2.0 * v * (v + tau2))
        e0 = float((penalty + tau2 * dist * dist / (2.0 * v * (v + tau2))).max())
        best = int(np.argmax(e))
        if e[best] < threshold:
            return None, e0
        start = [t for t, _ in c.starts][int(np.flatnonzero(use)[best])]
        d, vb, wb = float(dist[best]), float(v[best]), win[best]
        lo, hi = distance_cs(d, vb, tau2, alpha / self.n_starts, k)
        return Evidence(
            n_control=int(wb[CONTROL, 0]), n_canary=int(wb[CANARY, 0]), control=0.0, canary=d, effect=d,
            relative_effect=d / s.margin, interval=(lo - s.margin, hi - s.margin), margin=s.margin,
            margin_relative=False, statistic=float(e[best]), threshold=threshold, alpha=alpha,
            method="windowed-" + METHOD,
            extra={"window": "recent", "window_s": now - start, "features": k, "starts": self.n_starts},
        ).to_dict(), e0  # fmt: skip

    def _evaluate_reference(self, now: float, phase: str, slot: int, c: _Cohort) -> list[VerdictChange]:
        can, ref = c.arms[CANARY], c.ref
        s = self.settings
        assert ref is not None
        if can.n < s.min_samples:
            return []
        alpha, _ = self._alpha_tau2(slot)
        tau2 = self.tau2["whole" if slot == 0 else "segment"]
        k = can.dim
        ne_t, n_ref = can.n_eff, float(ref.n)
        v = 1.0 / ne_t + 1.0 / n_ref
        inv = _inverse(_effective_covariance([(can, ne_t), (ref, n_ref)], k) / v)
        diff = can.mean - ref.mean
        dist = math.sqrt(max(float(diff @ inv @ diff), 0.0))
        # canary mean: anytime ball at α/2; reference mean (fixed sample): χ² ball at α/2
        r = ball_radius(1.0 / ne_t, tau2, alpha / 2, k) + math.sqrt(chi2_upper_bound(k, alpha / 2) / n_ref)
        lo, hi = max(0.0, dist - r), dist + r
        state = _state(lo, hi, s.margin, c.ref_state)
        if state == c.ref_state:
            return []
        prev, c.ref_state = c.ref_state, state
        evidence = Evidence(
            n_control=ref.n, n_canary=can.n, control=0.0, canary=dist, effect=dist,
            relative_effect=dist / s.margin, interval=(lo - s.margin, hi - s.margin), margin=s.margin,
            margin_relative=False, statistic=dist - r - s.margin, threshold=0.0, alpha=alpha,
            method=METHOD + "+reference-chi2",
            extra={"n_eff_canary": ne_t, "features": k, "arm": "reference"},
        )  # fmt: skip
        return [self._change(now, phase, slot, "semantic_drift.reference", state, prev, evidence.to_dict())]

    def _change(self, now: float, phase: str, slot: int, metric: str, state: int, prev: int,
                evidence: dict[str, Any]) -> VerdictChange:  # fmt: skip
        cohort = self._cohort(slot)
        previous = None if prev < 0 else STATES[prev].value
        return VerdictChange("verdict", now, self.rollout_id, cohort.key, dict(cohort.scope), metric, phase,
                             STATES[state].value, previous, evidence)  # fmt: skip

    def no_drift_p_values(self) -> dict[str, float]:
        """Per cohort, the always-valid p-value (running min) of "the arms' answers do not differ at all".

        Stricter than the verdicts (which also need the drift to exceed the margin): on A/A traffic
        ``P(p <= a) <= a`` for every level ``a``, which is what the benchmarks check.
        """
        keys = {c.slot: c.key for c in self.registry.live()}
        return {keys[slot]: c.min_p for slot, c in sorted(self.cohorts.items()) if slot in keys}

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """JSON-compatible state (the reference set is reloaded from ``models/``, not stored)."""
        return {
            "v": 1,
            "rollout_id": self.rollout_id,
            "registry": self.registry.to_state(),
            "dims": list(self.dims),
            "fmap": None if self.fmap is None else self.fmap.to_state(),
            "warm": [b.tolist() for b in self.warm],
            "touched": sorted(self.touched),
            "counters": dict(self.counters),
            "cohorts": {
                str(slot): {
                    "arms": [a.to_state() for a in c.arms],
                    "sums": c.sums.tolist(),
                    "weights": c.weights.tolist(),
                    "clusters": c.clusters.tolist(),
                    "state": c.state,
                    "ref_state": c.ref_state,
                    "starts": [[t, snap.tolist()] for t, snap in c.starts],
                    "min_p": c.min_p,
                    "fresh": c.fresh,
                }
                for slot, c in self.cohorts.items()
            },
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        settings: EmbeddingSettings,
        segments: SegmentSettings | None = None,
        engine: EngineSettings | None = None,
        reference: ReferenceSet | None = None,
    ) -> SemanticMonitor:
        if state.get("v") != 1:
            raise ValueError(f"unsupported semantic monitor state version {state.get('v')!r}")
        m = cls(str(state["rollout_id"]), settings, segments, engine, reference)
        m.registry = CohortRegistry.from_state(state["registry"])
        m.dims = list(state["dims"])
        if state["fmap"] is not None:
            m.fmap = FeatureMap.from_state(state["fmap"])
            m._set_tau2()
        m.warm = [np.asarray(b, dtype=np.float32) for b in state["warm"]]
        m.touched = {int(s) for s in state["touched"]}
        m.counters = {k: int(v) for k, v in state["counters"].items()}
        m.cohorts = {}
        for slot_s, raw in state["cohorts"].items():
            slot = int(slot_s)
            c = m._new_cohort(slot)
            c.arms = [VectorMoments.from_state(a) for a in raw["arms"]]
            c.sums = np.asarray(raw["sums"], dtype=np.float64)
            c.weights = np.asarray(raw["weights"], dtype=np.float64)
            c.clusters = np.asarray(raw["clusters"], dtype=np.float64)
            c.state, c.ref_state = int(raw["state"]), int(raw["ref_state"])
            c.starts = [(float(t), np.asarray(snap, dtype=np.float64)) for t, snap in raw["starts"]]
            c.min_p = float(raw["min_p"])
            c.fresh = int(raw["fresh"])
            m.cohorts[slot] = c
        return m


def _state(lo: float, hi: float, margin: float, current: int) -> int:
    if current == REGRESSED or lo > margin:
        return REGRESSED  # sticky, like the scalar verdicts
    if hi < margin:
        return 1
    return 0


def _snapshot(c: _Cohort) -> FloatArray:
    """Per arm ``[n, w, w2, Σ w·x]``: running sums that a window subtracts from later ones."""
    k = c.arms[0].dim
    out = np.zeros((2, k + 3))
    for a, m in enumerate(c.arms):
        out[a, 0], out[a, 1], out[a, 2] = m.n, m.w, m.w2
        out[a, 3:] = m.w * m.mean
    return out


def _effective_covariance(parts: list[tuple[VectorMoments, float]], k: int) -> FloatArray:
    """``Σ S_i' / n_i`` with each arm's covariance shrunk toward the pooled one by ``2k`` pseudo-samples.

    Early on the small arm's covariance is noisy (and singular below k samples); pulling it toward the
    pooled estimate is exact under the null (equal covariances) and keeps the ball honest meanwhile.
    """
    total_n = sum(n for _, n in parts)
    pooled = sum((n * m.covariance for m, n in parts), np.zeros((k, k))) / total_n
    n0 = 2.0 * k
    out = np.zeros((k, k))
    for m, n in parts:
        shrunk = (n * m.covariance + n0 * pooled) / (n + n0)
        out += shrunk / n
    return out


def _inverse(cov: FloatArray) -> FloatArray:
    """Inverse of the covariance with a small ridge (a feature that barely varies must not dominate)."""
    k = int(cov.shape[0])
    ridged = cov + (1e-3 * float(np.trace(cov)) / k + 1e-12) * np.eye(k)
    try:
        out = np.linalg.inv(ridged)
    except np.linalg.LinAlgError:
        out = np.linalg.pinv(ridged, hermitian=True)
    return np.asarray(out, dtype=np.float64)


def _cosine_distance(a: FloatArray, b: FloatArray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return 0.0
    return 1.0 - float(a @ b) / (na * nb)


def _moved_cluster(clusters: FloatArray) -> dict[str, float]:
    """The codebook cluster whose share differs most between the arms (numbers only)."""
    tot = clusters.sum(axis=1, keepdims=True)
    if (tot <= 0).any():
        return {}
    share = clusters / tot
    j = int(np.abs(share[CANARY] - share[CONTROL]).argmax())
    return {"cluster": j, "cluster_share_canary": float(share[CANARY, j]),
            "cluster_share_control": float(share[CONTROL, j])}  # fmt: skip


def _samples_to_decide(
    dist: float, margin: float, v: float, tau2: float, alpha: float, k: int, n_now: int
) -> float | None:
    """More samples (both arms, current split) until the ball is narrower than the gap to the margin."""
    gap = abs(dist - margin)
    if gap <= 1e-12 * max(1.0, margin):
        return None
    lo_log, hi_log = math.log(v) - 60.0, math.log(v)
    for _ in range(100):
        mid = 0.5 * (lo_log + hi_log)
        if ball_radius(math.exp(mid), tau2, alpha, k) <= gap:
            lo_log = mid
        else:
            hi_log = mid
    factor = v / math.exp(lo_log)
    return float(math.ceil(max(0.0, factor - 1.0) * n_now))
