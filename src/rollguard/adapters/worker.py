"""``rollguard worker``: the streaming worker (faust-streaming) over the events topic.

First stage: every message on the events topic is validated with :func:`rollguard.domain.events.parse_event`.
A malformed one goes to the dead-letter topic with the reason, the field and its source coordinates
(nothing is lost and the worker keeps running); a valid one is counted per ``rollout_id`` in a Faust
table. Later stages replace the counter with per-rollout detector state under the same key.

Why the key matters: a Faust table is partitioned like its source topic and its changelog is written
to the partition of the event being processed, so all events of one rollout must arrive on one
partition. The contract says key = ``rollout_id``; a valid event whose key is anything else is
re-published, byte for byte, to an internal re-key topic keyed by ``rollout_id`` (same partition
count, murmur2 like Kafka's Java client) and processed from there, never counted on the wrong
partition. Producers that key by rollout_id must use the murmur2 partitioner (the default of the
Java client, kafka-python and aiokafka; librdkafka clients need ``partitioner=murmur2_random``).

Delivery: at-least-once by default (a crash between a table update and the offset commit may count
an event twice after restart); ``worker.processing_guarantee: exactly_once`` in the config uses Kafka
transactions instead. Detection stages that must not double-count should dedupe on ``event_id``.

The app is built by :func:`create_app` so tests can run it in-process against a real broker.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import faust

from rollguard.adapters import dead_letter
from rollguard.adapters.topic_contracts import TopicContractError, TopicSpec, load_topics, topic_for_role
from rollguard.domain.events import Event, EventError, parse_event
from rollguard.settings.worker import WorkerSettings

log = logging.getLogger("rollguard.worker")

COUNTS_TABLE: Final = "rollout_event_counts"


@dataclass(frozen=True, slots=True)
class WorkerTopics:
    """The topics one worker reads and writes (names come from the contracts, by role)."""

    events: str
    dead_letter: str
    partitions: int  # of the events topic: tables and the re-key topic must match it

    @classmethod
    def from_contracts(cls, specs: list[TopicSpec]) -> WorkerTopics:
        events = topic_for_role(specs, "events")
        return cls(events.name, topic_for_role(specs, "dead-letter").name, events.partitions)


@dataclass(slots=True)
class WorkerStats:
    """In-process counters: what this worker instance did (the table holds the durable counts)."""

    valid: int = 0
    dead_lettered: int = 0
    rekeyed: int = 0
    errors: int = 0


@dataclass(slots=True)
class StartupTimings:
    """Monotonic timestamps of start-up phases, so join and recovery times can be reported."""

    started: float | None = None
    assigned: float | None = None  # first partition assignment: the consumer group join is done
    rebalance_complete: float | None = None  # table recovery done, streams resumed

    @property
    def join_s(self) -> float | None:
        if self.started is None or self.assigned is None:
            return None
        return self.assigned - self.started

    @property
    def ready_s(self) -> float | None:
        if self.started is None or self.rebalance_complete is None:
            return None
        return self.rebalance_complete - self.started


@dataclass(slots=True)
class WorkerApp:
    """A configured Faust app plus the handles tests and the CLI need."""

    app: faust.App
    counts: Any  # faust.Table[str, int]
    topics: WorkerTopics
    rekey_topic: str
    stats: WorkerStats = field(default_factory=WorkerStats)
    timings: StartupTimings = field(default_factory=StartupTimings)

    async def start(self) -> None:
        """Start in-process (tests); returns once the consumer runs and tables are recovered."""
        self.timings.started = time.monotonic()
        await self.app.start()

    async def stop(self) -> None:
        await self.app.stop()

    def counts_snapshot(self) -> dict[str, int]:
        """Current per-rollout counts held by this instance (its assigned partitions)."""
        return {str(k): int(v) for k, v in self.counts.items()}


def broker_urls(bootstrap: str) -> list[str]:
    """``host:port[,host:port]`` as Faust broker URLs."""
    hosts = [h.strip() for h in bootstrap.split(",") if h.strip()]
    if not hosts:
        raise ValueError("bootstrap must name at least one HOST:PORT")
    return [h if "://" in h else f"kafka://{h}" for h in hosts]


def _decode_key(key: Any) -> str | None:
    if key is None:
        return None
    if isinstance(key, bytes | bytearray | memoryview):
        try:
            return bytes(key).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return str(key)


def validate_message(value: Any) -> Event | EventError:
    """:func:`parse_event` plus the cases a Kafka message adds (tombstones); never raises."""
    if value is None:
        return EventError("", "message has no value (tombstone)")
    if not isinstance(value, bytes | bytearray | memoryview | str):
        return EventError("", f"unexpected message value type {type(value).__name__}")
    return parse_event(value)


def create_app(
    bootstrap: str,
    app_id: str = "rollguard",
    data_dir: str | Path | None = None,
    topics: WorkerTopics | None = None,
    *,
    topics_dir: str | Path | None = None,
    web_enabled: bool = False,
    web_port: int = 6066,
    web_bind: str = "0.0.0.0",
    processing_guarantee: str = "at_least_once",
    replication: int = 1,
    loop: asyncio.AbstractEventLoop | None = None,
    extra_settings: Mapping[str, Any] | None = None,
) -> WorkerApp:
    """Build the worker's Faust app (not started). Topic names default to the contracts' roles."""
    if topics is None:
        topics = WorkerTopics.from_contracts(load_topics(topics_dir))
    settings: dict[str, Any] = {
        "broker": broker_urls(bootstrap),
        "store": "memory://",  # state is rebuilt from the table changelog on restart
        "topic_partitions": topics.partitions,
        "topic_replication_factor": replication,
        "processing_guarantee": processing_guarantee,
        "web_enabled": web_enabled,
        "web_port": web_port,
        "web_bind": web_bind,
        "consumer_auto_offset_reset": "earliest",
        "autodiscover": False,
        "table_cleanup_interval": 30.0,
    }
    if data_dir is not None:
        settings["datadir"] = str(data_dir)
    settings.update(extra_settings or {})
    app = faust.App(app_id, loop=loop, **settings)

    # Raw bytes in and out: the validator sees exactly what the producer sent, and the dead-letter
    # and re-key topics carry the original bytes unchanged.
    events_topic = app.topic(topics.events, key_serializer="raw", value_serializer="raw")
    rekey_name = f"{app_id}-events-by-rollout"
    rekey_topic = app.topic(
        rekey_name, partitions=topics.partitions, internal=True, key_serializer="raw", value_serializer="raw"
    )
    dlq_topic = app.topic(topics.dead_letter, key_serializer="raw", value_serializer="raw")
    counts = app.Table(COUNTS_TABLE, default=int, partitions=topics.partitions, key_type=str, value_type=int)
    wa = WorkerApp(app=app, counts=counts, topics=topics, rekey_topic=rekey_name)

    async def send_dead_letter(event: Any, error: EventError) -> None:
        message = event.message
        ts = message.timestamp
        source = dead_letter.Source(
            message.topic, message.partition, message.offset, int(ts * 1000) if ts is not None else None
        )
        record = dead_letter.dead_letter_record(
            _raw_bytes(event.value), _raw_bytes(event.key), error, source, now=time.time(), worker=app_id
        )
        await dlq_topic.send(key=_raw_bytes(event.key), value=dead_letter.dumps(record))
        wa.stats.dead_lettered += 1
        log.warning("dead-lettered %s[%d]@%d: %s", message.topic, message.partition, message.offset, error)

    async def handle(event: Any, *, rekeyed: bool) -> None:
        result = validate_message(event.value)
        if isinstance(result, EventError):
            await send_dead_letter(event, result)
            return
        if not rekeyed and _decode_key(event.key) != result.rollout_id:
            # Counting here would put this rollout's state on the wrong partition: route by rollout_id.
            await rekey_topic.send(key=result.rollout_id.encode("utf-8"), value=_raw_bytes(event.value))
            wa.stats.rekeyed += 1
            return
        counts[result.rollout_id] += 1
        wa.stats.valid += 1

    async def handle_safely(event: Any, *, rekeyed: bool) -> None:
        # A bug in processing one message must not stop the stream (an agent that raises is dead):
        # log it and keep the message in the dead-letter topic so it can be replayed after a fix.
        try:
            await handle(event, rekeyed=rekeyed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            wa.stats.errors += 1
            log.exception(
                "processing failed for %s[%d]@%d",
                event.message.topic,
                event.message.partition,
                event.message.offset,
            )
            try:
                await send_dead_letter(event, EventError("", f"worker error: {type(exc).__name__}: {exc}"))
            except Exception:
                log.exception("could not dead-letter it either")

    @app.agent(events_topic, name=f"{app_id}.validate_events")
    async def validate_events(stream: Any) -> AsyncIterator[None]:
        async for event in stream.events():
            await handle_safely(event, rekeyed=False)
            yield None

    @app.agent(rekey_topic, name=f"{app_id}.rekeyed_events")
    async def rekeyed_events(stream: Any) -> AsyncIterator[None]:
        async for event in stream.events():
            await handle_safely(event, rekeyed=True)
            yield None

    async def _on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned")
        if wa.timings.assigned is None and assigned:
            wa.timings.assigned = time.monotonic()
            log.info("consumer group joined: %d partitions assigned", len(assigned))

    async def _on_rebalanced(sender: Any, *args: Any, **kwargs: Any) -> None:
        if wa.timings.rebalance_complete is None:
            wa.timings.rebalance_complete = time.monotonic()
            t = wa.timings
            log.info("worker ready: join %.2fs, ready %.2fs", t.join_s or 0.0, t.ready_s or 0.0)

    # mode's signal-handler type spells the `signal=` keyword in a way mypy cannot match; the
    # handlers accept it through **kwargs.
    app.on_partitions_assigned.connect(cast(Any, _on_assigned))
    app.on_rebalance_complete.connect(cast(Any, _on_rebalanced))

    @app.page("/rollguard/health/")
    async def health(self: Any, request: Any) -> Any:
        # Readiness, not liveness: Faust's web server answers before the group join and table
        # recovery, so "/" alone would call a worker healthy that cannot process anything yet.
        ready = wa.timings.rebalance_complete is not None and not app.rebalancing
        body = {
            "status": "ready" if ready else "starting",
            "app_id": app_id,
            "join_s": wa.timings.join_s,
            "ready_s": wa.timings.ready_s,
            "valid": wa.stats.valid,
            "dead_lettered": wa.stats.dead_lettered,
            "rekeyed": wa.stats.rekeyed,
            "errors": wa.stats.errors,
        }
        return self.json(body, status=200 if ready else 503)

    return wa


def _raw_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8")


# ---------------------------------------------------------------------------------------------- CLI


def load_worker_config(path: str | None) -> WorkerSettings:
    """Validate the whole config file (a bad config fails at start) and return its worker settings."""
    if path is None:
        return WorkerSettings()
    from rollguard.settings.config import load_config

    return load_config(path).worker


def _actual_partitions(bootstrap: str, names: list[str]) -> dict[str, int]:
    """Partition counts of the named topics that exist (fail fast before Faust waits forever)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="rollguard-worker-check")
    try:
        present = set(admin.list_topics())
        found = [n for n in names if n in present]
        described = admin.describe_topics(found) if found else []
        return {t["name"]: len(t.get("partitions") or []) for t in described if t.get("error_code", 0) == 0}
    finally:
        admin.close()


def run_worker(args: argparse.Namespace) -> int:
    """The CLI command: check the topics exist, then run the Faust worker until stopped."""
    logging.basicConfig(
        level=str(args.log_level).upper(), format="[%(asctime)s] %(levelname)s %(name)s: %(message)s"
    )
    try:
        specs = load_topics(args.topics_dir)
        topics = WorkerTopics.from_contracts(specs)
        config = load_worker_config(args.config)
    except (TopicContractError, ValueError, OSError) as exc:
        log.error("%s", exc)
        return 1
    try:
        actual = _actual_partitions(args.bootstrap, [topics.events, topics.dead_letter])
    except Exception as exc:
        log.error("cannot reach Kafka at %s: %s: %s", args.bootstrap, type(exc).__name__, exc)
        return 1
    missing = [n for n in (topics.events, topics.dead_letter) if n not in actual]
    if missing:
        log.error(
            "topics missing: %s; run `rollguard topics apply --bootstrap %s` first", missing, args.bootstrap
        )
        return 1
    if actual[topics.events] != topics.partitions:
        log.warning(
            "%s has %d partitions, the contract says %d: using the actual count",
            topics.events,
            actual[topics.events],
            topics.partitions,
        )
        topics = WorkerTopics(topics.events, topics.dead_letter, actual[topics.events])

    wa = create_app(
        args.bootstrap,
        args.app_id,
        args.data_dir,
        topics,
        web_enabled=config.web_enabled,
        web_port=config.web_port,
        web_bind=config.web_bind,
        processing_guarantee=config.processing_guarantee,
        replication=config.replication,
    )
    from faust.worker import Worker

    worker = Worker(wa.app, loglevel=args.log_level)
    wa.timings.started = time.monotonic()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    return 0
