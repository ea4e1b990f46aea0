"""One rollout's monitor: cohorts, running statistics per arm, verdicts, SRM, drift and phases.

Events are folded into micro-batches of ``batch_seconds`` of event time; a batch closes when an event
at or past its end arrives (late events join the open batch and are counted), so batch membership
is a pure function of the input order and a replay reproduces every decision. At the close, every
cohort's statistics are updated with numpy and every test is re-read: the confidence sequences are
valid at all times simultaneously, so reading them after every batch costs no false alarms.

Phases: **canary** (control and canary concurrent) compares the arms; **post_rollout** (the new
version at 100%, detected from ``canary_weight == 1`` or set in config) compares each cohort against
the control's statistics frozen at promotion; ``arm: "shadow"`` events are kept apart (counted here,
paired by the embedding/shadow module).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from rollguard.detect.batch import (
    ARM_CANARY,
    ARM_CONTROL,
    EventColumns,
    FloatArray,
    IntArray,
    aggregate,
    merge_moments,
)
from rollguard.detect.budget import AlphaBudget
from rollguard.detect.comparisons import (
    ArmSummary,
    absolute_margin,
    compare_means,
    compare_quantiles,
    contrast_scale,
)
from rollguard.detect.drift import CusumBank, cusum_threshold, grid_updates
from rollguard.detect.onset import MULTIPLIERS, PairedCusum, split_llr
from rollguard.domain.cohorts import WHOLE, CohortRegistry, segment_slots
from rollguard.domain.events import Event
from rollguard.domain.metrics import CONTINUOUS_FIELDS, TAIL_FIELDS, MetricSpec
from rollguard.domain.verdicts import DriftState, HealthState, VerdictChange, VerdictState
from rollguard.settings.config import Config
from rollguard.stats import (
    LogHistogram,
    SampleRatioTest,
    difference_cs_many,
    regularised_bernoulli_variance,
)
from rollguard.stats.unit_filter import UnitFilter

STATE_CODE: Final = {VerdictState.INSUFFICIENT: 0, VerdictState.NON_INFERIOR: 1, VerdictState.REGRESSED: 2}
CODE_STATE: Final = {v: k for k, v in STATE_CODE.items()}
RATE_COLUMNS: Final = {"error": (1, 0), "timeout": (2, 0), "refusal": (3, 0), "format_invalid": (5, 4)}
# Mean contrasts of the onset CUSUM are formed from blocks of at least this many values per arm.
BLOCK_MIN: Final = 30
# Tail histograms: 2% relative accuracy between 1 µs-equivalent and 10^7 (ms or tokens).
HIST_ACCURACY: Final = 0.02


@dataclass(slots=True)
class MeanTest:
    """Running state of one mean-type metric (rates included) across cohort slots."""

    spec: MetricSpec
    read: Callable[[int], tuple[FloatArray, FloatArray, FloatArray]]  # arm -> n, mean, variance
    state: npt.NDArray[np.int8]
    tau2: FloatArray
    drift: CusumBank
    post: CusumBank
    onset: PairedCusum
    alpha_whole: float  # this test's share of α for the whole-rollout cohort ...
    alpha_segment: float  # ... and for each segment cohort


class RolloutMonitor:
    """All state of one rollout; everything it decides is a function of the events it was given."""

    def __init__(self, rollout_id: str, config: Config) -> None:
        self.rollout_id = rollout_id
        self.cfg = config
        eng = config.engine
        settings = config.rollout(rollout_id)
        self.intended_weight = settings.canary_weight
        self.phase = "canary" if settings.phase == "auto" else settings.phase
        self.auto_phase = settings.phase == "auto"
        self.promoted_at: float | None = None
        # Which arms are present: the newest control request and the canary requests since (phase).
        self.last_control_ts = -math.inf
        self.canary_run = 0
        self.registry = CohortRegistry(eng.max_cohorts_per_rollout)
        self.registry.slot(WHOLE, -math.inf)
        self.dims: list[str] = list(config.segments.dimensions or [])
        self.cap = 8
        self.counts = np.zeros((self.cap, 2, 6), dtype=np.int64)
        self.moments = np.zeros((self.cap, 2, len(CONTINUOUS_FIELDS), 3))
        self.quality: dict[str, FloatArray] = {}
        self.hists: dict[str, list[list[LogHistogram] | None]] = {f: [None] * self.cap for f in TAIL_FIELDS}
        self._template = LogHistogram(HIST_ACCURACY)
        self.buffer: list[Event] = []
        self.batch_start: float | None = None
        # A batch closes once it spans batch_seconds *and* holds min_batch_events, or at the latest
        # after max_batch_seconds: verdicts are re-read at least that often, and the per-batch work is
        # spread over enough events to keep the per-event cost low at any traffic rate.
        self.batch_seconds = eng.batch_seconds
        self.min_batch_events = eng.min_batch_events
        self.max_batch_seconds = max(eng.max_batch_seconds, eng.batch_seconds)
        self.batch_end_ts = -math.inf
        self.watermark = -math.inf
        self.canary_variant: str | None = None
        self.counters = {"events": 0, "shadow": 0, "late": 0, "batches": 0, "quality_keys_refused": 0}
        # Budget: α over slots × metric tests; the whole rollout gets its own share.
        self.budget = AlphaBudget(config)
        # Change detectors fold evidence on an event-time grid, so their horizons count grid cells.
        self.cusum_grid_s = eng.cusum_grid_s
        self.onset_horizon = grid_updates(eng.canary_horizon_s, self.cusum_grid_s)
        self.tests: dict[str, MeanTest] = {}
        for spec in config.metrics:
            if spec.enabled and spec.kind in ("rate", "mean"):
                self._add_mean_test(spec)
        self.tail_specs = [m for m in config.metrics if m.enabled and m.kind == "quantile"]
        self.tail_onset = {
            spec.name: PairedCusum(
                self.cap,
                self.onset_horizon,
                self.budget.of(spec)[0] / 2,
                self.budget.of(spec)[1] / 2,
                self.cusum_grid_s,
            )
            for spec in self.tail_specs
        }
        self.tail_state: dict[tuple[int, str], tuple[VerdictState, int]] = {}
        self.srm = SampleRatioTest(config.srm_alpha)
        self.health = HealthState.HEALTHY
        self.units = UnitFilter(eng.unit_filter_bits)
        # Reference snapshots for drift (control's early history) and post-rollout (at promotion).
        self.baseline: dict[str, tuple[FloatArray, FloatArray, FloatArray]] = {}
        self.baseline_hists: dict[tuple[int, str], LogHistogram] = {}

    # ------------------------------------------------------------------ metric tables
    def _add_mean_test(self, spec: MetricSpec) -> None:
        if spec.kind == "rate":
            num, den = RATE_COLUMNS[spec.field]

            def read_rate(
                arm: int, num: int = num, den: int = den
            ) -> tuple[FloatArray, FloatArray, FloatArray]:
                n = self.counts[:, arm, den].astype(np.float64)
                k = self.counts[:, arm, num].astype(np.float64)
                return n, k / np.maximum(n, 1.0), regularised_bernoulli_variance(k, n)

            read: Callable[[int], tuple[FloatArray, FloatArray, FloatArray]] = read_rate
            kind = "bernoulli"
        elif spec.field.startswith("quality."):
            key = spec.field[len("quality.") :]

            def read_quality(arm: int, key: str = key) -> tuple[FloatArray, FloatArray, FloatArray]:
                m = self.quality[key][:, arm, :]
                return m[:, 0], m[:, 1], m[:, 2] / np.maximum(m[:, 0] - 1.0, 1.0)

            read = read_quality
            kind = "gaussian"
        else:
            j = CONTINUOUS_FIELDS.index(spec.field)

            def read_moment(arm: int, j: int = j) -> tuple[FloatArray, FloatArray, FloatArray]:
                m = self.moments[:, arm, j, :]
                return m[:, 0], m[:, 1], m[:, 2] / np.maximum(m[:, 0] - 1.0, 1.0)

            read = read_moment
            kind = "gaussian"
        eng = self.cfg.engine
        a_whole, a_seg = self.budget.of(spec)
        grid = self.cusum_grid_s
        drift_h = cusum_threshold(grid_updates(eng.drift_horizon_s, grid), a_seg)
        post_h = cusum_threshold(grid_updates(eng.post_rollout_period_s, grid), a_seg / 2)
        self.tests[spec.name] = MeanTest(
            spec,
            read,
            np.full(self.cap, -1, dtype=np.int8),
            np.full(self.cap, np.nan),
            CusumBank(kind, self.cap, drift_h, grid),
            CusumBank(kind, self.cap, post_h, grid),
            PairedCusum(self.cap, self.onset_horizon, a_whole / 2, a_seg / 2, grid),
            a_whole,
            a_seg,
        )

    def _grow(self, needed: int) -> None:
        if needed <= self.cap:
            return
        new = max(needed, self.cap * 2)
        pad = new - self.cap
        self.counts = np.concatenate([self.counts, np.zeros((pad, 2, 6), dtype=np.int64)])
        self.moments = np.concatenate([self.moments, np.zeros((pad, *self.moments.shape[1:]))])
        for key, arr in self.quality.items():
            self.quality[key] = np.concatenate([arr, np.zeros((pad, 2, 3))])
        for lst in self.hists.values():
            lst.extend([None] * pad)
        for t in self.tests.values():
            t.state = np.concatenate([t.state, np.full(pad, -1, dtype=np.int8)])
            t.tau2 = np.concatenate([t.tau2, np.full(pad, np.nan)])
            t.drift.grow(new)
            t.post.grow(new)
            t.onset.grow(new)
        for bank in self.tail_onset.values():
            bank.grow(new)
        self.cap = new

    # ------------------------------------------------------------------ event path
    def process(self, ev: Event) -> list[VerdictChange]:
        """Take one event; returns the verdict changes of any batch it closed."""
        out: list[VerdictChange] = []
        if ev.arm == "shadow":
            self.counters["shadow"] += 1
            return out
        if ev.arm == "canary" and ev.variant is not None:
            self.canary_variant = ev.variant
        ts = ev.ts
        start = self.batch_start
        if start is None:
            self.batch_start = ts - ts % self.batch_seconds
        elif ts >= start + self.batch_seconds and (
            len(self.buffer) >= self.min_batch_events or ts >= start + self.max_batch_seconds
        ):
            out.extend(self.flush())
            self.batch_start = ts - ts % self.batch_seconds
        elif ts < start:
            self.counters["late"] += 1
        self.buffer.append(ev)
        if ts > self.watermark:
            self.watermark = ts
        return out

    # ------------------------------------------------------------------ batch close
    def flush(self) -> list[VerdictChange]:
        """Close the open batch: update every cohort and re-read every test."""
        if not self.buffer:
            return []
        cols = EventColumns.of(self.buffer)
        self.buffer = []
        self.counters["events"] += len(cols)
        self.counters["batches"] += 1
        now = float(cols.ts.max())
        self.batch_end_ts = now
        changes: list[VerdictChange] = []
        reason = self._arms_present(cols, now)
        if self.auto_phase and self.phase == "canary" and reason:
            changes.extend(self._promote(now, reason))
        rows, members, touched = self._memberships(cols, now)
        n_rows = self.cap * 2
        continuous = cols.continuous()
        index = {f: self._template.index_many(np.nan_to_num(continuous[f], nan=-1.0)) for f in TAIL_FIELDS}
        for f in TAIL_FIELDS:
            index[f][np.isnan(continuous[f])] = -1
        for key in cols.quality:
            self._quality_slot(key)
        quality_cols = {k: v for k, v in cols.quality.items() if k in self.quality}
        cols.quality = quality_cols
        nb = {f: self._template.n_buckets for f in TAIL_FIELDS}
        agg = aggregate(rows, members, n_rows, cols, continuous, index, nb)
        batch_counts = agg.counts.reshape(self.cap, 2, 6)
        batch_moments = agg.moments.reshape(self.cap, 2, len(CONTINUOUS_FIELDS), 3)
        if self.phase == "post_rollout":
            # Control traffic after promotion (stragglers) must not touch the frozen baseline.
            batch_counts[:, ARM_CONTROL] = 0
            batch_moments[:, ARM_CONTROL] = 0
        if self.phase == "canary":
            live = np.zeros(self.cap, dtype=bool)
            for c in self.registry.live():
                live[c.slot] = True
            quality_batch = {k: v.reshape(self.cap, 2, 3) for k, v in agg.quality.items()}
            changes.extend(self._onset(now, live, batch_counts, batch_moments, quality_batch))
            changes.extend(self._tail_onset(now, live, rows, members, continuous))
        self.counts += batch_counts
        merge_moments(self.moments, batch_moments)
        batch_quality = {}
        for key, sums in agg.quality.items():
            q = sums.reshape(self.cap, 2, 3)
            if self.phase == "post_rollout":
                q[:, ARM_CONTROL] = 0
            merge_moments(self.quality[key], q)
            batch_quality[key] = q
        for f, counts in agg.bucket_counts.items():
            per = counts.reshape(self.cap, 2, -1)
            for slot in touched:
                for arm in (ARM_CONTROL, ARM_CANARY):
                    if arm == ARM_CONTROL and self.phase == "post_rollout":
                        continue
                    row = per[slot, arm]
                    if row.any():
                        self._hist(f, slot, arm).add_bucket_counts(row)
        if self.phase != "post_rollout":
            changes.extend(self._srm(cols, now))
        changes.extend(self._evaluate(now, batch_counts, batch_moments, batch_quality))
        for cohort in self.registry.expire(now, self.cfg.engine.cohort_ttl_s):
            self._forget(cohort.slot)
        return changes

    def _memberships(self, cols: EventColumns, now: float) -> tuple[IntArray, IntArray, list[int]]:
        """Each event's cohort slots (whole rollout, one per dimension, one per grouping) as rows.

        Slots are looked up once per distinct segment combination in the batch (in order of first
        appearance, so slot numbers follow the events), then spread over the events with numpy.
        """
        segments = cols.segments
        n = len(segments)
        keys = list(map(tuple, map(dict.items, segments)))
        first: dict[tuple[tuple[str, str], ...], int] = {}
        firsts = list(map(first.setdefault, keys, range(n)))  # each event's combination, by first event
        combos = list(first.values())
        table = [self._slots_of(segments[i], now) for i in combos]
        self._grow(self.registry.next_slot)
        width = max(map(len, table))
        slot_table = np.full((len(table), width), -1, dtype=np.int64)
        for j, these in enumerate(table):
            slot_table[j, : len(these)] = these
        combo_of = np.searchsorted(np.asarray(combos, dtype=np.int64), np.asarray(firsts, dtype=np.int64))
        per_event = slot_table[combo_of]  # (events, width), -1 past each event's last slot
        member, col = np.nonzero(per_event >= 0)  # event by event, slots in order
        arm = cols.arm
        rows = per_event[member, col] * 2 + arm[member]
        seen = sorted({s for these in table for s in these})
        by_slot = {c.slot: c for c in self.registry.live()}
        for s in seen:
            by_slot[s].last_seen = now
        return rows, member.astype(np.int64), seen

    def _slots_of(self, seg: dict[str, str], now: float) -> list[int]:
        """The slots a segment combination belongs to: the whole rollout, then its segment cohorts."""
        return [0, *segment_slots(self.registry, seg, now, self.dims, self.cfg.segments)]

    def _quality_slot(self, key: str) -> None:
        if key in self.quality:
            return
        if len(self.quality) >= self.cfg.engine.max_quality_keys:
            self.counters["quality_keys_refused"] += 1
            return
        spec = self.cfg.quality_spec(key)
        self.quality[key] = np.zeros((self.cap, 2, 3))
        if spec.enabled:
            self._add_mean_test(spec)

    def _hist(self, field: str, slot: int, arm: int) -> LogHistogram:
        pair = self.hists[field][slot]
        if pair is None:
            pair = [LogHistogram(HIST_ACCURACY), LogHistogram(HIST_ACCURACY)]
            self.hists[field][slot] = pair
        return pair[arm]

    def _forget(self, slot: int) -> None:
        self.counts[slot] = 0
        self.moments[slot] = 0
        for arr in self.quality.values():
            arr[slot] = 0
        for lst in self.hists.values():
            lst[slot] = None
        for t in self.tests.values():
            t.state[slot] = -1
            t.drift.disarm(slot)
            t.post.disarm(slot)
            t.onset.reset(slot)
        for bank in self.tail_onset.values():
            bank.reset(slot)
        self.tail_state = {k: v for k, v in self.tail_state.items() if k[0] != slot}

    # ------------------------------------------------------------------ SRM
    def _srm(self, cols: EventColumns, now: float) -> list[VerdictChange]:
        # The intended weight of each request (the event's, else the configured one); only units
        # seen for the first time count, and only while the split is a real one (0 < w < 1).
        weights = cols.weights
        if self.intended_weight is not None:
            weights = np.where(np.isnan(weights), self.intended_weight, weights)
        units = cols.units
        split = np.flatnonzero((weights > 0.0) & (weights < 1.0)).tolist()
        picked = [i for i in split if units[i] is not None]
        if not picked:
            return []
        first_seen = self.units.add_many([u for i in picked if (u := units[i]) is not None])
        new = np.asarray(picked, dtype=np.intp)[first_seen]
        if not new.size:
            return []
        is_canary = cols.arm[new] == ARM_CANARY
        weights = weights[new]
        self.srm.update_many(is_canary, weights)
        if self.health is HealthState.HEALTHY and self.srm.p_value < self.cfg.srm_alpha:
            self.health = HealthState.UNHEALTHY
            srm = self.srm
            evidence = {
                "units": srm.n,
                "observed_canary": srm.observed_canary,
                "expected_canary": srm.expected_canary,
                "observed_control": srm.observed_control,
                "expected_control": srm.expected_control,
                "observed_ratio": srm.observed_ratio,
                "p_value": srm.p_value,
                "alpha": self.cfg.srm_alpha,
                "method": "sequential-srm-mixture",
            }
            return [
                VerdictChange(
                    "srm", now, self.rollout_id, WHOLE, {}, "sample_ratio", self.phase,
                    HealthState.UNHEALTHY.value, HealthState.HEALTHY.value, _round(evidence),
                )
            ]  # fmt: skip
        return []

    # ------------------------------------------------------------------ phases
    def _arms_present(self, cols: EventColumns, now: float) -> str:
        """Why this batch shows the new version at 100% ("" if it does not).

        Either the events say so (a canary request with ``canary_weight`` 1), or the arms present
        do: the control has been silent for ``promotion_silence_s`` of event time while at least
        ``min_samples`` canary requests arrived (see :class:`rollguard.settings.engine.EngineSettings`).
        """
        ts = cols.ts
        canary = cols.arm == ARM_CANARY
        if (cols.weights[canary] >= 1.0).any():
            return "canary_weight reached 1.0"
        if not canary.all() and (newest := float(ts[~canary].max())) > self.last_control_ts:
            self.last_control_ts = newest
            self.canary_run = 0
        self.canary_run += int((canary & (ts > self.last_control_ts)).sum())
        eng = self.cfg.engine
        silence = now - self.last_control_ts
        if not (math.isfinite(silence) and silence >= eng.promotion_silence_s):
            return ""
        if self.canary_run < eng.min_samples:
            return ""
        return f"no control request for {silence:.0f} s while {self.canary_run} canary requests arrived"

    def promote(self, now: float, reason: str) -> list[VerdictChange]:
        """Enter the post-rollout phase now (an operator's or controller's word; the engine's API)."""
        if self.phase != "canary":
            return []
        return self._promote(now, reason)

    def _promote(self, now: float, reason: str) -> list[VerdictChange]:
        """Freeze each cohort's control statistics as its baseline; the canary starts afresh."""
        self.phase = "post_rollout"
        self.promoted_at = now
        for name, t in self.tests.items():
            n, mean, var = t.read(ARM_CONTROL)
            self.baseline[name] = (n.copy(), mean.copy(), var.copy())
            s = 1.0 if t.spec.higher_is_worse else -1.0
            for slot in range(self.registry.next_slot):
                if n[slot] < self.cfg.engine.min_samples:
                    continue
                scale = contrast_scale(t.spec, float(mean[slot]))
                reference = s * mean[slot] + math.sqrt(var[slot] / n[slot])  # plug-in + 1 SE (oriented)
                t.post.arm(slot, float(reference), scale, math.sqrt(max(var[slot], 1e-12)))
            t.state[:] = -1
        for f in TAIL_FIELDS:
            for slot, pair in enumerate(self.hists[f]):
                if pair is not None:
                    self.baseline_hists[(slot, f)] = pair[ARM_CONTROL]
                    self.hists[f][slot] = [LogHistogram(HIST_ACCURACY), LogHistogram(HIST_ACCURACY)]
        self.tail_state.clear()
        self.counts[:, ARM_CANARY] = 0
        self.moments[:, ARM_CANARY] = 0
        for arr in self.quality.values():
            arr[:, ARM_CANARY] = 0
        return [
            VerdictChange(
                "phase", now, self.rollout_id, WHOLE, {}, "", "post_rollout", "post_rollout", "canary",
                {"reason": reason, "baseline_cohorts": self.registry.next_slot},
            )
        ]  # fmt: skip

    # ------------------------------------------------------------------ evaluation
    def _alpha(self, slot: int, spec: MetricSpec) -> float:
        whole, segment = self.budget.of(spec)
        return whole if slot == 0 else segment

    def _evaluate(
        self,
        now: float,
        batch_counts: IntArray,
        batch_moments: FloatArray,
        batch_quality: dict[str, FloatArray],
    ) -> list[VerdictChange]:
        out: list[VerdictChange] = []
        if self.promoted_at is not None and now - self.promoted_at > self.cfg.engine.post_rollout_period_s:
            return out
        live = np.zeros(self.cap, dtype=bool)
        for c in self.registry.live():
            live[c.slot] = True
        min_n = self.cfg.engine.min_samples
        post = self.phase == "post_rollout"
        for name, t in self.tests.items():
            spec = t.spec
            n_t, mean_t, var_t = t.read(ARM_CANARY)
            if post:
                if name not in self.baseline:
                    continue
                n_c, mean_c, var_c = self.baseline[name]
                n_c, mean_c, var_c = _fit(n_c, self.cap), _fit(mean_c, self.cap), _fit(var_c, self.cap)
            else:
                n_c, mean_c, var_c = t.read(ARM_CONTROL)
            # Half of each test's α goes to the cumulative interval, half to the change detector
            # (the paired onset CUSUM in the canary phase, the baseline CUSUM after promotion).
            alpha_cs = np.full(self.cap, t.alpha_segment / 2)
            alpha_cs[0] = t.alpha_whole / 2
            ok = live & (n_t >= min_n) & (n_c >= min_n)
            if ok.any():
                fresh = ok & np.isnan(t.tau2)
                if fresh.any():
                    for slot in np.flatnonzero(fresh).tolist():
                        t.tau2[slot] = contrast_scale(spec, float(mean_c[slot])) ** 2
                new = _states(spec, n_t, mean_t, var_t, n_c, mean_c, var_c, t.tau2,
                              t.alpha_whole / 2, t.alpha_segment / 2)  # fmt: skip
                new = np.where(t.state == STATE_CODE[VerdictState.REGRESSED], t.state, new)
                changed = ok & (new != t.state)
                for slot in np.flatnonzero(changed).tolist():
                    state, evidence = compare_means(
                        spec,
                        ArmSummary(int(n_c[slot]), float(mean_c[slot]), float(var_c[slot])),
                        ArmSummary(int(n_t[slot]), float(mean_t[slot]), float(var_t[slot])),
                        float(alpha_cs[slot]),
                        float(t.tau2[slot]),
                    )
                    prev = int(t.state[slot])
                    t.state[slot] = STATE_CODE[state]
                    if prev == t.state[slot]:
                        continue
                    out.append(
                        self._change("verdict", now, slot, name, state.value, prev, evidence.to_dict())
                    )
            # Change detection against a frozen reference: drift of the control (canary phase) or
            # the new version against its baseline (post-rollout).
            k, n = _batch_values(
                spec, batch_counts, batch_moments, batch_quality, ARM_CANARY if post else ARM_CONTROL
            )
            s = 1.0 if spec.higher_is_worse else -1.0
            if post:
                fired = t.post.update(k if spec.kind == "rate" else s * k, n, now)
                for slot in np.flatnonzero(fired & live).tolist():
                    if t.state[slot] == STATE_CODE[VerdictState.REGRESSED]:
                        continue
                    prev = int(t.state[slot])
                    t.state[slot] = STATE_CODE[VerdictState.REGRESSED]
                    ev = t.post.evidence(slot)
                    ev.update({"n_canary": int(n_t[slot]), "alpha": float(alpha_cs[slot])})
                    out.append(self._change("verdict", now, slot, name, "regressed", prev, _round(ev)))
            else:
                self._arm_drift(t, now, n_c, mean_c, var_c)
                before = t.drift.alarm.copy()
                fired = t.drift.update(k if spec.kind == "rate" else s * k, n, now)
                for slot in np.flatnonzero(fired & live).tolist():
                    out.append(self._drift_change(now, slot, name, t, DriftState.DRIFTED))
                for slot in np.flatnonzero(t.drift.cleared(before) & live).tolist():
                    out.append(self._drift_change(now, slot, name, t, DriftState.STABLE))
        out.extend(self._evaluate_tails(now, live))
        return out

    def _onset(
        self,
        now: float,
        live: npt.NDArray[np.bool_],
        batch_counts: IntArray,
        batch_moments: FloatArray,
        batch_quality: dict[str, FloatArray],
    ) -> list[VerdictChange]:
        """Paired per-batch CUSUM of canary vs control (see :mod:`rollguard.detect.onset`)."""
        out: list[VerdictChange] = []
        min_n = self.cfg.engine.min_samples
        regressed = STATE_CODE[VerdictState.REGRESSED]
        for name, t in self.tests.items():
            spec = t.spec
            kt, nt_b = _batch_values(spec, batch_counts, batch_moments, batch_quality, ARM_CANARY)
            kc, nc_b = _batch_values(spec, batch_counts, batch_moments, batch_quality, ARM_CONTROL)
            n_t, mean_t, var_t = t.read(ARM_CANARY)
            n_c, mean_c, var_c = t.read(ARM_CONTROL)
            use = live & (nt_b > 0) & (nc_b > 0) & (n_t >= min_n) & (n_c >= min_n) & ~np.isnan(t.tau2)
            use &= t.state != regressed
            if not use.any():
                continue
            s = 1.0 if spec.higher_is_worse else -1.0
            lam = 1.0 + s * (spec.margin if spec.relative else 0.0)
            m_abs = absolute_margin(spec)
            step = np.sqrt(np.where(np.isnan(t.tau2), 1.0, t.tau2))
            if spec.kind == "rate":
                # How this batch's events split between the arms, given the control's running rate.
                p_c = (mean_c * n_c + 1.0) / (n_c + 2.0)
                base = lam * p_c + m_abs
                r0 = base / p_c
                r_alt = (base[:, None] + step[:, None] * MULTIPLIERS[None, :]) / p_c[:, None]
                llr = split_llr(kt, kc, nt_b, nc_b, r0, r_alt)
                fired = t.onset.update_llr(use, llr, now)
            else:
                sums = _batch_sums(spec, batch_moments, batch_quality)
                ready = t.onset.add_to_block(use, sums, BLOCK_MIN, now)
                if not ready.any():
                    continue
                block = t.onset.block
                with np.errstate(divide="ignore", invalid="ignore"):
                    nb_c, nb_t = block[:, ARM_CONTROL, 0], block[:, ARM_CANARY, 0]
                    xc = block[:, ARM_CONTROL, 1] / np.maximum(nb_c, 1.0)
                    xt = block[:, ARM_CANARY, 1] / np.maximum(nb_t, 1.0)
                    contrast = s * xt - s * lam * xc - m_abs
                    n_all = nb_c + nb_t
                    s_all = block[:, :, 1].sum(axis=1)
                    pooled = (
                        block[:, :, 2].sum(axis=1) - s_all * s_all / np.maximum(n_all, 1.0)
                    ) / np.maximum(n_all - 1.0, 1.0)
                    sigma2 = np.maximum(np.maximum(var_t, var_c), pooled)
                    variance = sigma2 * (1.0 / nb_t + lam * lam / nb_c)
                fired = t.onset.update(ready, contrast, variance, step, now)
                t.onset.clear_block(ready)
            for slot in np.flatnonzero(fired).tolist():
                prev = int(t.state[slot])
                t.state[slot] = regressed
                ev = t.onset.evidence(slot, float(step[slot]))
                ev.update({
                    "n_control": int(n_c[slot]), "n_canary": int(n_t[slot]),
                    "control": float(mean_c[slot]), "canary": float(mean_t[slot]),
                    "alpha": self._alpha(slot, spec) / 2, "margin": spec.margin,
                    "margin_relative": spec.relative,
                })  # fmt: skip
                out.append(self._change("verdict", now, slot, name, "regressed", prev, _round(ev)))
        return out

    def _tail_onset(
        self,
        now: float,
        live: npt.NDArray[np.bool_],
        rows: IntArray,
        members: IntArray,
        continuous: dict[str, FloatArray],
    ) -> list[VerdictChange]:
        """Paired CUSUM on tail exceedances (run before the batch joins the histograms).

        Per batch, canary responses above T = (1 + r)·q̂_p(control) + m against control responses
        above q̂_p(control): under "canary tail no worse than the margin" the canary exceeds T no more
        often than the control exceeds q̂, so how the batch's exceedances split between the arms is
        binomial with the canary's traffic share at most (rate ratio 1); a shift that hits both arms
        raises the control's count at least as much. q̂ is read from the control's histogram as it
        stood before this batch (a predictable threshold); the batch's raw values are then compared
        with q̂ and T exactly, event by event (``rows``/``members``: the batch's cohort memberships,
        ``continuous``: its value columns, NaN where the request did not succeed), so histogram
        bucketing costs this test nothing: the effective margin is exactly the configured one.
        Alternatives: exceedance ratios 1 + 0.5·{1, 2, 4, 8}.
        """
        out: list[VerdictChange] = []
        min_n = self.cfg.engine.min_samples
        slot_of = rows // 2
        is_canary = (rows % 2) == ARM_CANARY
        n_rows = self.cap * 2
        regressed = VerdictState.REGRESSED
        for spec in self.tail_specs:
            assert spec.quantile is not None
            bank = self.tail_onset[spec.name]
            r = spec.margin if spec.relative else 0.0
            m = absolute_margin(spec)
            q = np.full(self.cap, np.inf)
            for slot in np.flatnonzero(live).tolist():
                pair = self.hists[spec.field][slot]
                if pair is None or self.tail_state.get((slot, spec.name), (None, 0))[0] is regressed:
                    continue
                if pair[ARM_CONTROL].count < min_n or pair[ARM_CANARY].count < min_n:
                    continue
                q[slot] = pair[ARM_CONTROL].quantile(spec.quantile)
            if not np.isfinite(q).any():
                continue
            values = continuous[spec.field][members]
            present = ~np.isnan(values)
            bar = np.where(is_canary, (1.0 + r) * q[slot_of] + m, q[slot_of])
            hit = (present & (values > bar)).astype(np.float64)
            above = np.bincount(rows, weights=hit, minlength=n_rows).astype(np.float64).reshape(self.cap, 2)
            n = np.bincount(rows, weights=present, minlength=n_rows).astype(np.float64).reshape(self.cap, 2)
            use = np.isfinite(q) & (n[:, ARM_CANARY] > 0) & (n[:, ARM_CONTROL] > 0)
            if not use.any():
                continue
            # Under H0 the canary exceeds T no more often than the control exceeds q: ratio 1.
            r_alt = np.broadcast_to(1.0 + 0.5 * MULTIPLIERS, (self.cap, MULTIPLIERS.size))
            llr = split_llr(
                above[:, ARM_CANARY], above[:, ARM_CONTROL], n[:, ARM_CANARY], n[:, ARM_CONTROL],
                np.ones(self.cap), r_alt,
            )  # fmt: skip
            fired = bank.update_llr(use, llr, now)
            for slot in np.flatnonzero(fired).tolist():
                pair = self.hists[spec.field][slot]
                assert pair is not None
                prev_state = self.tail_state.get((slot, spec.name), (None, 0))[0]
                self.tail_state[(slot, spec.name)] = (VerdictState.REGRESSED, 0)
                ev = bank.evidence(slot, 0.5)
                ev.update({
                    "n_control": int(pair[ARM_CONTROL].count), "n_canary": int(pair[ARM_CANARY].count),
                    "control": pair[ARM_CONTROL].quantile(spec.quantile),
                    "canary": pair[ARM_CANARY].quantile(spec.quantile), "quantile": spec.quantile,
                    "alpha": self._alpha(slot, spec) / 2, "margin": spec.margin,
                    "margin_relative": spec.relative, "observation": "tail exceedance share",
                })  # fmt: skip
                prev = -1 if prev_state is None else STATE_CODE[prev_state]
                out.append(self._change("verdict", now, slot, spec.name, "regressed", prev, _round(ev)))
        return out

    def _arm_drift(
        self, t: MeanTest, now: float, n_c: FloatArray, mean_c: FloatArray, var_c: FloatArray
    ) -> None:
        """Freeze a cohort's control reference once it has a baseline window and enough samples."""
        eng = self.cfg.engine
        s = 1.0 if t.spec.higher_is_worse else -1.0
        for c in self.registry.live():
            slot = c.slot
            if t.drift.active[slot] or n_c[slot] < eng.min_samples:
                continue
            born = c.born if math.isfinite(c.born) else now
            if slot == 0 and not math.isfinite(c.born):
                c.born = now
                continue
            if now - born < eng.baseline_window_s:
                continue
            scale = contrast_scale(t.spec, float(mean_c[slot]))
            reference = s * mean_c[slot] + math.sqrt(var_c[slot] / n_c[slot])  # plug-in + 1 SE (oriented)
            t.drift.arm(slot, float(reference), scale, math.sqrt(max(var_c[slot], 1e-12)))

    def _evaluate_tails(self, now: float, live: npt.NDArray[np.bool_]) -> list[VerdictChange]:
        out: list[VerdictChange] = []
        min_n = self.cfg.engine.min_samples
        post = self.phase == "post_rollout"
        for spec in self.tail_specs:
            field = spec.field
            for slot in np.flatnonzero(live).tolist():
                pair = self.hists[field][slot]
                if pair is None:
                    continue
                canary = pair[ARM_CANARY]
                control = self.baseline_hists.get((int(slot), field)) if post else pair[ARM_CONTROL]
                if control is None or canary.count < min_n or control.count < min_n:
                    continue
                key = (int(slot), spec.name)
                prev_state, last_n = self.tail_state.get(key, (None, 0))
                n_now = int(canary.count + control.count)
                # Re-read a tail when its evidence grew by 5%: the quantile search is the costly test.
                if prev_state is VerdictState.REGRESSED or (prev_state is not None and n_now < last_n * 1.05):
                    continue
                alpha = self._alpha(int(slot), spec) / 2  # the other half: the tail onset CUSUM
                state, evidence = compare_quantiles(spec, control, canary, alpha)
                self.tail_state[key] = (state, n_now)
                if state is not prev_state:
                    prev_code = -1 if prev_state is None else STATE_CODE[prev_state]
                    out.append(self._change("verdict", now, int(slot), spec.name, state.value, prev_code,
                                            evidence.to_dict()))  # fmt: skip
        return out

    def _change(
        self, kind: str, now: float, slot: int, metric: str, state: str, prev: int, evidence: dict[str, Any]
    ) -> VerdictChange:
        cohort = next(c for c in self.registry.live() if c.slot == slot)
        previous = None if prev < 0 else CODE_STATE[prev].value
        return VerdictChange(kind, now, self.rollout_id, cohort.key, dict(cohort.scope), metric, self.phase,
                             state, previous, evidence)  # fmt: skip

    def _drift_change(
        self, now: float, slot: int, metric: str, t: MeanTest, state: DriftState
    ) -> VerdictChange:
        cohort = next(c for c in self.registry.live() if c.slot == slot)
        previous = DriftState.STABLE if state is DriftState.DRIFTED else DriftState.DRIFTED
        ev = _round(t.drift.evidence(slot))
        ev["arm"] = "control"
        scope = dict(cohort.scope)
        return VerdictChange("drift", now, self.rollout_id, cohort.key, scope, metric, self.phase,
                             state.value, previous.value, ev)  # fmt: skip

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """Everything this monitor knows, as JSON-compatible data (for a changelog-backed table).

        Bounded whatever the traffic: arrays sized by the cohort budget, sparse histograms, a fixed
        Bloom filter, and the open batch (at most ``max_batch_seconds`` of events).
        """

        def hist_pairs(pairs: list[list[LogHistogram] | None]) -> list[Any]:
            return [None if p is None else [h.to_state() for h in p] for p in pairs]

        return {
            "v": 1,
            "rollout_id": self.rollout_id,
            "phase": self.phase,
            "promoted_at": self.promoted_at,
            "last_control_ts": _finite(self.last_control_ts),
            "canary_run": self.canary_run,
            "dims": list(self.dims),
            "cap": self.cap,
            "counts": self.counts.tolist(),
            "moments": self.moments.tolist(),
            "quality": {k: v.tolist() for k, v in self.quality.items()},
            "hists": {f: hist_pairs(p) for f, p in self.hists.items()},
            "buffer": [ev.to_dict() for ev in self.buffer],
            "batch_start": self.batch_start,
            "batch_end_ts": _finite(self.batch_end_ts),
            "watermark": _finite(self.watermark),
            "canary_variant": self.canary_variant,
            "counters": dict(self.counters),
            "registry": self.registry.to_state(),
            "tests": {
                name: {
                    "state": t.state.tolist(),
                    "tau2": [None if math.isnan(x) else x for x in t.tau2.tolist()],
                    "drift": t.drift.to_state(),
                    "post": t.post.to_state(),
                    "onset": t.onset.to_state(),
                }
                for name, t in self.tests.items()
            },
            "tail_state": [[s, n, st.value, k] for (s, n), (st, k) in self.tail_state.items()],
            "tail_onset": {name: bank.to_state() for name, bank in self.tail_onset.items()},
            "srm": self.srm.to_state(),
            "health": self.health.value,
            "units": self.units.to_state(),
            "baseline": {k: [a.tolist() for a in v] for k, v in self.baseline.items()},
            "baseline_hists": [[s, f, h.to_state()] for (s, f), h in self.baseline_hists.items()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: Config) -> RolloutMonitor:
        """Rebuild a monitor from :meth:`to_state` output under the same config."""
        from rollguard.domain.events import parse_event

        mon = cls(str(state["rollout_id"]), config)
        mon.phase = str(state["phase"])
        mon.promoted_at = state["promoted_at"]
        mon.last_control_ts = _infinite(state.get("last_control_ts"))
        mon.canary_run = int(state.get("canary_run", 0))
        mon.dims = list(state["dims"])
        mon._grow(int(state["cap"]))
        mon.counts = np.asarray(state["counts"], dtype=np.int64)
        mon.moments = np.asarray(state["moments"], dtype=np.float64)
        mon.registry = CohortRegistry.from_state(state["registry"])
        for key, arr in state["quality"].items():
            mon._quality_slot(key)
            mon.quality[key] = np.asarray(arr, dtype=np.float64)
        for f, pairs in state["hists"].items():
            mon.hists[f] = [None if p is None else [LogHistogram.from_state(h) for h in p] for p in pairs]
        mon.buffer = []
        for raw in state["buffer"]:
            ev = parse_event(raw)
            assert isinstance(ev, Event)
            mon.buffer.append(ev)
        mon.batch_start = state["batch_start"]
        mon.batch_end_ts = _infinite(state["batch_end_ts"])
        mon.watermark = _infinite(state["watermark"])
        mon.canary_variant = state["canary_variant"]
        mon.counters = {k: int(v) for k, v in state["counters"].items()}
        for name, ts in state["tests"].items():
            t = mon.tests[name]
            t.state = np.asarray(ts["state"], dtype=np.int8)
            t.tau2 = np.asarray([math.nan if x is None else x for x in ts["tau2"]], dtype=np.float64)
            t.drift = CusumBank.from_state(ts["drift"])
            t.post = CusumBank.from_state(ts["post"])
            t.onset = PairedCusum.from_state(ts["onset"])
        mon.tail_state = {(int(s), str(n)): (VerdictState(st), int(k)) for s, n, st, k in state["tail_state"]}
        mon.tail_onset = {name: PairedCusum.from_state(b) for name, b in state["tail_onset"].items()}
        mon.srm = SampleRatioTest.from_state(state["srm"])
        mon.health = HealthState(state["health"])
        mon.units = UnitFilter.from_state(state["units"])
        mon.baseline = {
            k: (
                np.asarray(a, dtype=np.float64),
                np.asarray(b, dtype=np.float64),
                np.asarray(c, dtype=np.float64),
            )
            for k, (a, b, c) in state["baseline"].items()
        }
        mon.baseline_hists = {
            (int(s), str(f)): LogHistogram.from_state(h) for s, f, h in state["baseline_hists"]
        }
        return mon


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _infinite(x: float | None) -> float:
    return -math.inf if x is None else float(x)


def _fit(arr: FloatArray, cap: int) -> FloatArray:
    if arr.size >= cap:
        return arr[:cap]
    return np.concatenate([arr, np.zeros(cap - arr.size)])


def _round(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (float(f"{v:.6g}") if isinstance(v, float) and math.isfinite(v) else v) for k, v in d.items()}


def _states(
    spec: MetricSpec,
    n_t: FloatArray,
    mean_t: FloatArray,
    var_t: FloatArray,
    n_c: FloatArray,
    mean_c: FloatArray,
    var_c: FloatArray,
    tau2: FloatArray,
    alpha_whole: float,
    alpha_segment: float,
) -> npt.NDArray[np.int8]:
    """Vectorised :func:`~rollguard.detect.comparisons.compare_means` state codes (same arms and interval)."""
    s = 1.0 if spec.higher_is_worse else -1.0
    lam = 1.0 + s * (spec.margin if spec.relative else 0.0)
    m = absolute_margin(spec)
    t2 = np.where(np.isnan(tau2), 1.0, tau2)
    mt, mc, vc = s * mean_t, s * lam * mean_c, lam * lam * var_c
    lo = np.empty(n_t.shape)
    hi = np.empty(n_t.shape)
    w, g = slice(0, 1), slice(1, None)
    lo[w], hi[w] = difference_cs_many(mt[w], var_t[w], n_t[w], mc[w], vc[w], n_c[w], alpha_whole, t2[w])
    lo[g], hi[g] = difference_cs_many(mt[g], var_t[g], n_t[g], mc[g], vc[g], n_c[g], alpha_segment, t2[g])
    out = np.zeros(n_t.shape, dtype=np.int8)
    out[lo - m > 0] = STATE_CODE[VerdictState.REGRESSED]
    out[hi - m < 0] = STATE_CODE[VerdictState.NON_INFERIOR]
    return out


def _batch_sums(spec: MetricSpec, moments: FloatArray, quality: dict[str, FloatArray]) -> FloatArray:
    """This batch's (n, Σx, Σx²) per slot and arm (cap, 2, 3) for a mean-type metric."""
    if spec.field.startswith("quality."):
        key = spec.field[len("quality.") :]
        if key not in quality:
            return np.zeros((moments.shape[0], 2, 3))
        return quality[key]
    sums: FloatArray = moments[:, :, CONTINUOUS_FIELDS.index(spec.field)]
    return sums


def _batch_values(
    spec: MetricSpec,
    counts: IntArray,
    moments: FloatArray,
    quality: dict[str, FloatArray],
    arm: int,
) -> tuple[FloatArray, FloatArray]:
    """This batch's (successes or mean, n) per slot for one arm, for the CUSUMs."""
    if spec.kind == "rate":
        num, den = RATE_COLUMNS[spec.field]
        return counts[:, arm, num].astype(np.float64), counts[:, arm, den].astype(np.float64)
    if spec.field.startswith("quality."):
        key = spec.field[len("quality.") :]
        if key not in quality:
            z = np.zeros(counts.shape[0])
            return z, z
        sums = quality[key][:, arm]
    else:
        sums = moments[:, arm, CONTINUOUS_FIELDS.index(spec.field)]
    n = sums[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, sums[:, 1] / np.maximum(n, 1.0), 0.0)
    return mean, n
