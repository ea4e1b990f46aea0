"""A rollout over time: its snapshot every ``every_s`` seconds of its own event time.

Charts of an estimate and its interval need the rollout's state at several times, and the detection
core keeps only the present. :class:`Timeline` says when a rollout's clock crossed the next multiple
of ``every_s`` (a grid on epoch seconds, so that replays of the same events take the same points) and
:func:`timeline_point` reads what a dashboard shows at that moment: the monitor's snapshot (estimates
and intervals per cohort and metric), the policy's status (firing alerts, commands, approvals, hold)
and the verdict state of every check (the recent window included, which the snapshot does not hold).

``rollguard replay`` writes the points to ``timeline.jsonl``; the streaming worker keeps a bounded
number of them in memory for its dashboard. Reading a point changes no later decision.

>>> t = Timeline(60.0)
>>> [t.crossed("r", ts) for ts in (30.0, 59.0, 61.0, 100.0, 250.0)]
[None, None, 60.0, None, 240.0]
"""

from __future__ import annotations

import math
from typing import Any, Final

from rollguard.pipeline.rollout import RolloutPipeline

POINT_VERSION: Final = 1


class Timeline:
    """When each rollout's event-time clock crossed the next point of the grid (one point per crossing:
    a gap in the traffic longer than ``every_s`` gives one point, at the newest grid time crossed)."""

    def __init__(self, every_s: float) -> None:
        if not every_s > 0:
            raise ValueError(f"every_s must be positive, got {every_s!r}")
        self.every_s = every_s
        self.next_at: dict[str, float] = {}

    def crossed(self, rollout_id: str, now: float) -> float | None:
        """The grid time just passed by a clock now at ``now`` (event time), or None."""
        if not math.isfinite(now):
            return None
        due = self.next_at.get(rollout_id)
        if due is None:
            self.next_at[rollout_id] = (math.floor(now / self.every_s) + 1) * self.every_s
            return None
        if now < due:
            return None
        at = math.floor(now / self.every_s) * self.every_s
        self.next_at[rollout_id] = at + self.every_s
        return at

    def due(self, pipeline: RolloutPipeline) -> dict[str, Any] | None:
        """The pipeline's point when its clock just crossed a grid time, else None (cheap)."""
        at = self.crossed(pipeline.rollout_id, pipeline.last_ts)
        return None if at is None else timeline_point(pipeline, at)


def timeline_point(pipeline: RolloutPipeline, at: float | None, *, final: bool = False) -> dict[str, Any]:
    """What a dashboard shows of one rollout at event time ``at`` (JSON-compatible, deterministic)."""
    rid = pipeline.rollout_id
    monitor = pipeline.engine.monitors.get(rid)
    table = pipeline.policy.tables.get(rid)
    signals: dict[str, dict[str, dict[str, str]]] = {}
    if table is not None:
        for sig in sorted(table.live(), key=lambda s: (s.cohort, s.metric, s.window)):
            if sig.kind == "verdict":
                signals.setdefault(sig.cohort, {}).setdefault(sig.metric, {})[sig.window] = sig.state
    point: dict[str, Any] = {
        "v": POINT_VERSION,
        "rollout_id": rid,
        "at": at,
        "clock": pipeline.last_ts if math.isfinite(pipeline.last_ts) else None,
        "snapshot": monitor.snapshot() if monitor is not None else None,
        "policy": pipeline.status(),
        "signals": signals,
    }
    if final:
        point["final"] = True
    return point
