"""A closed micro-batch of one rollout's events as columns, and its per-(cohort, arm) aggregates.

Events wait in the open batch (:mod:`rollguard.detect.batching`) untouched, and when the batch closes
they become numpy columns here and every statistic of every cohort is summed at once: per-event
Python overhead is what limits throughput, so the per-event path does nothing but append.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import chain
from typing import Final

import numpy as np
import numpy.typing as npt

from rollguard.domain.events import Event
from rollguard.domain.metrics import CONTINUOUS_FIELDS

NAN: Final = math.nan
ARM_CONTROL: Final = 0
ARM_CANARY: Final = 1
STATUS_CODES: Final = {"ok": 0, "error": 1, "timeout": 2, "refusal": 3}
# Order of the count columns in BatchAggregates.counts and ArmStats.counts.
COUNT_COLUMNS: Final = ("n", "error", "timeout", "refusal", "format_n", "format_invalid")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class EventColumns:
    """The closed batch of one rollout as columns (live arms only; shadow events are kept apart).

    Numeric columns are numpy arrays, converted once here for every consumer (aggregates, cohort
    memberships, SRM, phase); NaN stands for an absent value.
    """

    ts: FloatArray
    arm: IntArray
    status: IntArray
    fmt: IntArray  # -1 absent, 0 invalid, 1 valid
    latency: FloatArray
    ttft: FloatArray
    tokens_out: FloatArray
    cost: FloatArray
    weights: FloatArray
    segments: list[dict[str, str]]
    units: list[str | None]
    quality: dict[str, FloatArray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def of(cls, events: list[Event]) -> EventColumns:
        """Columns of a batch, built field by field (list comprehensions, not a loop of appends)."""
        nan = NAN
        codes = STATUS_CODES

        def floats(values: list[float]) -> FloatArray:
            return np.asarray(values, dtype=np.float64)

        def ints(values: list[int]) -> IntArray:
            return np.asarray(values, dtype=np.int64)

        cols = cls(
            ts=floats([e.ts for e in events]),
            arm=ints([ARM_CANARY if e.arm == "canary" else ARM_CONTROL for e in events]),
            status=ints([codes[e.status] for e in events]),
            fmt=ints([-1 if e.format_valid is None else int(e.format_valid) for e in events]),
            latency=floats([nan if e.latency_ms is None else e.latency_ms for e in events]),
            ttft=floats([nan if e.ttft_ms is None else e.ttft_ms for e in events]),
            tokens_out=floats([nan if e.tokens_out is None else e.tokens_out for e in events]),
            cost=floats([nan if e.cost_usd is None else e.cost_usd for e in events]),
            weights=floats([nan if e.canary_weight is None else e.canary_weight for e in events]),
            segments=[e.segment for e in events],
            units=[e.unit_id for e in events],
        )
        scores = [e.quality for e in events]
        for key in dict.fromkeys(chain.from_iterable(scores)):  # every key, in order of first appearance
            cols.quality[key] = floats([q.get(key, nan) for q in scores])
        return cols

    def continuous(self) -> dict[str, FloatArray]:
        """The continuous metric columns, NaN where absent or where the request did not succeed."""
        ok = self.status == 0
        latency = self.latency.copy()  # masked below: the batch's own columns stay as they were
        ttft = self.ttft.copy()
        tokens = self.tokens_out.copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            tpot = np.where(tokens > 0, (latency - ttft) / tokens, NAN)
        tpot[tpot < 0] = NAN
        cols = {
            "latency_ms": latency,
            "ttft_ms": ttft,
            "tpot_ms": tpot,
            "tokens_out": tokens,
            "cost_usd": self.cost.copy(),
        }
        for arr in cols.values():
            arr[~ok] = NAN
        assert tuple(cols) == CONTINUOUS_FIELDS
        return cols


@dataclass(slots=True)
class BatchAggregates:
    """Sufficient statistics of one batch per cohort-arm row (row = cohort_slot * 2 + arm)."""

    counts: IntArray  # (rows, len(COUNT_COLUMNS))
    moments: FloatArray  # (rows, len(CONTINUOUS_FIELDS), 3): n, sum, sum of squares
    quality: dict[str, FloatArray]  # key -> (rows, 3)
    bucket_counts: dict[str, IntArray]  # tail field -> (rows, n_buckets)


def aggregate(
    rows: IntArray,
    members: IntArray,
    n_rows: int,
    cols: EventColumns,
    continuous: dict[str, FloatArray],
    bucket_index: dict[str, IntArray],
    n_buckets: dict[str, int],
) -> BatchAggregates:
    """Sum each event into every cohort-arm row it belongs to.

    ``members[i]`` is the event index of membership ``i`` and ``rows[i]`` its cohort-arm row; an event
    belongs to the whole-rollout cohort and to one cohort per segment dimension or grouping.
    """
    status = cols.status[members]
    fmt = cols.fmt[members]
    counts = np.zeros((n_rows, len(COUNT_COLUMNS)), dtype=np.int64)
    counts[:, 0] = np.bincount(rows, minlength=n_rows)
    for code in (1, 2, 3):
        counts[:, code] = np.bincount(rows, weights=(status == code), minlength=n_rows).astype(np.int64)
    counts[:, 4] = np.bincount(rows, weights=(fmt >= 0), minlength=n_rows).astype(np.int64)
    counts[:, 5] = np.bincount(rows, weights=(fmt == 0), minlength=n_rows).astype(np.int64)

    moments = np.zeros((n_rows, len(CONTINUOUS_FIELDS), 3))
    for j, name in enumerate(CONTINUOUS_FIELDS):
        moments[:, j, :] = _sums(rows, continuous[name][members], n_rows)
    quality = {key: _sums(rows, col[members], n_rows) for key, col in cols.quality.items()}
    ok = status == 0
    buckets: dict[str, IntArray] = {}
    for name, index in bucket_index.items():
        b = n_buckets[name]
        idx = index[members]
        keep = ok & (idx >= 0)
        flat = np.bincount(rows[keep] * b + idx[keep], minlength=n_rows * b)
        buckets[name] = flat.reshape(n_rows, b).astype(np.int64)
    return BatchAggregates(counts, moments, quality, buckets)


def _sums(rows: IntArray, values: FloatArray, n_rows: int) -> FloatArray:
    present = ~np.isnan(values)
    r = rows[present]
    v = values[present]
    out = np.empty((n_rows, 3))
    out[:, 0] = np.bincount(r, minlength=n_rows)
    out[:, 1] = np.bincount(r, weights=v, minlength=n_rows)
    out[:, 2] = np.bincount(r, weights=v * v, minlength=n_rows)
    return out


def merge_moments(state: FloatArray, sums: FloatArray) -> None:
    """Fold batch sums (n, Σx, Σx²) into running (n, mean, M2) rows in place (Chan et al. 1979).

    >>> s = np.zeros((1, 3)); merge_moments(s, np.array([[2.0, 4.0, 10.0]])); s.tolist()
    [[2.0, 2.0, 2.0]]
    >>> merge_moments(s, np.array([[1.0, 5.0, 25.0]])); [round(float(x), 9) for x in s[0]]
    [3.0, 3.0, 8.0]
    """
    nb = sums[..., 0]
    has = nb > 0
    if not has.any():
        return
    safe_nb = np.where(has, nb, 1.0)
    mean_b = sums[..., 1] / safe_nb
    m2_b = np.maximum(sums[..., 2] - sums[..., 1] * mean_b, 0.0)
    na = state[..., 0]
    n = na + nb
    safe_n = np.where(n > 0, n, 1.0)
    delta = mean_b - state[..., 1]
    new_mean = state[..., 1] + delta * nb / safe_n
    new_m2 = state[..., 2] + m2_b + delta * delta * na * nb / safe_n
    state[..., 0] = np.where(has, n, na)
    state[..., 1] = np.where(has, new_mean, state[..., 1])
    state[..., 2] = np.where(has, new_m2, state[..., 2])
