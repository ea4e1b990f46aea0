"""A fixed-size Bloom filter of randomisation units seen, for counting *new* units per arm.

The sample-ratio check counts units (users, sessions), not requests: a heavy user routed to the
canary would otherwise look like a broken split. Remembering every unit id is unbounded, so a Bloom
filter answers "seen before?" in fixed memory. Its false positives (a new unit taken for a known one)
do not depend on the arm, so they thin both arms alike and never bias the ratio; they only slow the
test down once the filter fills up.

>>> f = UnitFilter(bits=1 << 12)
>>> f.add_if_new("user-1"), f.add_if_new("user-2"), f.add_if_new("user-1")
(True, True, False)
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Any

import numpy as np


class UnitFilter:
    """Bloom filter with ``hashes`` probes from one BLAKE2b digest (deterministic across runs)."""

    __slots__ = ("_bits", "_hashes", "_mask", "_nbits", "added")

    def __init__(self, bits: int = 1 << 20, hashes: int = 4) -> None:
        if bits <= 0 or bits & (bits - 1):
            raise ValueError("bits must be a positive power of two")
        self._nbits = bits
        self._mask = bits - 1
        self._hashes = hashes
        self._bits = np.zeros(bits // 8, dtype=np.uint8)
        self.added = 0

    def add_if_new(self, unit: str) -> bool:
        """Record ``unit``; True when it was (probably) not seen before."""
        digest = hashlib.blake2b(unit.encode(), digest_size=16).digest()
        h1 = int.from_bytes(digest[:8], "little")
        h2 = int.from_bytes(digest[8:], "little") | 1
        new = False
        bits = self._bits
        for i in range(self._hashes):
            pos = (h1 + i * h2) & self._mask
            byte, bit = pos >> 3, 1 << (pos & 7)
            if not bits[byte] & bit:
                new = True
                bits[byte] |= bit
        if new:
            self.added += 1
        return new

    def to_state(self) -> dict[str, Any]:
        packed = base64.b64encode(zlib.compress(self._bits.tobytes(), 6)).decode()
        return {"bits": self._nbits, "hashes": self._hashes, "added": self.added, "data": packed}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> UnitFilter:
        f = cls(int(state["bits"]), int(state["hashes"]))
        raw = zlib.decompress(base64.b64decode(state["data"]))
        f._bits = np.frombuffer(raw, dtype=np.uint8).copy()
        f.added = int(state["added"])
        return f
