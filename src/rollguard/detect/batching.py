"""The open micro-batch of one rollout: its events, where it starts in event time, and when it closes.

A batch closes once it spans ``batch_seconds`` *and* holds ``min_batch_events``, or at the latest
after ``max_batch_seconds``: verdicts are re-read at least that often, and the per-batch work is spread
over enough events to keep the per-event cost low at any traffic rate. The event that closes a batch
opens the next one; an event older than the open batch (late) joins it and is counted. Membership of a
batch is thus a pure function of the input order, and a replay reproduces every decision.
"""

from __future__ import annotations

import math
from typing import Any

from rollguard.detect.batch_columns import EventColumns
from rollguard.domain.events import Event, parse_event


class OpenBatch:
    """Events waiting for the next batch close (the only per-event work is appending to a list)."""

    def __init__(self, batch_seconds: float, min_batch_events: int, max_batch_seconds: float) -> None:
        self.seconds = batch_seconds
        self.min_events = min_batch_events
        self.max_seconds = max(max_batch_seconds, batch_seconds)
        self.events: list[Event] = []
        self.start: float | None = None  # on the batch_seconds grid
        self.end_ts = -math.inf  # event time of the last closed batch (its newest event)
        self.watermark = -math.inf  # newest event time seen
        self.late = 0  # events older than the open batch's start

    def add(self, ev: Event) -> EventColumns | None:
        """Take one event; returns the batch it closed, if any (the event then opens the next one)."""
        closed = None
        ts = ev.ts
        start = self.start
        if start is None:
            self.start = ts - ts % self.seconds
        elif ts >= start + self.seconds and (
            len(self.events) >= self.min_events or ts >= start + self.max_seconds
        ):
            closed = self.close()
            self.start = ts - ts % self.seconds
        elif ts < start:
            self.late += 1
        self.events.append(ev)
        if ts > self.watermark:
            self.watermark = ts
        return closed

    def close(self) -> EventColumns | None:
        """Close the open batch now (end of stream, an idle timer, a promotion): its events as columns."""
        if not self.events:
            return None
        cols = EventColumns.of(self.events)
        self.events = []
        self.end_ts = float(cols.ts.max())
        return cols

    def to_state(self) -> dict[str, Any]:
        return {
            "buffer": [ev.to_dict() for ev in self.events],
            "batch_start": self.start,
            "batch_end_ts": _finite(self.end_ts),
            "watermark": _finite(self.watermark),
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], batch_seconds: float, min_batch_events: int, max_batch_seconds: float
    ) -> OpenBatch:
        batch = cls(batch_seconds, min_batch_events, max_batch_seconds)
        for raw in state["buffer"]:
            ev = parse_event(raw)
            if not isinstance(ev, Event):
                raise ValueError(f"saved open batch holds an invalid event: {ev}")
            batch.events.append(ev)
        batch.start = state["batch_start"]
        batch.end_ts = _infinite(state["batch_end_ts"])
        batch.watermark = _infinite(state["watermark"])
        return batch


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _infinite(x: float | None) -> float:
    return -math.inf if x is None else float(x)
