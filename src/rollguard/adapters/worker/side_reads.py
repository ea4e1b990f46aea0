"""Reads a worker makes beside its Faust streams, with a consumer of its own (aiokafka, no group).

- the partition counts and end offsets of the output topics (the first read-back marks);
- the records published on them after a checkpoint's marks (outputs not to publish twice);
- the offsets its consumer group committed (where a restored partition must resume);
- a stretch of a source partition that Faust did not deliver (read it here and apply it in order).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from rollguard.adapters.kafka_security import KafkaSecurity

TP = tuple[str, int]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One message of a source topic, as the worker handles it (from Faust, or read here)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None

    @property
    def tp(self) -> TP:
        return (self.topic, self.partition)


class SideReader:
    """Short-lived aiokafka consumers for the reads above (each call opens and closes its own)."""

    def __init__(self, bootstrap: str, client_id: str, group_id: str, security: KafkaSecurity) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.group_id = group_id
        self.security = security

    def _consumer(self, *, group: bool = False) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            group_id=self.group_id if group else None,
            client_id=f"{self.client_id}-side",
            **self.security.aiokafka_kwargs(),
        )

    async def partitions(self, topics: Iterable[str]) -> dict[TP, int]:
        """Every partition of ``topics`` with its end offset (the offset the next record will get)."""
        consumer = self._consumer()
        await consumer.start()
        try:
            tps = [TopicPartition(t, p) for t in topics for p in await _partitions_for(consumer, t)]
            ends = await consumer.end_offsets(tps)
            return {(tp.topic, tp.partition): int(end) for tp, end in ends.items()}
        finally:
            await consumer.stop()

    async def committed(self, tps: Iterable[TP]) -> dict[TP, int | None]:
        """The offsets the worker's consumer group committed (None: nothing yet)."""
        consumer = self._consumer(group=True)
        await consumer.start()
        try:
            return {tp: await consumer.committed(TopicPartition(*tp)) for tp in tps}
        finally:
            await consumer.stop()

    async def records(
        self, since: Mapping[TP, int], until: Mapping[TP, int] | None = None
    ) -> list[SourceRecord]:
        """Records after ``since`` (exclusive) and before ``until`` (exclusive; default: the end), in
        offset order per partition."""
        consumer = self._consumer()
        await consumer.start()
        try:
            tps = [TopicPartition(t, p) for t, p in sorted(since)]
            if not tps:
                return []
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            todo: dict[TopicPartition, int] = {}
            for tp in tps:
                start = since[(tp.topic, tp.partition)] + 1
                stop = ends[tp] if until is None else min(ends[tp], until[(tp.topic, tp.partition)])
                if start < stop:
                    consumer.seek(tp, start)
                    todo[tp] = stop
            out: list[SourceRecord] = []
            while todo:
                batch = await consumer.getmany(*todo, timeout_ms=1000)
                for tp, found in batch.items():
                    stop = todo.get(tp)
                    if stop is None:
                        continue
                    out += [
                        SourceRecord(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp / 1000.0)
                        for r in found
                        if r.offset < stop
                    ]
                for tp in list(todo):
                    if await consumer.position(tp) >= todo[tp]:
                        del todo[tp]
            return out
        finally:
            await consumer.stop()


async def _partitions_for(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no partitions (does it exist?)")


def as_source(event: Any) -> SourceRecord:
    """A Faust event as the record the worker handles."""
    m = event.message
    return SourceRecord(m.topic, m.partition, m.offset, _raw(event.key), _raw(event.value), m.timestamp)


def _raw(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8")
