"""Event dicts (v1) as numpy columns, shared by the baseline judges.

``EventColumns.from_events`` takes any iterable of v1 event dicts (the simulator's output, or lines of
a JSONL file decoded with orjson); ``EventColumns.from_scenario`` skips the dicts and reads the
simulator's column batches directly (same values, much faster for benchmark loops).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

ARMS = ("control", "canary", "shadow")
STATUSES = ("ok", "error", "timeout", "refusal")
_ARM_CODE = {a: i for i, a in enumerate(ARMS)}
_STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}
NAN = float("nan")


@dataclass
class EventColumns:
    """One row per event, in input order. Absent numbers are NaN; ``format_valid`` -1/0/1."""

    ts: F64
    arm: I64  # 0 control, 1 canary, 2 shadow
    status: I64  # 0 ok, 1 error, 2 timeout, 3 refusal
    latency_ms: F64
    ttft_ms: F64
    tokens_out: F64
    cost_usd: F64
    format_valid: I64
    eval_score: F64
    thumbs: F64
    # dimension -> (its values, per-row code into them; -1 = the event lacks the dimension)
    segments: dict[str, tuple[list[str], I64]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> EventColumns:
        ts: list[float] = []
        arm: list[int] = []
        status: list[int] = []
        lat: list[float] = []
        ttft: list[float] = []
        tout: list[float] = []
        cost: list[float] = []
        fv: list[int] = []
        ev_score: list[float] = []
        thumbs: list[float] = []
        seg_codes: dict[str, list[int]] = {}
        seg_values: dict[str, dict[str, int]] = {}
        for n, ev in enumerate(events):
            ts.append(float(ev["ts"]))
            arm.append(_ARM_CODE[ev["arm"]])
            status.append(_STATUS_CODE[ev["status"]])
            v = ev.get("latency_ms")
            lat.append(NAN if v is None else v)
            v = ev.get("ttft_ms")
            ttft.append(NAN if v is None else v)
            v = ev.get("tokens_out")
            tout.append(NAN if v is None else v)
            v = ev.get("cost_usd")
            cost.append(NAN if v is None else v)
            f = ev.get("format_valid")
            fv.append(-1 if f is None else int(f))
            q = ev.get("quality") or {}
            v = q.get("eval_score")
            ev_score.append(NAN if v is None else v)
            v = q.get("thumbs")
            thumbs.append(NAN if v is None else v)
            seg = ev.get("segment") or {}
            for dim, value in seg.items():
                codes = seg_codes.get(dim)
                if codes is None:
                    codes = seg_codes[dim] = [-1] * n
                    seg_values[dim] = {}
                vals = seg_values[dim]
                code = vals.get(value)
                if code is None:
                    code = vals[value] = len(vals)
                codes.append(code)
            for codes in seg_codes.values():
                if len(codes) == n:  # this event lacks the dimension
                    codes.append(-1)
        segments = {
            dim: (list(seg_values[dim]), np.asarray(codes, dtype=np.int64))
            for dim, codes in seg_codes.items()
        }
        return cls(
            ts=np.asarray(ts, dtype=np.float64),
            arm=np.asarray(arm, dtype=np.int64),
            status=np.asarray(status, dtype=np.int64),
            latency_ms=np.asarray(lat, dtype=np.float64),
            ttft_ms=np.asarray(ttft, dtype=np.float64),
            tokens_out=np.asarray(tout, dtype=np.float64),
            cost_usd=np.asarray(cost, dtype=np.float64),
            format_valid=np.asarray(fv, dtype=np.int64),
            eval_score=np.asarray(ev_score, dtype=np.float64),
            thumbs=np.asarray(thumbs, dtype=np.float64),
            segments=segments,
        )

    @classmethod
    def from_scenario(cls, scenario: Any, arrival_times: Any = None) -> EventColumns:
        """Columns of ``rollguard.sim.generate(scenario)`` without building the dicts (same rounding)."""
        from rollguard.sim.generator import EventBatch, Plan, _batches

        plan = Plan(scenario, arrival_times)
        batches = list(_batches(plan))
        b = EventBatch.concat(batches) if batches else None
        if b is None:
            return cls.from_events([])
        segments = {}
        for j, d in enumerate(plan.dims):
            segments[d.name] = (list(d.values), plan.combo_values[b.combo, j].astype(np.int64))
        tout = b.tokens_out.astype(np.float64)
        tout[b.tokens_out < 0] = np.nan
        thumbs = b.thumbs.astype(np.float64)
        thumbs[b.thumbs < 0] = np.nan
        return cls(
            ts=np.round(scenario.start_ts + b.t, 3),
            arm=b.arm.astype(np.int64),
            status=b.status.astype(np.int64),
            latency_ms=np.round(b.latency_ms, 1),
            ttft_ms=np.round(b.ttft_ms, 1),
            tokens_out=tout,
            cost_usd=np.round(b.cost_usd, 8),
            format_valid=b.format_valid.astype(np.int64),
            eval_score=np.round(b.eval_score, 4),
            thumbs=thumbs,
            segments=segments,
        )

    def cohort_mask(self, cohort: Mapping[str, str] | None) -> B:
        """Rows whose segment matches every ``dim: value`` of ``cohort`` (empty/None = all rows)."""
        mask = np.ones(len(self.ts), dtype=bool)
        for dim, value in (cohort or {}).items():
            if dim not in self.segments:
                return np.zeros(len(self.ts), dtype=bool)
            values, codes = self.segments[dim]
            if value not in values:
                return np.zeros(len(self.ts), dtype=bool)
            mask &= codes == values.index(value)
        return mask

    def default_cohorts(self) -> dict[str, dict[str, str]]:
        """The rollout as a whole (``"all"``) and each value of each dimension (``"input_class=coding"``)."""
        out: dict[str, dict[str, str]] = {"all": {}}
        for dim, (values, _) in self.segments.items():
            for value in values:
                out[f"{dim}={value}"] = {dim: value}
        return out


def cohort_key(cohort: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in cohort.items()) if cohort else "all"
