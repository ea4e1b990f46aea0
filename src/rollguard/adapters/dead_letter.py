"""Dead-letter records (contract ``topics/schemas/dead-letter.v1.json``).

A message rollguard cannot accept is not dropped and does not stop the worker: it is wrapped with
the reason, the field at fault and its source coordinates, and published to the dead-letter topic,
where it can be inspected and replayed. The original bytes are kept exactly: as text when they are
valid UTF-8 (readable in any console), else as base64. Pure: no Kafka import.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any, Final

import orjson

from rollguard.domain.events import EventError

SCHEMA_VERSION: Final = 1
# A record must fit the dead-letter topic (1 MB by default) after base64 (4/3) and the wrapping: larger
# originals are carried as a prefix, with their size and a hash of the whole.
MAX_ORIGINAL: Final = 256 * 1024
KEPT_PREFIX: Final = 4096


def encode_bytes(data: bytes | None) -> tuple[str | None, str]:
    """``(text, encoding)``: UTF-8 text when the bytes decode, else base64; ``None`` stays ``None``."""
    if data is None:
        return None, "utf-8"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def decode_original(record: dict[str, Any]) -> bytes:
    """The original message value of a dead-letter record (for replay and tests): exact, or its prefix
    when ``original_truncated``."""
    text = record["original"]
    if record.get("original_encoding") == "base64":
        return base64.b64decode(text)
    return str(text).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a rejected message came from."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


def dead_letter_record(
    value: bytes | None,
    key: bytes | None,
    error: EventError,
    source: Source,
    *,
    now: float,
    worker: str,
    contract: str = "event.v1",
) -> dict[str, Any]:
    """The dead-letter v1 object for one rejected message; ``now`` is wall-clock epoch seconds."""
    size = len(value) if value is not None else 0
    truncated = value is not None and size > MAX_ORIGINAL
    kept = value[:KEPT_PREFIX] if truncated and value is not None else value
    original, original_encoding = encode_bytes(kept)
    original_key, key_encoding = encode_bytes(key[:KEPT_PREFIX] if key is not None else None)
    extra: dict[str, Any] = {}
    if truncated and value is not None:
        extra = {"original_truncated": True, "original_size": size,
                 "original_sha256": hashlib.sha256(value).hexdigest()}  # fmt: skip
    return {
        **extra,
        "schema_version": SCHEMA_VERSION,
        "original": original if original is not None else "",
        "original_encoding": original_encoding,
        "original_key": original_key,
        "original_key_encoding": key_encoding,
        "reason": error.reason,
        "field": error.field,
        "contract": contract,
        "event_id": error.event_id,
        "source_topic": source.topic,
        "source_partition": source.partition,
        "source_offset": source.offset,
        "source_timestamp_ms": source.timestamp_ms,
        "ts": now,
        "worker": worker,
    }


def dumps(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)
