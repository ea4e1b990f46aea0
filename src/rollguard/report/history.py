"""What a running worker keeps for its dashboard: per rollout, a bounded history of chart points and of
the records it published — the same :class:`~rollguard.report.records.RolloutRecords` a report reads
from replay's files, so the live page and the report are one design.

Bounded whatever the rollout's length: at most ``max_points`` chart points per rollout (when full, every
other point is dropped and the spacing doubles, so the chart always spans the whole rollout at a
coarser grain), the newest ``max_records`` alerts, commands and audit records, and at most
``max_rollouts`` rollouts (the least recently active is forgotten first). Reading it changes nothing
the pipelines decide.
"""

from __future__ import annotations

import math
from array import array
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from rollguard.pipeline.rollout import RolloutPipeline, Step
from rollguard.pipeline.timeline import timeline_point
from rollguard.report.records import STATES, ChartPoint, MetricPoint, RolloutRecords, chart_point

DEFAULT_EVERY_S: Final = 30.0
DEFAULT_MAX_POINTS: Final = 240  # a chart is 320 px wide: more would not show
DEFAULT_MAX_RECORDS: Final = 200
DEFAULT_MAX_ROLLOUTS: Final = 256  # with 240 points of 12 cohorts × 15 metrics: about 1 MB a rollout


_STATE_CODES: Final = {state: code for code, state in enumerate(STATES)}
_ABSENT: Final = 255


@dataclass(slots=True)
class _Series:
    """One rollout's chart points, packed: per point a byte of state and three doubles (effect and
    interval, NaN when unknown) per (cohort, metric) key — about 4 KB a point for 12 cohorts × 15
    metrics, where the same point as Python objects takes several times that."""

    keys: list[tuple[str, str]] = field(default_factory=list)
    index: dict[tuple[str, str], int] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)
    states: list[bytes] = field(default_factory=list)
    values: list[array[float]] = field(default_factory=list)

    def append(self, point: ChartPoint) -> None:
        for cohort, metrics in point.metrics.items():
            for metric in metrics:
                if (cohort, metric) not in self.index:
                    self.index[(cohort, metric)] = len(self.keys)
                    self.keys.append((cohort, metric))
        states = bytearray([_ABSENT]) * len(self.keys)
        values = array("d", [math.nan]) * (3 * len(self.keys))
        for cohort, metrics in point.metrics.items():
            for metric, (state, eff, lo, hi) in metrics.items():
                i = self.index[(cohort, metric)]
                states[i] = _STATE_CODES.get(state, 0)
                values[3 * i : 3 * i + 3] = array("d", [math.nan if v is None else v for v in (eff, lo, hi)])
        self.times.append(point.at)
        self.states.append(bytes(states))
        self.values.append(values)

    def thin(self) -> None:
        """Keep every other point (the spacing doubles)."""
        self.times, self.states, self.values = self.times[::2], self.states[::2], self.values[::2]

    def points(self) -> list[ChartPoint]:
        out = []
        for at, states, values in zip(self.times, self.states, self.values, strict=True):
            metrics: dict[str, dict[str, MetricPoint]] = {}
            for i, code in enumerate(states):
                if code == _ABSENT:
                    continue
                cohort, metric = self.keys[i]
                eff, lo, hi = (None if math.isnan(v) else v for v in values[3 * i : 3 * i + 3])
                metrics.setdefault(cohort, {})[metric] = (STATES[code], eff, lo, hi)
            out.append(ChartPoint(at, metrics))
        return out


@dataclass(slots=True)
class _Rollout:
    every_s: float
    next_at: float = -math.inf
    series: _Series = field(default_factory=_Series)
    alerts: deque[dict[str, Any]] = field(default_factory=deque)
    commands: deque[dict[str, Any]] = field(default_factory=deque)
    audit: deque[dict[str, Any]] = field(default_factory=deque)


class History:
    """Chart points and published records per rollout, fed by the worker as it publishes."""

    def __init__(
        self,
        every_s: float = DEFAULT_EVERY_S,
        *,
        max_points: int = DEFAULT_MAX_POINTS,
        max_records: int = DEFAULT_MAX_RECORDS,
        max_rollouts: int = DEFAULT_MAX_ROLLOUTS,
    ) -> None:
        self.every_s = every_s
        self.max_points = max(max_points, 4)
        self.max_records = max_records
        self.max_rollouts = max_rollouts
        self.rollouts: OrderedDict[str, _Rollout] = OrderedDict()

    def observe(self, pipeline: RolloutPipeline, step: Step) -> None:
        """After the pipeline handled a message: keep what it published, and a chart point when its
        clock crossed the next one (cheap otherwise)."""
        rid = pipeline.rollout_id
        r = self.rollouts.get(rid)
        if r is None:
            r = self.rollouts[rid] = _Rollout(self.every_s)
            if len(self.rollouts) > self.max_rollouts:
                self.rollouts.popitem(last=False)
        if step.alerts or step.commands or step.audit:
            self.rollouts.move_to_end(rid)
            for name in ("alerts", "commands", "audit"):
                kept: deque[dict[str, Any]] = getattr(r, name)
                kept.extend(getattr(step, name))
                while len(kept) > self.max_records:
                    kept.popleft()
        now = pipeline.last_ts
        if not math.isfinite(now):
            return
        if r.next_at == -math.inf:
            r.next_at = (math.floor(now / r.every_s) + 1) * r.every_s
            return
        if now < r.next_at:
            return
        at = math.floor(now / r.every_s) * r.every_s
        point = chart_point(timeline_point(pipeline, at))
        if point is not None:
            r.series.append(point)
            if len(r.series.times) > self.max_points:
                r.series.thin()
                r.every_s *= 2
        r.next_at = (math.floor(now / r.every_s) + 1) * r.every_s

    def records(self, pipelines: Iterable[RolloutPipeline]) -> list[RolloutRecords]:
        """The page's data for these (held) pipelines, the newest state read now."""
        out = []
        for p in sorted(pipelines, key=lambda p: p.rollout_id):
            r = self.rollouts.get(p.rollout_id) or _Rollout(self.every_s)
            at = p.last_ts if math.isfinite(p.last_ts) else None
            latest = timeline_point(p, at)
            points = r.series.points()
            now_point = chart_point(latest)
            if now_point is not None and (not points or now_point.at > points[-1].at):
                points.append(now_point)
            counters = {}
            monitor = p.engine.monitors.get(p.rollout_id)
            if monitor is not None:
                counters = dict(monitor.counters)
            out.append(
                RolloutRecords(
                    p.rollout_id,
                    points=points,
                    latest=latest,
                    alerts=list(r.alerts),
                    commands=list(r.commands),
                    audit=list(r.audit),
                    counters=counters,
                )
            )
        return out
