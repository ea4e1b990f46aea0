"""One rollout's monitor: the event path, the batch close sequence, and the state of its concerns.

Each concern lives in a module of its own with its own state: the open batch (:mod:`.batching`),
cohort membership (:mod:`.membership`), the per-slot statistics (:mod:`.arrays`), the phase and
promotion (:mod:`.phase`), the cumulative mean and tail comparisons (:mod:`.mean_tests`,
:mod:`.tail_tests`), the onset detectors (:mod:`.onset_checks`), baseline drift and post-rollout
change (:mod:`.baseline_drift`), the sample ratio of units and of requests (:mod:`.sample_ratio`)
and the α budget (:mod:`.budget`, which gives each new cohort its share by traffic when it is
created). The monitor only runs them in order when a batch closes, names the cohorts of what they
found, and assembles their saved state (a stored format: :data:`STATE_LAYOUT`) and their
dashboard views (:meth:`RolloutMonitor.snapshot`). Everything it decides is a function of the events.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
import orjson

from rollguard.detect.arrays import ArmRead, BatchArrays, RolloutArrays
from rollguard.detect.baseline_drift import BaselineValues, BaselineWatch
from rollguard.detect.batch_columns import ARM_CANARY, ARM_CONTROL, EventColumns
from rollguard.detect.batching import OpenBatch
from rollguard.detect.budget import AlphaBudget
from rollguard.detect.drift import grid_updates
from rollguard.detect.excess import ExcessTests
from rollguard.detect.mean_tests import MeanTest, MeanTests
from rollguard.detect.membership import CohortMembership
from rollguard.detect.onset_checks import MeanOnset, TailOnset
from rollguard.detect.phase import RolloutPhase
from rollguard.detect.sample_ratio import SampleRatio
from rollguard.detect.slot_change import SlotChange
from rollguard.detect.tail_tests import TailTests
from rollguard.domain.events import Event
from rollguard.domain.metrics import MetricSpec
from rollguard.domain.variant_parts import PartsComparison, compare
from rollguard.domain.verdicts import VerdictChange
from rollguard.settings.config import Config

# The saved state's keys, in order (the streaming service stores this format: keep it byte-stable).
STATE_LAYOUT: Final = (
    "v", "rollout_id", "phase", "promoted_at", "last_control_ts", "canary_run", "dims", "cap", "counts",
    "moments", "quality", "hists", "buffer", "batch_start", "batch_end_ts", "watermark", "canary_variant",
    "counters", "registry", "budget", "tests", "tail_state", "tail_onset", "excess", "srm", "health",
    "units", "srm_requests", "baseline", "baseline_hists",
)  # fmt: skip
# An optional trailing key, written only once an arm's events named their variant parts: states of
# rollouts without parts (and every state saved before parts existed) keep their bytes.
PARTS_KEY: Final = "variant_parts"


class PerSlot(Protocol):
    """A concern holding state per cohort slot: grown and forgotten together with the others."""

    def grow(self, cap: int) -> None: ...
    def forget(self, slot: int) -> None: ...


class RolloutMonitor:
    """One rollout: takes its events, and runs every concern in order each time a batch closes."""

    def __init__(self, rollout_id: str, config: Config) -> None:
        self.rollout_id, self.cfg = rollout_id, config
        eng, rollout, grid = config.engine, config.rollout(rollout_id), config.engine.cusum_grid_s
        self.canary_variant: str | None = None
        # The latest variant parts each arm named (None: its events carried none).
        self.control_parts: dict[str, str] | None = None
        self.canary_parts: dict[str, str] | None = None
        self.seen = {"events": 0, "shadow": 0, "batches": 0}
        self.batch = OpenBatch(eng.batch_seconds, eng.min_batch_events, eng.max_batch_seconds)
        self.membership = CohortMembership(config.segments, eng.max_cohorts_per_rollout)
        self.arrays = RolloutArrays(eng.max_quality_keys)
        self.lifecycle = RolloutPhase(rollout.phase, eng.promotion_silence_s, eng.min_samples)
        self.budget = AlphaBudget(config)
        # Change detectors fold evidence on an event-time grid, so their horizons count grid cells.
        self.onset_horizon = grid_updates(eng.canary_horizon_s, grid)
        self.means = MeanTests()
        self.mean_onset = MeanOnset(self.onset_horizon, grid)
        self.baselines = BaselineWatch(eng)
        self.tails = TailTests([m for m in config.metrics if m.enabled and m.kind == "quantile"], self.budget)
        self.tail_onset = TailOnset.for_tails(self.tails, self.onset_horizon, grid, self.arrays.cap)
        self.excess = ExcessTests()
        self.sample_ratio = SampleRatio(
            config.srm_alpha, rollout.canary_weight, eng.unit_filter_bits, config.srm_request_alpha,
            per_request=rollout.assignment == "request",
        )  # fmt: skip
        for spec in config.metrics:
            if spec.enabled and spec.kind in ("rate", "mean"):
                self._add_mean_test(spec)

    @property
    def phase(self) -> str:
        return self.lifecycle.phase

    @property
    def batch_end_ts(self) -> float:
        return self.batch.end_ts

    @property
    def counters(self) -> dict[str, int]:
        seen, late, refused = self.seen, self.batch.late, self.arrays.quality_keys_refused
        return {"events": seen["events"], "shadow": seen["shadow"], "late": late, "batches": seen["batches"],
                "quality_keys_refused": refused}  # fmt: skip

    @property
    def _per_slot(self) -> tuple[PerSlot, ...]:
        return (self.arrays, self.means, self.mean_onset, self.baselines, self.tails, self.tail_onset,
                self.excess)  # fmt: skip

    def _add_mean_test(self, spec: MetricSpec) -> None:
        test = self.means.add(spec, self.budget, self.arrays.cap)
        self.mean_onset.add(test, self.arrays.cap)
        self.baselines.add(test, self.arrays.cap)

    # ------------------------------------------------------------------ event path
    def process(self, ev: Event) -> list[VerdictChange]:
        """Take one event; returns the verdict changes of any batch it closed."""
        if ev.arm == "shadow":  # paired by the embeddings' shadow module, counted here
            self.seen["shadow"] += 1
            return []
        if ev.arm == "canary" and ev.variant is not None:
            self.canary_variant = ev.variant
        if ev.variant_parts:
            if ev.arm == "canary":
                self.canary_parts = ev.variant_parts
            else:
                self.control_parts = ev.variant_parts
        closed = self.batch.add(ev)
        return [] if closed is None else self._close(closed)

    def flush(self) -> list[VerdictChange]:
        """Close the open batch now: update every cohort and re-read every test."""
        closed = self.batch.close()
        return [] if closed is None else self._close(closed)

    def promote(self, now: float, reason: str) -> list[VerdictChange]:
        """Enter the post-rollout phase now (an operator's or controller's word; the engine's API)."""
        found = self._promote(now, reason) if self.phase == "canary" else []
        return self.membership.name(now, self.rollout_id, self.phase, found)

    # ------------------------------------------------------------------ batch close
    def _close(self, cols: EventColumns) -> list[VerdictChange]:
        """Each concern in turn; the order is behaviour (recent evidence before the batch is folded in)."""
        self.seen["events"] += len(cols)
        self.seen["batches"] += 1
        now, eng = self.batch.end_ts, self.cfg.engine
        found: list[SlotChange] = []
        if reason := self.lifecycle.promotion_due(cols, now):
            found += self._promote(now, reason)
        taken = self.membership.slots_taken
        rows, members, touched = self.membership.of_batch(cols, now)
        if (created := self.membership.slots_taken) > taken:  # new cohorts: their α by traffic share
            parts = len(self.membership.dims) + len(self.cfg.segments.groupings)
            self.budget.assign_created(taken, created, rows, len(cols), parts)
        if (needed := self.membership.slots_taken) > self.arrays.cap:  # capacity doubles: few reallocations
            cap = max(needed, self.arrays.cap * 2)
            for concern in self._per_slot:
                concern.grow(cap)
        for key in cols.quality:
            if self.arrays.add_quality_key(key) and (spec := self.cfg.quality_spec(key)).enabled:
                self._add_mean_test(spec)
        continuous, post = cols.continuous(), self.lifecycle.post
        batch = self.arrays.batch_of(rows, members, cols, continuous, control_frozen=post)
        live = self.membership.live_mask(self.arrays.cap)
        if not post:  # recent evidence, read before the batch joins the running statistics
            found += self.mean_onset.update(now, live, batch, self.arrays, self.means, eng.min_samples)
            found += self.tail_onset.update(now, live, rows, members, continuous, self.arrays, self.tails,
                                            eng.min_samples)  # fmt: skip
        self.arrays.add(batch, touched)
        if not post:
            found += self.sample_ratio.update(cols, now)
        if not self.lifecycle.evaluation_over(now, eng.post_rollout_period_s):
            found += self._evaluate(now, live, batch, BaselineValues(rows, members, continuous))
        out = self._with_parts(self.membership.name(now, self.rollout_id, self.phase, found))
        for slot in self.membership.expire(now, eng.cohort_ttl_s):
            for concern in self._per_slot:
                concern.forget(slot)
        return out

    @property
    def parts(self) -> PartsComparison:
        """The canary's variant parts against control's (:mod:`rollguard.domain.variant_parts`)."""
        return compare(self.control_parts, self.canary_parts)

    def _with_parts(self, changes: list[VerdictChange]) -> list[VerdictChange]:
        """Each check's change says which parts the canary changes (``changed_parts``, ``bundled_change``),
        so that an alert on it can name them; nothing is added while the parts are not known."""
        parts = self.parts
        if not parts.changed or not changes:
            return changes
        named = {"changed_parts": list(parts.changed), "bundled_change": parts.bundled}
        return [c if c.kind == "phase" else replace(c, evidence={**c.evidence, **named}) for c in changes]

    def _arms(self, test: MeanTest) -> tuple[ArmRead, ArmRead | None]:
        """A test's canary, and what it is compared with: the control, or the baseline frozen at promotion."""
        canary = self.arrays.read(test.spec, ARM_CANARY)
        if self.lifecycle.post:
            return canary, self.lifecycle.baseline_of(test.spec.name, self.arrays.cap)
        return canary, self.arrays.read(test.spec, ARM_CONTROL)

    def _evaluate(
        self, now: float, live: npt.NDArray[np.bool_], batch: BatchArrays, values: BaselineValues
    ) -> list[SlotChange]:
        """Every cumulative test, each mean metric followed by its baseline chart; then the tails."""
        min_n, post = self.cfg.engine.min_samples, self.lifecycle.post
        found: list[SlotChange] = []
        for test in self.means.tests.values():
            canary, control = self._arms(test)
            if control is None:  # a test that began after promotion has no baseline
                continue
            found += self.means.evaluate(test, live, canary, control, min_n)
            if post:
                found += self.baselines.update_post(test, now, live, batch, values, canary[0])
            else:
                found += self.baselines.update_drift(
                    test, now, live, batch, values, control, self.arrays.hists, self.membership.live()
                )
        baseline = self.lifecycle.baseline_hists if post else None
        found += self.tails.evaluate(live, self.arrays.hists, baseline, min_n)
        return found + self.excess.update(self.means, self._arms, live, min_n)

    def _promote(self, now: float, reason: str) -> list[SlotChange]:
        """Freeze each cohort's control statistics as its baseline; the canary starts afresh."""
        self.lifecycle.enter_post_rollout(now)
        frozen = self.arrays.control_hists()
        for name, test in self.means.tests.items():
            control = self.arrays.read(test.spec, ARM_CONTROL)
            self.lifecycle.freeze(name, control)
            self.baselines.arm_post(test, control, self.membership.slots_taken, frozen)
        self.means.restart()
        self.excess.restart()
        self.lifecycle.freeze_hists(self.arrays.restart_canary())
        self.tails.restart()
        evidence = {"reason": reason, "baseline_cohorts": self.membership.slots_taken}
        return [SlotChange("phase", 0, "", "post_rollout", "canary", evidence)]

    # ------------------------------------------------------------------ read-only views
    def snapshot(self) -> dict[str, Any]:
        """What a dashboard shows now, from each concern's own view: deterministic, JSON-compatible (no
        estimate yet or an unbounded interval is null), and it changes nothing."""
        counts, hists = self.arrays.counts, self.arrays.hists
        frozen = self.lifecycle.baseline_hists if self.lifecycle.post else None
        arms = [(test, *self._arms(test)) for test in self.means.tests.values()]
        cohorts = []
        for cohort in self.membership.live():
            slot = cohort.slot
            means = [self.means.view(t, slot, canary, control, self.baselines.drift_state(t.spec.name, slot))
                     for t, canary, control in arms]  # fmt: skip
            tails = [self.tails.view(spec, slot, hists, frozen) for spec in self.tails.specs]
            n_control, n_canary = counts[slot, :, 0].tolist()
            cohorts.append({"cohort": cohort.key, "scope": dict(cohort.scope), "n_control": n_control,
                            "n_canary": n_canary, "metrics": means + tails})  # fmt: skip
        ratio = self.sample_ratio
        view: dict[str, Any] = {"rollout_id": self.rollout_id, "ts": self.batch.end_ts, "phase": self.phase,
                "health": ratio.health.value, "srm": ratio.view(), "cohorts": cohorts}  # fmt: skip
        if self.control_parts is not None or self.canary_parts is not None:
            view[PARTS_KEY] = self.parts.to_dict()
        return orjson.loads(orjson.dumps(view))  # type: ignore[no-any-return]  # non-finite floats: null

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """Everything this monitor knows, as JSON-compatible data, keys in :data:`STATE_LAYOUT` order.

        Bounded whatever the traffic: arrays sized by the cohort budget, sparse histograms, a fixed
        Bloom filter, and the open batch (at most ``max_batch_seconds`` of events).
        """
        means, banks, onset = self.means.to_state(), self.baselines.to_state(), self.mean_onset.to_state()
        parts = {
            "v": 1, "rollout_id": self.rollout_id, "canary_variant": self.canary_variant,
            "counters": self.counters, **self.lifecycle.to_state(), **self.membership.to_state(),
            "budget": self.budget.to_state(),
            **self.arrays.to_state(), **self.batch.to_state(), **self.sample_ratio.to_state(),
            "tests": {name: {**means[name], **banks[name], "onset": onset[name]} for name in means},
            "tail_state": self.tails.to_state(), "tail_onset": self.tail_onset.to_state(),
            "excess": self.excess.to_state(),
        }  # fmt: skip
        assert len(parts) == len(STATE_LAYOUT)
        state = {key: parts[key] for key in STATE_LAYOUT}
        if self.control_parts is not None or self.canary_parts is not None:
            state[PARTS_KEY] = {"control": self.control_parts, "canary": self.canary_parts}
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], config: Config) -> RolloutMonitor:
        """Rebuild a monitor from :meth:`to_state` output under the same config."""
        mon = cls(str(state["rollout_id"]), config)
        eng, rollout, tests = config.engine, config.rollout(mon.rollout_id), state["tests"]
        mon.canary_variant = state["canary_variant"]
        if (named := state.get(PARTS_KEY)) is not None:
            mon.control_parts, mon.canary_parts = named["control"], named["canary"]
        counters = {k: int(v) for k, v in state["counters"].items()}
        mon.seen = {k: counters[k] for k in mon.seen}
        rules = eng.batch_seconds, eng.min_batch_events, eng.max_batch_seconds
        mon.batch = OpenBatch.from_state(state, *rules)
        mon.batch.late = counters["late"]
        mon.membership = CohortMembership.from_state(state, config.segments, eng.max_cohorts_per_rollout)
        mon.arrays = RolloutArrays.from_state(state, eng.max_quality_keys)
        mon.arrays.quality_keys_refused = counters["quality_keys_refused"]
        mon.budget.load(state["budget"])
        mon.lifecycle = RolloutPhase.from_state(
            state, rollout.phase, eng.promotion_silence_s, eng.min_samples
        )
        specs = {t.spec.name: t.spec for t in mon.means.tests.values()}
        specs |= {s.name: s for s in map(config.quality_spec, mon.arrays.quality)}
        mon.means = MeanTests.from_state(tests, specs, mon.budget)
        mon.mean_onset = MeanOnset.from_state({n: t["onset"] for n, t in tests.items()}, mon.onset_horizon,
                                              eng.cusum_grid_s)  # fmt: skip
        mon.baselines = BaselineWatch.from_state(tests, eng)
        mon.tails = TailTests.from_state(state["tail_state"], mon.tails.specs, mon.budget)
        mon.tail_onset = TailOnset.from_state(state["tail_onset"])
        mon.excess = ExcessTests.from_state(state["excess"], mon.arrays.cap)
        mon.sample_ratio = SampleRatio.from_state(state, config.srm_alpha, rollout.canary_weight,
                                                  eng.unit_filter_bits, config.srm_request_alpha,
                                                  rollout.assignment == "request")  # fmt: skip
        return mon
