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
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt


class UnitFilter:
    """Bloom filter with ``hashes`` probes by double hashing (deterministic across runs)."""

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
        return bool(self.add_many([unit])[0])

    def add_many(self, units: list[str]) -> npt.NDArray[np.bool_]:
        """Record a batch of units; for each, True when it was (probably) new at that point.

        A unit is new at its first request in the batch if the filter did not hold it before the
        batch; its later requests are not new. Hashing is vectorised over the batch's distinct units
        (CRC-32 and Adler-32 seed a double hashing scheme: deterministic across runs and machines,
        unlike Python's ``hash``).

        >>> UnitFilter(bits=1 << 12).add_many(["a", "b", "a"]).tolist()
        [True, True, False]
        """
        n = len(units)
        out = np.zeros(n, dtype=bool)
        if not n:
            return out
        # Each distinct unit's first position: a dict built back to front keeps the earliest index.
        first = dict(zip(reversed(units), range(n - 1, -1, -1), strict=True))
        encoded = list(map(str.encode, first))
        h1 = np.fromiter(map(zlib.crc32, encoded), dtype=np.uint64, count=len(encoded))
        h2 = np.fromiter(map(zlib.adler32, encoded), dtype=np.uint64, count=len(encoded)) | np.uint64(1)
        i = np.arange(self._hashes, dtype=np.uint64)
        pos = (h1[:, None] + i[None, :] * h2[:, None]) & np.uint64(self._mask)
        byte = (pos >> np.uint64(3)).astype(np.intp)
        bit = np.left_shift(np.uint8(1), (pos & np.uint64(7)).astype(np.uint8))
        known = ((self._bits[byte] & bit) != 0).all(axis=1)
        np.bitwise_or.at(self._bits, byte.ravel(), bit.ravel())
        positions = np.fromiter(first.values(), dtype=np.intp, count=len(first))
        out[positions[~known]] = True
        self.added += int((~known).sum())
        return out

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
