"""Which source offsets a worker may let Kafka commit, and which re-delivered events it must skip.

A rollout's state is checkpointed (with the source offsets it covers) at batch boundaries, not per
event. So an offset may be committed only once every event before it is inside some rollout's
checkpoint: the *low watermark* of a partition is the oldest offset whose event is not yet covered by
its rollout's latest checkpoint, and the worker acks (lets Faust commit) only events below it. After a
crash or a rebalance, consumption restarts at the committed offset, at or before the low watermark;
an event at or below its rollout's checkpointed offset is already in that rollout's state and is
skipped, every later one is applied again — so the restored worker decides exactly as one that never
stopped, and no event is counted twice or lost.

>>> tracker = OffsetTracker()
>>> tracker.hold("events", 0, 10, "a"); tracker.hold("events", 0, 11, "b"); tracker.hold("events", 0, 12, "a")
>>> tracker.low("events", 0)
10
>>> tracker.covered("a", {("events", 0): 12})
>>> tracker.low("events", 0), tracker.releasable("events", 0)
(11, [10])
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

TP = tuple[str, int]


@dataclass(slots=True)
class _Partition:
    held: deque[tuple[int, Any]] = field(default_factory=deque)  # (offset, event handle), offset order
    first_uncovered: dict[str, int] = field(default_factory=dict)  # rollout -> oldest offset not covered
    head: int = -1  # newest offset seen


class OffsetTracker:
    """Per source partition: events held until covered, and each rollout's oldest uncovered offset."""

    def __init__(self) -> None:
        self._parts: dict[TP, _Partition] = {}

    def hold(
        self, topic: str, partition: int, offset: int, rollout_id: str | None, handle: Any = None
    ) -> None:
        """An event was read (applied, skipped or dead-lettered): keep it until it may be committed.
        ``rollout_id`` None means nothing depends on a checkpoint for it (e.g. a dead-lettered message)."""
        part = self._parts.setdefault((topic, partition), _Partition())
        part.held.append((offset, handle if handle is not None else offset))
        if offset > part.head:
            part.head = offset
        if rollout_id is not None and rollout_id not in part.first_uncovered:
            part.first_uncovered[rollout_id] = offset

    def covered(self, rollout_id: str, offsets: dict[TP, int]) -> None:
        """A checkpoint of ``rollout_id`` now covers its events up to these offsets (inclusive)."""
        for tp, upto in offsets.items():
            part = self._parts.get(tp)
            if part is None:
                continue
            first = part.first_uncovered.get(rollout_id)
            if first is not None and first <= upto:
                del part.first_uncovered[rollout_id]

    def low(self, topic: str, partition: int) -> int:
        """The oldest offset of this partition whose event is not yet inside a checkpoint."""
        part = self._parts.get((topic, partition))
        if part is None:
            return 0
        if part.first_uncovered:
            return min(part.first_uncovered.values())
        return part.head + 1

    def releasable(self, topic: str, partition: int) -> list[Any]:
        """Take the held events below the low watermark (in offset order): ack these."""
        part = self._parts.get((topic, partition))
        if part is None:
            return []
        low = self.low(topic, partition)
        out = []
        while part.held and part.held[0][0] < low:
            out.append(part.held.popleft()[1])
        return out

    def lag(self, topic: str, partition: int, rollout_id: str) -> int:
        """How many offsets the rollout's oldest uncovered event is behind the partition's head."""
        part = self._parts.get((topic, partition))
        if part is None or rollout_id not in part.first_uncovered:
            return 0
        return part.head - part.first_uncovered[rollout_id]

    def head(self, topic: str, partition: int) -> int:
        """The newest offset read from this partition (-1: none yet)."""
        part = self._parts.get((topic, partition))
        return part.head if part is not None else -1

    def uncovered(self, topic: str, partition: int) -> dict[str, int]:
        part = self._parts.get((topic, partition))
        return dict(part.first_uncovered) if part is not None else {}

    def partitions(self) -> list[TP]:
        return sorted(self._parts)

    def forget(self, topic: str, partition: int) -> None:
        """The partition was revoked: nothing held for it may be acked by this worker any more."""
        self._parts.pop((topic, partition), None)
