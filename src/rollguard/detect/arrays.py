"""Per-slot, per-arm running statistics of one rollout: counts, moments, quality sums, tail histograms.

Every check reads its arms from here, indexed by cohort slot (axis 0) and arm (axis 1, control then
canary), so the statistics of a batch are folded in once for all checks. Every continuous metric has
a histogram per slot and arm: the tails read theirs, the drift and post-rollout charts the median of
their reference. Arrays grow with the
cohort budget as slots are taken (doubling), and a slot's rows are cleared when its cohort expires.
:class:`BatchArrays` holds one closed batch's sums in the same shapes, for the checks that watch
recent evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from rollguard.detect.batch_columns import (
    ARM_CANARY,
    ARM_CONTROL,
    COUNT_COLUMNS,
    EventColumns,
    FloatArray,
    IntArray,
    aggregate,
    merge_moments,
)
from rollguard.domain.metrics import CONTINUOUS_FIELDS, MetricSpec
from rollguard.stats import LogHistogram, regularised_bernoulli_variance

# Rate metrics as (numerator, denominator) columns of COUNT_COLUMNS.
RATE_COLUMNS: Final = {"error": (1, 0), "timeout": (2, 0), "refusal": (3, 0), "format_invalid": (5, 4)}
# Histograms: 2% relative accuracy between 1e-3 and 1e7 (ms or tokens); costs between 1e-8 and 100 USD.
HIST_ACCURACY: Final = 0.02
HIST_FIELDS: Final = CONTINUOUS_FIELDS
HIST_RANGES: Final = {"cost_usd": (1e-8, 1e2)}
INITIAL_SLOTS: Final = 8


def new_hist(field: str) -> LogHistogram:
    """An empty histogram of one continuous field (its own value range, shared by all its cohorts)."""
    lo, hi = HIST_RANGES.get(field, (1e-3, 1e7))
    return LogHistogram(HIST_ACCURACY, lo, hi)


ArmRead = tuple[FloatArray, FloatArray, FloatArray]  # per slot: n, mean, variance
HistPair = list[LogHistogram]  # [control, canary]


@dataclass(slots=True)
class BatchArrays:
    """One closed batch's sums per slot and arm: counts (cap, 2, 6), moments (cap, 2, fields, 3: n, Σx,
    Σx²), quality key -> (cap, 2, 3), and tail field -> bucket counts (cap, 2, buckets)."""

    counts: IntArray
    moments: FloatArray
    quality: dict[str, FloatArray]
    buckets: dict[str, IntArray]

    def values(self, spec: MetricSpec, arm: int) -> tuple[FloatArray, FloatArray]:
        """This batch's (successes or mean, n) per slot for one arm, for the change detectors."""
        if spec.kind == "rate":
            num, den = RATE_COLUMNS[spec.field]
            return self.counts[:, arm, num].astype(np.float64), self.counts[:, arm, den].astype(np.float64)
        if spec.field.startswith("quality."):
            key = spec.field[len("quality.") :]
            if key not in self.quality:
                z = np.zeros(self.counts.shape[0])
                return z, z
            sums = self.quality[key][:, arm]
        else:
            sums = self.moments[:, arm, CONTINUOUS_FIELDS.index(spec.field)]
        n = sums[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(n > 0, sums[:, 1] / np.maximum(n, 1.0), 0.0)
        return mean, n

    def sums(self, spec: MetricSpec) -> FloatArray:
        """This batch's (n, Σx, Σx²) per slot and arm (cap, 2, 3) for a mean-type metric."""
        if spec.field.startswith("quality."):
            key = spec.field[len("quality.") :]
            if key not in self.quality:
                return np.zeros((self.moments.shape[0], 2, 3))
            return self.quality[key]
        sums: FloatArray = self.moments[:, :, CONTINUOUS_FIELDS.index(spec.field)]
        return sums


class RolloutArrays:
    """The running statistics of every cohort slot of one rollout, both arms."""

    def __init__(self, max_quality_keys: int, cap: int = INITIAL_SLOTS) -> None:
        self.cap = cap
        self.max_quality_keys = max_quality_keys
        self.quality_keys_refused = 0
        self.counts = np.zeros((cap, 2, len(COUNT_COLUMNS)), dtype=np.int64)
        self.moments = np.zeros((cap, 2, len(CONTINUOUS_FIELDS), 3))  # n, mean, M2
        self.quality: dict[str, FloatArray] = {}  # key -> (cap, 2, 3): n, mean, M2
        self.hists: dict[str, list[HistPair | None]] = {f: [None] * cap for f in HIST_FIELDS}
        self.templates = {f: new_hist(f) for f in HIST_FIELDS}  # bucket layout of each field

    def grow(self, cap: int) -> None:
        pad = cap - self.cap
        if pad <= 0:
            return
        self.counts = np.concatenate([self.counts, np.zeros((pad, *self.counts.shape[1:]), dtype=np.int64)])
        self.moments = np.concatenate([self.moments, np.zeros((pad, *self.moments.shape[1:]))])
        for key, arr in self.quality.items():
            self.quality[key] = np.concatenate([arr, np.zeros((pad, 2, 3))])
        for pairs in self.hists.values():
            pairs.extend([None] * pad)
        self.cap = cap

    def forget(self, slot: int) -> None:
        self.counts[slot] = 0
        self.moments[slot] = 0
        for arr in self.quality.values():
            arr[slot] = 0
        for pairs in self.hists.values():
            pairs[slot] = None

    def add_quality_key(self, key: str) -> bool:
        """Start tracking a quality score; False when known already or when the key budget is spent."""
        if key in self.quality:
            return False
        if len(self.quality) >= self.max_quality_keys:
            self.quality_keys_refused += 1
            return False
        self.quality[key] = np.zeros((self.cap, 2, 3))
        return True

    def hist(self, field: str, slot: int, arm: int) -> LogHistogram:
        """The tail histogram of one slot and arm, created empty on first use."""
        pair = self.hists[field][slot]
        if pair is None:
            pair = [new_hist(field), new_hist(field)]
            self.hists[field][slot] = pair
        return pair[arm]

    def read(self, spec: MetricSpec, arm: int) -> ArmRead:
        """Running n, mean and variance per slot of a mean-type metric (rates: share, Bernoulli variance).

        Views into the running arrays: read them before the next batch is folded in.
        """
        if spec.kind == "rate":
            num, den = RATE_COLUMNS[spec.field]
            n = self.counts[:, arm, den].astype(np.float64)
            k = self.counts[:, arm, num].astype(np.float64)
            return n, k / np.maximum(n, 1.0), regularised_bernoulli_variance(k, n)
        if spec.field.startswith("quality."):
            m = self.quality[spec.field[len("quality.") :]][:, arm, :]
        else:
            m = self.moments[:, arm, CONTINUOUS_FIELDS.index(spec.field), :]
        return m[:, 0], m[:, 1], m[:, 2] / np.maximum(m[:, 0] - 1.0, 1.0)

    def batch_of(
        self,
        rows: IntArray,
        members: IntArray,
        cols: EventColumns,
        continuous: dict[str, FloatArray],
        control_frozen: bool,
    ) -> BatchArrays:
        """Sum a closed batch per slot and arm (``rows``/``members``: its cohort memberships).

        Quality scores not tracked are dropped from ``cols``. With ``control_frozen`` (after
        promotion) the control's stragglers are zeroed: they must not touch the frozen baseline.
        """
        cols.quality = {k: v for k, v in cols.quality.items() if k in self.quality}
        index = {f: self.templates[f].index_many(np.nan_to_num(continuous[f], nan=-1.0)) for f in HIST_FIELDS}
        for f in HIST_FIELDS:
            index[f][np.isnan(continuous[f])] = -1
        n_buckets = {f: self.templates[f].n_buckets for f in HIST_FIELDS}
        agg = aggregate(rows, members, self.cap * 2, cols, continuous, index, n_buckets)
        batch = BatchArrays(
            agg.counts.reshape(self.cap, 2, len(COUNT_COLUMNS)),
            agg.moments.reshape(self.cap, 2, len(CONTINUOUS_FIELDS), 3),
            {k: v.reshape(self.cap, 2, 3) for k, v in agg.quality.items()},
            {f: v.reshape(self.cap, 2, -1) for f, v in agg.bucket_counts.items()},
        )
        if control_frozen:
            batch.counts[:, ARM_CONTROL] = 0
            batch.moments[:, ARM_CONTROL] = 0
            for arr in (*batch.quality.values(), *batch.buckets.values()):
                arr[:, ARM_CONTROL] = 0
        return batch

    def add(self, batch: BatchArrays, touched: list[int]) -> None:
        """Fold a batch into the running statistics (``touched``: the slots it has events in)."""
        self.counts += batch.counts
        merge_moments(self.moments, batch.moments)
        for key, sums in batch.quality.items():
            merge_moments(self.quality[key], sums)
        for f, per in batch.buckets.items():
            for slot in touched:
                for arm in (ARM_CONTROL, ARM_CANARY):
                    row = per[slot, arm]
                    if row.any():
                        self.hist(f, slot, arm).add_bucket_counts(row)

    def control_hists(self) -> dict[tuple[int, str], LogHistogram]:
        """The control's histograms by (slot, field), as they stand (views: copy before changing)."""
        return {(slot, f): pair[ARM_CONTROL] for f in HIST_FIELDS for slot, pair in enumerate(self.hists[f])
                if pair is not None}  # fmt: skip

    def restart_canary(self) -> dict[tuple[int, str], LogHistogram]:
        """At promotion the new version starts afresh: clear the canary arm everywhere and return the
        control's histograms by (slot, field), to be frozen as baselines."""
        control: dict[tuple[int, str], LogHistogram] = {}
        for f in HIST_FIELDS:
            for slot, pair in enumerate(self.hists[f]):
                if pair is not None:
                    control[(slot, f)] = pair[ARM_CONTROL]
                    self.hists[f][slot] = [new_hist(f), new_hist(f)]
        self.counts[:, ARM_CANARY] = 0
        self.moments[:, ARM_CANARY] = 0
        for arr in self.quality.values():
            arr[:, ARM_CANARY] = 0
        return control

    def to_state(self) -> dict[str, Any]:
        def pairs(hists: list[HistPair | None]) -> list[Any]:
            return [None if p is None else [h.to_state() for h in p] for p in hists]

        return {
            "cap": self.cap,
            "counts": self.counts.tolist(),
            "moments": self.moments.tolist(),
            "quality": {k: v.tolist() for k, v in self.quality.items()},
            "hists": {f: pairs(p) for f, p in self.hists.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], max_quality_keys: int) -> RolloutArrays:
        arrays = cls(max_quality_keys, int(state["cap"]))
        arrays.counts = np.asarray(state["counts"], dtype=np.int64)
        arrays.moments = np.asarray(state["moments"], dtype=np.float64)
        arrays.quality = {k: np.asarray(v, dtype=np.float64) for k, v in state["quality"].items()}
        for f, pairs in state["hists"].items():
            arrays.hists[f] = [None if p is None else [LogHistogram.from_state(h) for h in p] for p in pairs]
        return arrays
