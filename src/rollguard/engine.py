"""The detection engine: events in, verdict changes out, for any number of rollouts.

It puts events back into event-time order within ``allowed_lateness_s`` (a bounded heap, so memory
does not grow with the stream), hands each to its rollout's monitor, and starts a rollout afresh when
its canary version changes. It knows nothing about Kafka or files: the replay command and the
streaming worker are adapters around it, and both reach the same decisions from the same events.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from rollguard.cohorts import WHOLE
from rollguard.config import Config
from rollguard.events import Event, parse_event
from rollguard.monitor import RolloutMonitor
from rollguard.verdicts import VerdictChange


class Engine:
    """All monitored rollouts; feed it events with :meth:`process`, end with :meth:`flush`."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.monitors: dict[str, RolloutMonitor] = {}
        self._heap: list[tuple[float, int, Event]] = []
        self._seq = 0
        self._max_ts = float("-inf")
        self.late_events = 0
        self._released_ts = float("-inf")

    def process(self, event: Event) -> list[VerdictChange]:
        """Take one validated event; returns the verdict changes it caused (possibly none)."""
        lateness = self.config.engine.allowed_lateness_s
        ts = event.ts
        if ts < self._released_ts:
            self.late_events += 1  # beyond the allowed lateness: processed now, counted
        heapq.heappush(self._heap, (ts, self._seq, event))
        self._seq += 1
        if ts > self._max_ts:
            self._max_ts = ts
        out: list[VerdictChange] = []
        horizon = self._max_ts - lateness
        heap = self._heap
        while heap and heap[0][0] <= horizon:
            ev_ts, _, ev = heapq.heappop(heap)
            if ev_ts > self._released_ts:
                self._released_ts = ev_ts
            out.extend(self._dispatch(ev))
        return out

    def _dispatch(self, ev: Event) -> list[VerdictChange]:
        monitor = self.monitors.get(ev.rollout_id)
        if monitor is None:
            monitor = self.monitors[ev.rollout_id] = RolloutMonitor(ev.rollout_id, self.config)
            return monitor.process(ev)
        if (
            ev.arm == "canary"
            and ev.variant is not None
            and monitor.canary_variant is not None
            and ev.variant != monitor.canary_variant
        ):
            out = monitor.flush()
            out.append(
                VerdictChange(
                    "rollout", ev.ts, ev.rollout_id, WHOLE, {}, "", monitor.phase, "reset", None,
                    {"reason": "canary variant changed", "from": monitor.canary_variant, "to": ev.variant},
                )
            )  # fmt: skip
            monitor = self.monitors[ev.rollout_id] = RolloutMonitor(ev.rollout_id, self.config)
            out.extend(monitor.process(ev))
            return out
        return monitor.process(ev)

    def process_many(self, events: Iterable[Event]) -> list[VerdictChange]:
        out: list[VerdictChange] = []
        for ev in events:
            out.extend(self.process(ev))
        out.extend(self.flush())
        return out

    def flush(self) -> list[VerdictChange]:
        """Release every buffered event and close every open batch (end of stream, or idle timer)."""
        out: list[VerdictChange] = []
        while self._heap:
            _, _, ev = heapq.heappop(self._heap)
            out.extend(self._dispatch(ev))
        for rollout_id in sorted(self.monitors):
            out.extend(self.monitors[rollout_id].flush())
        return out

    def to_state(self) -> dict[str, Any]:
        """All rollouts' state plus the reorder buffer, as JSON-compatible data."""
        return {
            "v": 1,
            "monitors": {rid: m.to_state() for rid, m in sorted(self.monitors.items())},
            "heap": [[ts, seq, ev.to_dict()] for ts, seq, ev in sorted(self._heap)],
            "seq": self._seq,
            "max_ts": None if self._max_ts == float("-inf") else self._max_ts,
            "released_ts": None if self._released_ts == float("-inf") else self._released_ts,
            "late_events": self.late_events,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: Config | None = None) -> Engine:
        """Resume from :meth:`to_state` output: the same events afterwards give the same decisions."""
        engine = cls(config)
        engine.monitors = {rid: RolloutMonitor.from_state(s, engine.config) for rid, s in state["monitors"].items()}
        for ts, seq, raw in state["heap"]:
            ev = parse_event(raw)
            assert isinstance(ev, Event)
            heapq.heappush(engine._heap, (float(ts), int(seq), ev))
        engine._seq = int(state["seq"])
        engine._max_ts = float("-inf") if state["max_ts"] is None else float(state["max_ts"])
        engine._released_ts = float("-inf") if state["released_ts"] is None else float(state["released_ts"])
        engine.late_events = int(state["late_events"])
        return engine
