"""What a report or a dashboard is made from, per rollout: the same shape whether it was read from
replay's output files or kept by a running worker.

- ``points``: the rollout over time, one :data:`ChartPoint` per timeline point (state, effect and
  interval of every cohort and metric), for the charts;
- ``latest``: the newest full timeline point (:func:`rollguard.pipeline.timeline.timeline_point`):
  snapshot, policy status (firing alerts, commands, approvals, hold) and verdict states;
- ``alerts``, ``commands``, ``audit``: the records the rollout published (alert v1 notifications,
  command v1 records, audit records of acks and operator actions), oldest first.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

# (state, effect, effect_lo, effect_hi) of one cohort and metric at one time; None where not estimable.
MetricPoint = tuple[str, float | None, float | None, float | None]
STATES: Final = ("insufficient", "non_inferior", "regressed")


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """One time of a rollout's chart: ``at`` (event time) and cohort → metric → :data:`MetricPoint`."""

    at: float
    metrics: Mapping[str, Mapping[str, MetricPoint]]


@dataclass(slots=True)
class RolloutRecords:
    """Everything shown about one rollout (see the module docstring)."""

    rollout_id: str
    points: list[ChartPoint] = field(default_factory=list)
    latest: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, Any] = field(default_factory=dict)


def combined_state(snapshot_state: str, windows: Mapping[str, str] | None) -> tuple[str, str | None]:
    """The state a person sees for one cohort and metric, and the window that found a regression.

    The snapshot holds one state per metric; the verdict signals say which comparison decided it: the
    cumulative one (the whole rollout so far) or the change detector's recent window, which finds a
    regression that started mid-canary before the cumulative interval leaves the margin. Regressed in
    any window is regressed.

    >>> combined_state("regressed", {"recent": "regressed", "cumulative": "insufficient"})
    ('regressed', 'recent')
    >>> combined_state("insufficient", {"recent": "regressed"})
    ('regressed', 'recent')
    >>> combined_state("non_inferior", None)
    ('non_inferior', None)
    """
    windows = windows or {}
    if windows.get("cumulative") == "regressed":
        return "regressed", "cumulative"
    for window, state in sorted(windows.items()):
        if state == "regressed":
            return "regressed", window
    if snapshot_state == "regressed":
        return "regressed", "cumulative"
    return (snapshot_state if snapshot_state in STATES else "insufficient"), None


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def chart_point(point: Mapping[str, Any]) -> ChartPoint | None:
    """The chart's view of a full timeline point (None when the rollout had no snapshot yet)."""
    snapshot = point.get("snapshot")
    at = point.get("at")
    if not isinstance(snapshot, Mapping) or not isinstance(at, int | float):
        return None
    signals = point.get("signals") or {}
    metrics: dict[str, dict[str, MetricPoint]] = {}
    for cohort in snapshot.get("cohorts", []):
        key = str(cohort["cohort"])
        row = metrics[key] = {}
        for m in cohort.get("metrics", []):
            state, _ = combined_state(str(m.get("state")), signals.get(key, {}).get(m["metric"]))
            row[str(m["metric"])] = (state, _finite(m.get("effect")), _finite(m.get("effect_lo")),
                                     _finite(m.get("effect_hi")))  # fmt: skip
    return ChartPoint(float(at), metrics)


# ------------------------------------------------------------------------------------------ replay


@dataclass(slots=True)
class ReplayOutputs:
    """A replay's output directory, read for a report."""

    directory: Path
    rollouts: list[RolloutRecords]
    summary: dict[str, Any]
    has_timeline: bool


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                record = orjson.loads(line)
                if isinstance(record, dict):
                    yield record


def read_replay_outputs(directory: str | Path) -> ReplayOutputs:
    """Group a replay's outputs by rollout (``timeline.jsonl`` is optional: without it, no charts).

    Raises FileNotFoundError when the directory holds no replay output at all."""
    d = Path(directory)
    if not (d / "summary.json").exists() and not (d / "verdicts.jsonl").exists():
        raise FileNotFoundError(f"{d}: no replay outputs (summary.json, verdicts.jsonl) found")
    by_id: dict[str, RolloutRecords] = {}

    def rollout(rid: Any) -> RolloutRecords:
        key = str(rid)
        if key not in by_id:
            by_id[key] = RolloutRecords(key)
        return by_id[key]

    for point in _lines(d / "timeline.jsonl"):
        r = rollout(point.get("rollout_id"))
        cp = chart_point(point)
        if cp is not None and (not r.points or cp.at > r.points[-1].at):
            r.points.append(cp)
        r.latest = point
    for name, attr in (("alerts.jsonl", "alerts"), ("commands.jsonl", "commands"), ("audit.jsonl", "audit")):
        for record in _lines(d / name):
            getattr(rollout(record.get("rollout_id")), attr).append(record)
    summary: dict[str, Any] = {}
    if (d / "summary.json").exists():
        summary = orjson.loads((d / "summary.json").read_bytes())
    for rid, counters in (summary.get("counters") or {}).items():
        rollout(rid).counters = dict(counters)
    if not by_id:  # a replay that saw no rollout: say so on the page rather than show nothing
        for record in _lines(d / "verdicts.jsonl"):
            rollout(record.get("rollout_id"))
    rollouts = [by_id[k] for k in sorted(by_id)]
    return ReplayOutputs(d, rollouts, summary, (d / "timeline.jsonl").exists())
