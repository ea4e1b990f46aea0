"""Which source offsets a worker may commit, which re-delivered messages it must skip, and whether a
partition's messages reached it without a hole.

A rollout's state is checkpointed (with the source offsets it covers) at batch boundaries, not per
event. So an offset may be committed only once every message before it is inside some rollout's
checkpoint: the *low watermark* of a partition is the oldest offset whose event is not yet covered by
its rollout's latest checkpoint, and the worker commits exactly that (it commits its source offsets
itself; Faust's own commits, computed from acks, are never used). After a crash or a rebalance,
consumption restarts at the committed offset; a message at or below its rollout's checkpointed offset
is already in that rollout's state and is skipped, every later one is applied again — so the restored
worker decides exactly as one that never stopped, and no event is counted twice or lost.

>>> tracker = OffsetTracker()
>>> for offset, rollout in [(10, "a"), (11, "b"), (12, "a")]:
...     tracker.read(("events", 0), offset, rollout)
>>> tracker.low(("events", 0))
10
>>> tracker.covered("a", {("events", 0): 12})
>>> tracker.low(("events", 0))
11
"""

from __future__ import annotations

from dataclasses import dataclass, field

TP = tuple[str, int]


@dataclass(slots=True)
class _Partition:
    first_uncovered: dict[str, int] = field(default_factory=dict)  # rollout -> oldest offset not covered
    head: int = -1  # newest offset read


class OffsetTracker:
    """Per source partition: the newest offset read, and each rollout's oldest uncovered offset."""

    def __init__(self) -> None:
        self._parts: dict[TP, _Partition] = {}

    def read(self, tp: TP, offset: int, rollout_id: str | None) -> None:
        """A message was handled (applied, skipped, dead-lettered, re-keyed). ``rollout_id``: the rollout
        whose next checkpoint must cover it (None: nothing depends on a checkpoint for it)."""
        part = self._parts.setdefault(tp, _Partition())
        if offset > part.head:
            part.head = offset
        if rollout_id is not None and rollout_id not in part.first_uncovered:
            part.first_uncovered[rollout_id] = offset

    def covered(self, rollout_id: str, offsets: dict[TP, int]) -> None:
        """A checkpoint of ``rollout_id`` now covers its messages up to these offsets (inclusive)."""
        for tp, upto in offsets.items():
            part = self._parts.get(tp)
            if part is None:
                continue
            first = part.first_uncovered.get(rollout_id)
            if first is not None and first <= upto:
                del part.first_uncovered[rollout_id]

    def low(self, tp: TP) -> int:
        """The offset to commit: every message before it is handled and inside a checkpoint."""
        part = self._parts.get(tp)
        if part is None:
            return 0
        if part.first_uncovered:
            return min(part.first_uncovered.values())
        return part.head + 1

    def head(self, tp: TP) -> int:
        """The newest offset read from this partition (-1: none yet)."""
        part = self._parts.get(tp)
        return part.head if part is not None else -1

    def lag(self, tp: TP, rollout_id: str) -> int:
        """How many offsets the rollout's oldest uncovered message is behind the partition's head."""
        part = self._parts.get(tp)
        if part is None or rollout_id not in part.first_uncovered:
            return 0
        return part.head - part.first_uncovered[rollout_id]

    def partitions(self) -> list[TP]:
        return sorted(self._parts)


class ReadGuard:
    """Whether each message continues its partition without a hole.

    faust-streaming can hand a worker offset 2816 when 2769 was next: its flow control clears the
    queues of its streams whenever it resumes (``mode``'s ``FlowControlEvent.resume``), and its table
    recovery resumes it again after the streams started; and its own offset commits then skip a single
    missing message at the head of a partition. Nothing may be lost, so the worker checks every source
    partition: the first message of an assignment must not be after the lowest offset it still needs
    (the committed offset, or just after the oldest checkpoint), and every next one must follow the
    last. A hole is read with a consumer of the worker's own and applied in order before the message
    that revealed it (:meth:`check` returns its range); a message already handled is ``"old"``.

    >>> guard = ReadGuard()
    >>> guard.start(("t", 0), 10)
    >>> [guard.check(("t", 0), offset) for offset in (10, 11, 14, 12, 15)]
    ['ok', 'ok', (12, 14), 'old', 'ok']
    """

    def __init__(self) -> None:
        self.lower: dict[TP, int | None] = {}
        self.expected: dict[TP, int] = {}

    def knows(self, tp: TP) -> bool:
        return tp in self.lower or tp in self.expected

    def next_needed(self, tp: TP) -> int | None:
        """The offset this partition's next message must have (None: not known yet)."""
        expected = self.expected.get(tp)
        return expected if expected is not None else self.lower.get(tp)

    def start(self, tp: TP, lowest_needed: int | None) -> None:
        """The lowest offset this partition's first message may have (None: any)."""
        self.lower[tp] = lowest_needed

    def check(self, tp: TP, offset: int) -> str | tuple[int, int]:
        """``"ok"``, ``"old"`` or the missing range ``(first, end)`` (end exclusive) before ``offset``."""
        expected = self.expected.get(tp)
        if expected is None:
            lowest = self.lower.get(tp)
            self.expected[tp] = offset + 1
            return (lowest, offset) if lowest is not None and offset > lowest else "ok"
        if offset < expected:
            return "old"
        self.expected[tp] = offset + 1
        return "ok" if offset == expected else (expected, offset)


class StallWatch:
    """Partitions whose next needed message has not come for ``after_s`` although the broker has it.

    The hole check above needs a later message to reveal a hole; when the messages Faust dropped were
    the last ones of a quiet partition, none comes. So the worker also watches each source partition's
    high watermark: when it is past the next offset needed and that offset has not moved for
    ``after_s`` seconds, the stretch is read by the worker itself (a message Faust still delivers later
    is then ``"old"``). A reported stretch is reported again only after another ``after_s``.

    >>> watch = StallWatch(after_s=5.0)
    >>> [watch.check(("t", 0), needed=7, high=9, now=t) for t in (0.0, 3.0, 5.0, 6.0)]
    [None, None, (7, 9), None]
    >>> watch.check(("t", 0), needed=9, high=9, now=7.0) is None  # caught up
    True
    """

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self._since: dict[TP, tuple[int, float]] = {}  # (next needed offset, when it was first seen)

    def check(self, tp: TP, needed: int | None, high: int | None, now: float) -> tuple[int, int] | None:
        """The stretch ``(first, end)`` (end exclusive) to read now, or None."""
        if needed is None or high is None or high <= needed:
            self._since.pop(tp, None)
            return None
        seen = self._since.get(tp)
        if seen is None or seen[0] != needed:
            self._since[tp] = (needed, now)
            return None
        if now - seen[1] < self.after_s:
            return None
        self._since[tp] = (needed, now)
        return needed, high

    def forget(self) -> None:
        """A new assignment: every partition is watched afresh."""
        self._since.clear()
