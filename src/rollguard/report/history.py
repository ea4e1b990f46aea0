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
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from rollguard.pipeline.rollout import RolloutPipeline, Step
from rollguard.pipeline.timeline import timeline_point
from rollguard.report.records import ChartPoint, RolloutRecords, chart_point

DEFAULT_EVERY_S: Final = 30.0
DEFAULT_MAX_POINTS: Final = 240
DEFAULT_MAX_RECORDS: Final = 200
DEFAULT_MAX_ROLLOUTS: Final = 256


@dataclass(slots=True)
class _Rollout:
    every_s: float
    next_at: float = -math.inf
    points: list[ChartPoint] = field(default_factory=list)
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
            r.points.append(point)
            if len(r.points) > self.max_points:
                r.points = r.points[::2]
                r.every_s *= 2
        r.next_at = (math.floor(now / r.every_s) + 1) * r.every_s

    def records(self, pipelines: Iterable[RolloutPipeline]) -> list[RolloutRecords]:
        """The page's data for these (held) pipelines, the newest state read now."""
        out = []
        for p in sorted(pipelines, key=lambda p: p.rollout_id):
            r = self.rollouts.get(p.rollout_id) or _Rollout(self.every_s)
            at = p.last_ts if math.isfinite(p.last_ts) else None
            latest = timeline_point(p, at)
            points = list(r.points)
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
