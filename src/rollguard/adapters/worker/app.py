"""``rollguard worker``: the whole core on Kafka — the same pipelines ``rollguard replay`` drives.

Flow. Events (key = rollout_id) reach the pipeline of their rollout; a malformed message goes to the
dead-letter topic with the reason, a valid one whose key is not its rollout id is re-published keyed by
it (so it is never analysed on the wrong partition). Acks (acks topic) and operator actions (control
topic) reach their rollout's pipeline too. Every output goes to its topic keyed by rollout id:
verdict changes, alert notifications by severity tier, commands on the control topic, audit records.

Partitioning. The events, acks and control topics, the internal topics and the state table all have
the events topic's partition count, so one worker owns everything of a rollout (Faust assigns
co-partitioned topics together). Several workers in one consumer group split the rollouts.

State. Each rollout's pipeline state is checkpointed in a changelog-backed Faust table at batch
boundaries (and after acks, operator actions and outputs), together with the source offsets it covers;
an event's offset is committed only once a checkpoint covers it (:mod:`.offsets`). After a crash or a
rebalance the worker restores the checkpoints, skips re-delivered events they cover and applies the
rest again: it decides exactly as one that never stopped. Outputs that re-applied events regenerate
are read back from their topics and not published twice (:mod:`.outputs`): a command id or a critical
alert notification appears on its topic once.

Time. Decisions use event time. A rollout whose traffic stops still gets its resolves, expiries and
escalations: when it has had no event for ``idle_after_s`` of wall time, a tick (through an internal
topic, so that it is handled by the rollout's owner like any input) closes its open batch and moves its
clock to its last event time plus the wall time since. This is the one place the wall clock enters,
and the clock is injectable (tests pass their own).

Delivery: at-least-once with idempotent effects; ``processing_guarantee`` stays at-least-once (Faust's
exactly-once has open duplicate bugs after kills, faust-streaming #517/#323/#177). One message in flight
per partition (agent concurrency 1, faust-streaming #606).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from rollguard.adapters import dead_letter
from rollguard.adapters.kafka_security import KafkaSecurity
from rollguard.adapters.worker.checkpoint import Checkpoint
from rollguard.adapters.worker.observability import WorkerMetrics, rollout_status
from rollguard.adapters.worker.offsets import OffsetTracker
from rollguard.adapters.worker.outputs import DEDUPED_ROLES, ids_by_rollout, records_of
from rollguard.adapters.worker.topics import WorkerTopics, partition_for
from rollguard.domain.events import Event, EventError, parse_event
from rollguard.pipeline.pipelines import Pipelines
from rollguard.pipeline.rollout import RolloutPipeline, Step
from rollguard.policy.policy import OPERATOR_ACTIONS
from rollguard.settings import Config

log = logging.getLogger("rollguard.worker")

TP = tuple[str, int]
STATE_TABLE: Final = "pipelines"
SILENCE_TABLE: Final = "silences"


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How one worker connects and paces itself (the ``worker:`` section of the config, or flags)."""

    bootstrap: str
    app_id: str = "rollguard"  # Faust app id: consumer group, table and internal topic names
    instance: str = "rollguard"  # who issues commands (issued_by, signed): the same in replay and worker
    client_id: str | None = None
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    data_dir: str | None = None
    store: str = "memory"  # or "rocksdb" (rocksdict): keeps changelog offsets across restarts
    web_enabled: bool = True
    web_port: int = 6066
    web_bind: str = "127.0.0.1"
    idle_after_s: float = 30.0  # wall time without events before an idle rollout's clock moves on
    tick_s: float = 1.0
    checkpoint_every_s: float = 5.0  # at batch boundaries, at most this often per rollout (wall time)
    checkpoint_max_lag: int = 20_000  # ... and whenever a rollout holds back the commit by this many offsets
    replication: int = 1
    rocksdb_block_cache_mb: int = 16
    session_timeout_s: float = 10.0  # how long a killed worker's partitions wait before moving


@dataclass(slots=True)
class WorkerStats:
    """In-process counters of this worker instance (the metrics hold the same, labelled)."""

    applied: int = 0
    dead_lettered: int = 0
    rekeyed: int = 0
    skipped: int = 0
    errors: int = 0
    restored: int = 0
    checkpoints: int = 0
    suppressed: int = 0


@dataclass(slots=True)
class StartupTimings:
    """Monotonic timestamps of start-up phases, so join and recovery times can be reported."""

    started: float | None = None
    assigned: float | None = None  # first partition assignment: the consumer group join is done
    rebalance_complete: float | None = None  # table recovery done, streams resumed
    restored: float | None = None  # every rollout of the assigned partitions restored

    @property
    def join_s(self) -> float | None:
        return None if self.started is None or self.assigned is None else self.assigned - self.started

    @property
    def ready_s(self) -> float | None:
        if self.started is None or self.rebalance_complete is None:
            return None
        return self.rebalance_complete - self.started


@dataclass(slots=True)
class RolloutRuntime:
    """A rollout held by this worker: its pipeline and what its next checkpoint must say."""

    pipeline: RolloutPipeline
    partition: int
    covered: dict[TP, int] = field(default_factory=dict)  # source offsets inside the last checkpoint
    applied: dict[TP, int] = field(default_factory=dict)  # newest source offsets applied to the state
    suppress: set[str] = field(default_factory=set)  # outputs already published (read back at restore)
    batches: int = 0  # batches closed at the last checkpoint
    checkpoint_wall: float = 0.0
    last_event_wall: float = 0.0
    idle_handled: bool = False
    dirty: bool = False


class WorkerRuntime:
    """The rollouts of this worker's partitions, and every step from a Kafka message to published outputs."""

    def __init__(
        self,
        app: faust.App,
        options: WorkerOptions,
        config: Config,
        topics: WorkerTopics,
        *,
        signing_key: bytes | None,
        clock: Callable[[], float],
    ) -> None:
        self.app = app
        self.options = options
        self.config = config
        self.topics = topics
        self.clock = clock
        self.pipelines = Pipelines(config, signing_key=signing_key, instance=options.instance)
        self.runtimes: dict[str, RolloutRuntime] = {}
        self.tracker = OffsetTracker()
        self.marks: dict[TP, int] = {}  # newest offset known on each output partition
        self.output_partitions: dict[str, int] = {}
        self.stats = WorkerStats()
        self.timings = StartupTimings()
        self.assigned: set[TP] = set()
        self.generation = 0  # bumped at every assignment: held rollouts are restored afresh
        self.restored_generation = -1
        # One message at a time across every agent: a rebalance (which bumps ``generation``) can then only
        # interleave at an await, and every handler re-checks the generation before it acks anything.
        self.work_lock = asyncio.Lock()
        self.streams: dict[str, Any] = {}  # source topic -> the (noack) stream whose events we ack
        self.metrics = WorkerMetrics(lambda: (rt.pipeline for rt in self.runtimes.values()), self.lag)
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        n = topics.partitions
        self.events_topic = app.topic(topics.events, **raw)
        self.rekey_topic = app.topic(
            f"{options.app_id}-events-by-rollout", partitions=n, internal=True, **raw
        )
        self.acks_topic = app.topic(topics.acks, **raw)
        self.control_topic = app.topic(topics.control, **raw)
        self.inputs_topic = app.topic(
            f"{options.app_id}-inputs-by-rollout", partitions=n, internal=True, **raw
        )
        self.ticks_topic = app.topic(f"{options.app_id}-ticks", partitions=n, internal=True, **raw)
        self.dlq_topic = app.topic(topics.dead_letter, **raw)
        self.out_topics = {
            role: app.topic(topics.name(role), **raw)
            for role in ("verdicts", "audit", "control", *topics.alerts)
        }
        self.table = app.Table(
            STATE_TABLE,
            partitions=n,
            key_type=bytes,
            value_type=bytes,
            extra_topic_configs={
                "max.message.bytes": str(16 * 1024 * 1024),
                "segment.ms": str(3_600_000),
                "min.cleanable.dirty.ratio": "0.1",
            },
        )
        self.silences = app.GlobalTable(SILENCE_TABLE, partitions=n, key_type=bytes, value_type=bytes)
        self.source_roles = {
            topics.events: "events",
            self.rekey_topic.get_topic_name(): "events",
            topics.acks: "acks",
            topics.control: "control",
            self.inputs_topic.get_topic_name(): "inputs",
        }

    # ------------------------------------------------------------------ partitions
    def on_assigned(self, assigned: Iterable[Any]) -> None:
        self.assigned = {(tp.topic, tp.partition) for tp in assigned}
        self.generation += 1
        if self.timings.assigned is None and self.assigned:
            self.timings.assigned = time.monotonic()

    def on_revoked(self, revoked: Iterable[Any]) -> None:
        # Eager rebalances revoke everything: what this worker held is restored from the checkpoints
        # at the next message (events it had not acked will be delivered again). Handlers in flight
        # see the generation change and ack nothing more.
        self.generation += 1

    def events_partitions(self) -> set[int]:
        names = {self.topics.events, self.rekey_topic.get_topic_name()}
        return {p for t, p in self.assigned if t in names}

    async def ready(self) -> None:
        """Restore every rollout of the assigned partitions once per assignment (before any message;
        called under :attr:`work_lock`)."""
        if self.restored_generation == self.generation:
            return
        generation = self.generation
        await self._restore_all()
        self.restored_generation = generation
        if self.timings.restored is None:
            self.timings.restored = time.monotonic()

    async def _restore_all(self) -> None:
        self.runtimes.clear()
        self.pipelines.by_rollout.clear()
        self.tracker = OffsetTracker()
        mine = self.events_partitions()
        n = self.topics.partitions
        checkpoints = [
            Checkpoint.decode(blob)
            for key, blob in list(self.table.data.items())
            if blob is not None and partition_for(key, n) in mine
        ]
        await self._learn_output_partitions()
        lows: dict[TP, int] = {}
        for cp in checkpoints:
            for tp, mark in cp.marks.items():
                lows[tp] = min(lows.get(tp, mark), mark)
        found = await self._read_back(lows) if lows else {}
        shared, model = self.pipelines.shared, self.pipelines.model
        for cp in checkpoints:
            pipeline = RolloutPipeline.from_state(
                cp.state,
                self.config,
                shared,
                model=model,
                signing_key=self.pipelines.signing_key,
                instance=self.pipelines.instance,
            )
            rt = RolloutRuntime(
                pipeline,
                partition_for(cp.rollout_id.encode(), n),
                dict(cp.covered),
                dict(cp.covered),
                found.get(cp.rollout_id, set()),
            )
            rt.batches = _batches(pipeline)
            rt.checkpoint_wall = rt.last_event_wall = self.clock()
            self.runtimes[cp.rollout_id] = rt
            self.pipelines.by_rollout[cp.rollout_id] = pipeline
        self.stats.restored += len(checkpoints)
        self.metrics.restores.inc(len(checkpoints))
        if checkpoints:
            log.info(
                "restored %d rollouts; %d outputs read back", len(checkpoints), sum(map(len, found.values()))
            )

    async def _learn_output_partitions(self) -> None:
        """Partition counts of the output topics, and their end offsets as the first marks."""
        consumer = self._consumer()
        await consumer.start()
        try:
            tps = []
            for role in DEDUPED_ROLES:
                name = self.topics.name(role)
                parts = await _partitions_for(consumer, name)
                self.output_partitions[name] = len(parts)
                tps += [TopicPartition(name, p) for p in parts]
            ends = await consumer.end_offsets(tps)
            for tp, end in ends.items():
                key = (tp.topic, tp.partition)
                self.marks[key] = max(self.marks.get(key, -1), end - 1)
        finally:
            await consumer.stop()

    async def _read_back(self, since: Mapping[TP, int]) -> dict[str, set[str]]:
        """Output ids on each (deduplicated) output partition after ``since``, by rollout."""
        consumer = self._consumer()
        await consumer.start()
        try:
            tps = [TopicPartition(t, p) for t, p in sorted(since) if t in self.output_partitions]
            if not tps:
                return {}
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            todo = {}
            for tp in tps:
                start = since[(tp.topic, tp.partition)] + 1
                if start < ends[tp]:
                    consumer.seek(tp, start)
                    todo[tp] = ends[tp]
            messages: list[tuple[bytes | None, bytes | None]] = []
            while todo:
                batch = await consumer.getmany(*todo, timeout_ms=1000)
                for records in batch.values():
                    messages += [(r.key, r.value) for r in records]
                for tp in list(todo):
                    if await consumer.position(tp) >= todo[tp]:
                        del todo[tp]
            return ids_by_rollout(messages)
        finally:
            await consumer.stop()

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.options.bootstrap,
            enable_auto_commit=False,
            group_id=None,
            client_id=f"{self.options.client_id or self.options.app_id}-readback",
            **self.options.security.aiokafka_kwargs(),
        )

    # ------------------------------------------------------------------ rollouts
    async def runtime(self, rollout_id: str) -> RolloutRuntime:
        rt = self.runtimes.get(rollout_id)
        if rt is not None:
            return rt
        key = rollout_id.encode("utf-8")
        pipeline = self.pipelines.get(rollout_id)
        rt = self.runtimes[rollout_id] = RolloutRuntime(pipeline, partition_for(key, self.topics.partitions))
        rt.checkpoint_wall = rt.last_event_wall = self.clock()
        # A first checkpoint before its first event: a later restore knows from which offsets on the
        # output topics anything this rollout published must be read back.
        await self.checkpoint(rt, "new")
        return rt

    async def checkpoint(self, rt: RolloutRuntime, reason: str) -> None:
        generation = self.generation
        rid = rt.pipeline.rollout_id
        covered = {**rt.covered, **rt.applied}
        cp = Checkpoint(rid, rt.pipeline.to_state(), covered, dict(self.marks))
        blob = cp.encode()
        key = rid.encode("utf-8")
        self.table.data[key] = blob
        fut = await self.table.changelog_topic.send(key=key, value=blob, partition=rt.partition, force=True)
        await fut
        rt.covered = covered
        rt.batches = _batches(rt.pipeline)
        rt.checkpoint_wall = self.clock()
        rt.dirty = False
        self.stats.checkpoints += 1
        self.metrics.checkpoints.labels(reason).inc()
        self.metrics.checkpoint_bytes.labels(rid).set(len(blob))
        if generation == self.generation:
            self.tracker.covered(rid, covered)
            await self.release_all()

    async def publish(self, rt: RolloutRuntime, step: Step) -> None:
        """Publish a step's outputs in order and wait until Kafka has them all."""
        if not step:
            return
        rid = rt.pipeline.rollout_id
        pending = []
        for rec in records_of(step, rid, self._alert_role):
            if rec.output_id is not None and rec.output_id in rt.suppress:
                rt.suppress.discard(rec.output_id)
                self.stats.suppressed += 1
                self.metrics.suppressed.labels(rec.kind).inc()
                continue
            topic = self.out_topics[rec.role]
            pending.append((rec, await topic.send(key=rec.key, value=rec.value, force=True)))
        for rec, fut in pending:
            meta = await fut
            tp = (meta.topic, meta.partition)
            if tp in self.marks or rec.role in DEDUPED_ROLES:
                self.marks[tp] = max(self.marks.get(tp, -1), meta.offset)
            if rec.kind == "alert":
                self.metrics.alerts.labels(rec.label, orjson.loads(rec.value)["status"]).inc()
            elif rec.kind == "command":
                self.metrics.commands.labels(rec.label).inc()
            elif rec.kind == "verdict":
                self.metrics.verdicts.labels(rec.label).inc()
        rt.dirty = True

    def _alert_role(self, alert: Mapping[str, Any]) -> str:
        return self.config.alerts.route(str(alert["severity"])).role

    # ------------------------------------------------------------------ messages
    async def on_event(self, event: Any, stream: Any) -> None:
        """One message of the events (or re-key) topic; never raises for what the message holds."""
        msg = event.message
        tp = (msg.topic, msg.partition)
        self.streams[msg.topic] = stream
        await self.ready()
        generation = self.generation
        result = validate_message(event.value)
        if isinstance(result, EventError):
            await self.dead_letter(event, result)
            await self._settle(generation, event, None)
            return
        rid = result.rollout_id
        key = rid.encode("utf-8")
        misplaced = (
            partition_for(key, self.topics.partitions) != msg.partition or _decode_key(event.key) != rid
        )
        if misplaced and msg.topic == self.topics.events:
            # Applying it here would put this rollout's state on the wrong partition: route it.
            await (await self.rekey_topic.send(key=key, value=_raw(event.value), force=True))
            self.stats.rekeyed += 1
            self.metrics.rekeyed.labels(msg.topic).inc()
            await self._settle(generation, event, None)
            return
        rt = await self.runtime(rid)
        if generation != self.generation:
            return  # revoked meanwhile: it is delivered again after the restore
        if msg.offset <= rt.covered.get(tp, -1):
            self.stats.skipped += 1
            self.metrics.skipped.labels("checkpointed").inc()
            await self._settle(generation, event, None)
            return
        self.tracker.hold(msg.topic, msg.partition, msg.offset, rid, event)
        duplicates = rt.pipeline.duplicates
        started = time.perf_counter()
        step = rt.pipeline.process(result)
        closed = _batches(rt.pipeline) != rt.batches
        if closed:
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
        rt.applied[tp] = msg.offset
        rt.last_event_wall = self.clock()
        rt.idle_handled = False
        rt.dirty = True
        if rt.pipeline.duplicates != duplicates:
            self.stats.skipped += 1
            self.metrics.skipped.labels("duplicate").inc()
        else:
            self.stats.applied += 1
            self.metrics.events.labels(rid, result.arm).inc()
        await self.publish(rt, step)
        if step.alerts or step.commands:
            await self.checkpoint(rt, "outputs")
        elif closed and rt.last_event_wall - rt.checkpoint_wall >= self.options.checkpoint_every_s:
            await self.checkpoint(rt, "batch")
        elif self.tracker.lag(msg.topic, msg.partition, rid) >= self.options.checkpoint_max_lag:
            await self.checkpoint(rt, "lag")
        elif generation == self.generation:
            await self.release(tp)

    async def _settle(self, generation: int, event: Any, rollout_id: str | None) -> None:
        """Hold a handled message until it may be acked (never across a rebalance)."""
        if generation != self.generation:
            return
        msg = event.message
        self.tracker.hold(msg.topic, msg.partition, msg.offset, rollout_id, event)
        await self.release((msg.topic, msg.partition))

    async def on_input(self, event: Any) -> None:
        """An ack (acks topic) or an operator action (control topic); commands there are skipped."""
        msg = event.message
        await self.ready()
        generation = self.generation
        value = _raw(event.value)
        try:
            item = orjson.loads(value) if value is not None else None
        except orjson.JSONDecodeError as exc:
            await self.dead_letter(event, EventError("", f"not valid JSON: {exc}"), contract="input")
            return
        if not isinstance(item, dict):
            await self.dead_letter(event, EventError("", "must be a JSON object"), contract="input")
            return
        is_action = "action" in item
        if is_action and item.get("action") not in OPERATOR_ACTIONS:
            return  # a rollout command (ours, for controllers) or a record type rollguard does not consume
        kind = "operator" if is_action else "ack"
        rid = item.get("rollout_id")
        if not isinstance(rid, str) or not rid:
            await self.dead_letter(
                event, EventError("rollout_id", "required field is missing"), contract=kind
            )
            return
        key = rid.encode("utf-8")
        if partition_for(key, self.topics.partitions) != msg.partition:
            await (await self.inputs_topic.send(key=key, value=value, force=True))
            self.stats.rekeyed += 1
            self.metrics.rekeyed.labels(msg.topic).inc()
            return
        if not is_action and rid not in self.runtimes:
            return  # an ack for a rollout this worker holds no state for: nothing it could move
        rt = await self.runtime(rid)
        if generation != self.generation:
            return
        before = dict(self.pipelines.shared.silences)
        step = self.pipelines.on_input(item)
        self.metrics.inputs.labels(kind).inc()
        await self.publish(rt, step)
        await self._share_silences(before)
        await self.checkpoint(rt, kind)

    async def _share_silences(self, before: Mapping[str, Any]) -> None:
        """Silences added or removed here reach every worker through the global table."""
        now = self.pipelines.shared.silences
        for sid in sorted(set(before) | set(now)):
            if sid in now and before.get(sid) != now[sid]:
                self.silences[sid.encode()] = orjson.dumps(now[sid].to_state())
            elif sid not in now and sid in before:
                self.silences.pop(sid.encode(), None)

    def sync_silences(self) -> None:
        raw = {}
        for key, value in list(self.silences.items()):
            if value is not None:
                raw[key.decode("utf-8", "replace")] = orjson.loads(value)
        self.pipelines.shared.replace_silences(raw)

    async def idle_sweep(self) -> None:
        """Send a tick to every held rollout idle for ``idle_after_s`` (handled by its owner, in order).

        Idle means: no event for that long *and* nothing unread on its partition — a worker that is
        catching up (after a restart, under load) never mistakes its own backlog for quiet traffic."""
        now = self.clock()
        behind = self.lag()
        sources = (self.topics.events, self.rekey_topic.get_topic_name())
        for rid, rt in list(self.runtimes.items()):
            if rt.idle_handled or now - rt.last_event_wall < self.options.idle_after_s:
                continue
            p = rt.pipeline
            if not math.isfinite(p.last_ts):
                continue
            if any(behind.get((t, rt.partition), 0) > 0 for t in sources):
                continue  # its partition has unread events: it is not idle, this worker is behind
            tick = {
                "rollout_id": rid,
                "since_wall": rt.last_event_wall,
                "advance_to": p.last_ts + (now - rt.last_event_wall),
            }
            await self.ticks_topic.send(key=rid.encode(), value=orjson.dumps(tick), force=True)
            rt.idle_handled = True

    async def on_tick(self, event: Any) -> None:
        await self.ready()
        generation = self.generation
        try:
            tick = orjson.loads(_raw(event.value) or b"")
            rid, since, advance_to = (
                str(tick["rollout_id"]),
                float(tick["since_wall"]),
                float(tick["advance_to"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return
        rt = self.runtimes.get(rid)
        if rt is None or generation != self.generation or rt.last_event_wall != since:
            return  # not held here any more, or traffic came back meanwhile: the tick is moot
        step = rt.pipeline.flush()
        step += rt.pipeline.advance(advance_to)
        await self.publish(rt, step)
        if step or rt.dirty:
            await self.checkpoint(rt, "idle")

    # ------------------------------------------------------------------ acking and dead letters
    async def release(self, tp: TP) -> None:
        stream = self.streams.get(tp[0])
        if stream is None:
            return
        for held in self.tracker.releasable(*tp):
            if not isinstance(held, int):
                await stream.ack(held)

    async def release_all(self) -> None:
        for tp in self.tracker.partitions():
            await self.release(tp)

    async def dead_letter(self, event: Any, error: EventError, *, contract: str = "event.v1") -> None:
        msg = event.message
        ts = msg.timestamp
        source = dead_letter.Source(
            msg.topic, msg.partition, msg.offset, int(ts * 1000) if ts is not None else None
        )
        record = dead_letter.dead_letter_record(
            _raw(event.value),
            _raw(event.key),
            error,
            source,
            now=time.time(),
            worker=self.options.app_id,
            contract=contract,
        )
        await (await self.dlq_topic.send(key=_raw(event.key), value=dead_letter.dumps(record), force=True))
        self.stats.dead_lettered += 1
        self.metrics.dead_letters.labels(msg.topic, error.field or "message").inc()
        log.warning("dead-lettered %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, error)

    # ------------------------------------------------------------------ views
    def lag(self) -> dict[TP, int]:
        out: dict[TP, int] = {}
        consumer = self.app.consumer
        for t, p in sorted(self.assigned):
            if t not in self.source_roles:
                continue
            try:
                high = consumer.highwater(_faust_tp(t, p))
            except Exception:
                continue
            if high is not None:
                out[(t, p)] = max(int(high) - (self.tracker.head(t, p) + 1), 0)
        return out

    def status(self, rollout_id: str | None = None) -> dict[str, Any]:
        rollouts = [
            rollout_status(rt.pipeline)
            for rid, rt in sorted(self.runtimes.items())
            if rollout_id is None or rid == rollout_id
        ]
        s = self.stats
        return {
            "worker": {
                "app_id": self.options.app_id,
                "partitions": sorted(self.events_partitions()),
                "applied": s.applied,
                "dead_lettered": s.dead_lettered,
                "rekeyed": s.rekeyed,
                "skipped": s.skipped,
                "restored": s.restored,
                "checkpoints": s.checkpoints,
                "suppressed": s.suppressed,
                "errors": s.errors,
            },
            "silences": [sil.to_state() for _, sil in sorted(self.pipelines.shared.silences.items())],
            "rollouts": rollouts,
        }


def _batches(pipeline: RolloutPipeline) -> int:
    return sum(m.counters["batches"] for m in pipeline.engine.monitors.values())


async def _partitions_for(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no partitions (does it exist?)")


def _faust_tp(topic: str, partition: int) -> Any:
    from faust.types import TP as FaustTP

    return FaustTP(topic, partition)


def _decode_key(key: Any) -> str | None:
    if key is None:
        return None
    if isinstance(key, bytes | bytearray | memoryview):
        try:
            return bytes(key).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return str(key)


def _raw(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8")


def validate_message(value: Any) -> Event | EventError:
    """:func:`parse_event` plus the cases a Kafka message adds (tombstones); never raises."""
    if value is None:
        return EventError("", "message has no value (tombstone)")
    if not isinstance(value, bytes | bytearray | memoryview | str):
        return EventError("", f"unexpected message value type {type(value).__name__}")
    return parse_event(value)


def broker_urls(bootstrap: str) -> list[str]:
    """``host:port[,host:port]`` as Faust broker URLs."""
    hosts = [h.strip() for h in bootstrap.split(",") if h.strip()]
    if not hosts:
        raise ValueError("bootstrap must name at least one HOST:PORT")
    return [h if "://" in h else f"kafka://{h}" for h in hosts]


@dataclass(slots=True)
class WorkerApp:
    """A configured Faust app and its runtime (the handles tests and the CLI need)."""

    app: faust.App
    runtime: WorkerRuntime

    @property
    def stats(self) -> WorkerStats:
        return self.runtime.stats

    @property
    def timings(self) -> StartupTimings:
        return self.runtime.timings

    async def start(self) -> None:
        """Start in-process (tests); returns once the consumer runs and tables are recovered."""
        self.runtime.timings.started = time.monotonic()
        await self.app.start()

    async def stop(self) -> None:
        await self.app.stop()


def create_app(
    options: WorkerOptions,
    config: Config | None = None,
    topics: WorkerTopics | None = None,
    *,
    signing_key: bytes | None = None,
    clock: Callable[[], float] = time.time,
    loop: asyncio.AbstractEventLoop | None = None,
) -> WorkerApp:
    """Build the worker's Faust app (not started)."""
    from rollguard.adapters.topic_contracts import load_topics

    config = config or Config()
    if topics is None:
        topics = WorkerTopics.from_contracts(load_topics(None))
    settings: dict[str, Any] = {
        "broker": broker_urls(options.bootstrap),
        "broker_client_id": options.client_id or options.app_id,
        "store": "rocksdict://" if options.store == "rocksdb" else "memory://",
        "topic_partitions": topics.partitions,
        "topic_replication_factor": options.replication,
        "processing_guarantee": "at_least_once",
        "web_enabled": options.web_enabled,
        "web_port": options.web_port,
        "web_bind": options.web_bind,
        # Faust's own pages serve table contents and cluster internals: off.
        "web_tables_enabled": False,
        "web_router_enabled": False,
        "web_graph_enabled": False,
        "web_stats_enabled": False,
        "consumer_auto_offset_reset": "earliest",
        "autodiscover": False,
        # Held (not yet checkpointed) events must not block a rebalance: the next owner re-reads them.
        "stream_wait_empty": False,
        "broker_session_timeout": options.session_timeout_s,
        "broker_heartbeat_interval": max(options.session_timeout_s / 5.0, 0.5),
        "table_cleanup_interval": 30.0,
    }
    credentials = options.security.faust_credentials()
    if credentials is not None:
        settings["broker_credentials"] = credentials
    if options.data_dir is not None:
        settings["datadir"] = str(options.data_dir)
    if options.store == "rocksdb":
        settings["store_rocksdb_options"] = {"block_cache_size": options.rocksdb_block_cache_mb * 1024 * 1024}
    app = faust.App(options.app_id, loop=loop, **settings)
    rt = WorkerRuntime(app, options, config, topics, signing_key=signing_key, clock=clock)

    async def guarded(handler: Callable[..., Any], event: Any, *args: Any) -> None:
        # Nothing a message holds may stop the stream (an agent that raises is dead): a bug while
        # handling one is logged, counted and the message dead-lettered so it can be replayed.
        try:
            async with rt.work_lock:
                await handler(event, *args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            rt.stats.errors += 1
            m = event.message
            log.exception("processing failed for %s[%d]@%d", m.topic, m.partition, m.offset)
            try:
                await rt.dead_letter(event, EventError("", f"worker error: {type(exc).__name__}"))
            except Exception:
                log.exception("could not dead-letter it either")

    @app.agent(rt.events_topic, name=f"{options.app_id}.events")
    async def events(stream: Any) -> Any:
        s = stream.noack()
        async for event in s.events():
            await guarded(rt.on_event, event, s)
            yield None

    @app.agent(rt.rekey_topic, name=f"{options.app_id}.rekeyed-events")
    async def rekeyed_events(stream: Any) -> Any:
        s = stream.noack()
        async for event in s.events():
            await guarded(rt.on_event, event, s)
            yield None

    for topic in (rt.acks_topic, rt.control_topic, rt.inputs_topic):

        @app.agent(topic, name=f"{options.app_id}.inputs.{topic.get_topic_name()}")
        async def inputs(stream: Any) -> Any:
            async for event in stream.events():
                await guarded(rt.on_input, event)
                yield None

    @app.agent(rt.ticks_topic, name=f"{options.app_id}.ticks")
    async def ticks(stream: Any) -> Any:
        async for event in stream.events():
            await guarded(rt.on_tick, event)
            yield None

    @app.timer(interval=options.tick_s)  # type: ignore[untyped-decorator]
    async def sweep() -> None:
        async with rt.work_lock:
            rt.sync_silences()
            await rt.idle_sweep()

    async def _assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        rt.on_assigned(args[0] if args else kwargs.get("assigned", ()))

    async def _revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        rt.on_revoked(args[0] if args else kwargs.get("revoked", ()))

    async def _rebalanced(sender: Any, *args: Any, **kwargs: Any) -> None:
        if rt.timings.rebalance_complete is None:
            rt.timings.rebalance_complete = time.monotonic()

    app.on_partitions_assigned.connect(cast(Any, _assigned))
    app.on_partitions_revoked.connect(cast(Any, _revoked))
    app.on_rebalance_complete.connect(cast(Any, _rebalanced))

    @app.page("/rollguard/health/")
    async def health(self: Any, request: Any) -> Any:
        # Readiness, not liveness: Faust's web server answers before the group join and table
        # recovery, so a worker is ready only once its rollouts are restored.
        ready = rt.timings.rebalance_complete is not None and not app.rebalancing
        body = {
            "status": "ready" if ready else "starting",
            "app_id": options.app_id,
            "join_s": rt.timings.join_s,
            "ready_s": rt.timings.ready_s,
            **rt.status()["worker"],
        }
        return self.json(body, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(self: Any, request: Any) -> Any:
        return self.bytes(rt.metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")

    @app.page("/status")
    async def status(self: Any, request: Any) -> Any:
        return self.json(rt.status(request.query.get("rollout")))

    del events, rekeyed_events, ticks, sweep, health, metrics, status
    return WorkerApp(app, rt)


def data_dir_default(app_id: str) -> Path:
    return Path(".rollguard-data") / app_id
