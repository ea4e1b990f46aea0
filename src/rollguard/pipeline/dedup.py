"""Recently seen event ids of one rollout, so that an event delivered twice is counted once.

At-least-once producers retry, and a retry arrives close (in event time) to the original: keeping the
ids of the last ``window_s`` seconds of the rollout's event time is enough, and keeps the state small
enough to checkpoint with the rest of the rollout. Ids are kept as 64-bit BLAKE2b hashes (a false
"duplicate" needs a 64-bit collision among the ids of one window) in slots of ``window_s / 6`` seconds,
so that forgetting old ids is dropping whole slots.

>>> recent = RecentEventIds(window_s=60.0, max_ids=1000)
>>> recent.seen("e1", 100.0), recent.seen("e2", 101.0), recent.seen("e1", 130.0)
(False, False, True)
>>> recent.seen("e1", 400.0)  # long after the window: e1 was forgotten
False
"""

from __future__ import annotations

import base64
import hashlib
import math
from typing import Any, Final

import numpy as np

SLOTS_PER_WINDOW: Final = 6


def id_hash(event_id: str) -> int:
    """The 64-bit hash an id is kept as (stable across processes and Python versions)."""
    digest = hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class RecentEventIds:
    """Event ids seen in the last ``window_s`` of event time (at most ``max_ids`` of them)."""

    def __init__(self, window_s: float, max_ids: int) -> None:
        self.window_s = window_s
        self.max_ids = max_ids
        self.slot_s = window_s / SLOTS_PER_WINDOW
        self.slots: dict[int, set[int]] = {}
        self.size = 0
        self.newest_slot = -math.inf

    def seen(self, event_id: str, ts: float) -> bool:
        """True when ``event_id`` was seen within the window; otherwise remember it and return False."""
        if self.window_s <= 0:
            return False
        slot = math.floor(ts / self.slot_s)
        if slot > self.newest_slot:
            self.newest_slot = slot
            self._forget(slot - SLOTS_PER_WINDOW)
        h = id_hash(event_id)
        for known in self.slots.values():
            if h in known:
                return True
        self.slots.setdefault(slot, set()).add(h)
        self.size += 1
        if self.size > self.max_ids:
            self._forget_oldest_until(self.max_ids)
        return False

    def _forget(self, before: int) -> None:
        for slot in [s for s in self.slots if s <= before]:
            self.size -= len(self.slots.pop(slot))

    def _forget_oldest_until(self, limit: int) -> None:
        for slot in sorted(self.slots):
            if self.size <= limit or slot == self.newest_slot:
                break
            self.size -= len(self.slots.pop(slot))

    def to_state(self) -> dict[str, Any]:
        return {
            "slots": [
                [slot, base64.b64encode(np.asarray(sorted(ids), dtype="<u8").tobytes()).decode("ascii")]
                for slot, ids in sorted(self.slots.items())
            ]
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], window_s: float, max_ids: int) -> RecentEventIds:
        recent = cls(window_s, max_ids)
        for slot, packed in state["slots"]:
            ids = np.frombuffer(base64.b64decode(packed), dtype="<u8")
            recent.slots[int(slot)] = {int(x) for x in ids}
            recent.size += len(ids)
            recent.newest_slot = max(recent.newest_slot, int(slot))
        return recent
