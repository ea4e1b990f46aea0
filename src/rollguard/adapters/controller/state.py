"""What a controller answered, kept across its restarts (SQLite in ``--state-dir``).

Two facts are durable: every ack it gave to a verified command (command_id -> the ack, byte for byte),
so a redelivered command gets its original answer again instead of a fresh reject (it may have expired
since, or its end state made it look superseded); and each rollout's highest applied ``sequence``, so an
older command arriving late is refused as superseded. Each record is one transaction with
``synchronous=FULL``: once :meth:`ControllerState.record` returns, it survives a crash, and only then
does the controller publish the ack and commit the Kafka offset.

Acks older than ``keep_s`` (default 35 days: longer than the control topic's 30-day retention, so no
redelivery can outlive its record) are pruned.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS acks (
    command_id TEXT PRIMARY KEY,
    rollout_id TEXT NOT NULL,
    at REAL NOT NULL,
    ack BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS acks_at ON acks (at);
CREATE TABLE IF NOT EXISTS sequences (
    rollout_id TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL
);
"""


class ControllerState:
    """The acks and applied sequences of one controller (one flags file)."""

    def __init__(self, directory: Path, name: str, keep_s: float = 35 * 86400.0) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{name}.sqlite"
        self.keep_s = keep_s
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def ack_for(self, command_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT ack FROM acks WHERE command_id = ?", (command_id,)).fetchone()
        if row is None:
            return None
        ack: dict[str, Any] = orjson.loads(row[0])
        return ack

    def last_sequence(self, rollout_id: str) -> int | None:
        row = self._db.execute(
            "SELECT sequence FROM sequences WHERE rollout_id = ?", (rollout_id,)
        ).fetchone()
        return None if row is None else int(row[0])

    def record(self, ack: dict[str, Any], applied_sequence: int | None = None) -> None:
        """Keep ``ack`` (and the rollout's applied sequence, when given) in one durable transaction."""
        at = float(ack["at"])
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO acks (command_id, rollout_id, at, ack) VALUES (?, ?, ?, ?)",
                (ack["command_id"], ack["rollout_id"], at, orjson.dumps(ack)),
            )
            if applied_sequence is not None:
                self._db.execute(
                    "INSERT INTO sequences (rollout_id, sequence) VALUES (?, ?) "
                    "ON CONFLICT (rollout_id) DO UPDATE SET sequence = max(sequence, excluded.sequence)",
                    (ack["rollout_id"], applied_sequence),
                )
            self._db.execute("DELETE FROM acks WHERE at < ?", (at - self.keep_s,))

    def close(self) -> None:
        self._db.close()
