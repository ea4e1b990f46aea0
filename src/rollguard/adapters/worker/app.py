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
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST

from rollguard.adapters import dead_letter
from rollguard.adapters.eval_gate_reports import read_eval_gates
from rollguard.adapters.kafka_security import KafkaSecurity
from rollguard.adapters.worker.checkpoint import Checkpoint
from rollguard.adapters.worker.dashboard import WorkerFaustApp, mount_dashboard
from rollguard.adapters.worker.observability import WorkerMetrics, rollout_status
from rollguard.adapters.worker.offsets import OffsetTracker, ReadGuard, StallWatch
from rollguard.adapters.worker.otlp_source import OtlpSource
from rollguard.adapters.worker.outputs import DEDUPED_ROLES, ids_by_rollout, records_of
from rollguard.adapters.worker.side_reads import SideReader, SourceRecord, as_source
from rollguard.adapters.worker.topics import WorkerTopics, partition_for
from rollguard.domain.events import Event, EventError, parse_event
from rollguard.pipeline.pipelines import Pipelines
from rollguard.pipeline.rollout import RolloutPipeline, Step
from rollguard.policy.policy import OPERATOR_ACTIONS
from rollguard.report.history import History
from rollguard.settings import Config

log = logging.getLogger("rollguard.worker")
# Offsets, checkpoints and acks, one line each (``--log-level debug`` or this logger at DEBUG): enough to
# reconstruct after a crash what was applied, covered and committed.
trace = logging.getLogger("rollguard.worker.offsets")

TP = tuple[str, int]
STATE_TABLE: Final = "pipelines"
SIDE_READ_S: Final = 30.0  # a hole that cannot be read in this time is retried at the next message
# What a side read may raise while the broker is away (it is retried: at the next message, or sweep).
SIDE_READ_ERRORS: Final = (TimeoutError, OSError, KafkaError)
STALL_S: Final = 5.0  # a partition's next message on the broker but not delivered for this long is read
STALL_READ_MAX: Final = 5000  # messages read at once for a stalled partition (the rest at the next sweep)
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
    refetched: int = 0  # messages Faust did not deliver, read by the worker itself
    idle_closed: int = 0  # idle ticks handled: a quiet rollout's batch closed and its clock moved on


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
    applied_here: int = 0  # events of this rollout this worker applied since it took it over
    checkpoint_asked: bool = False  # a periodic checkpoint tick is on its way


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
        self.pipelines.shared.eval_gates.update(read_eval_gates(config))  # readiness: named gate reports
        self.runtimes: dict[str, RolloutRuntime] = {}
        self.tracker = OffsetTracker()
        self.guard = ReadGuard()
        self.stalls = StallWatch(STALL_S)
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
        self.committed: dict[TP, int] = {}  # source offsets this worker committed (in this assignment)
        self.lowest_needed: dict[TP, int] = {}  # per source partition, where this assignment must start
        self.side = SideReader(options.bootstrap, options.client_id or options.app_id, options.app_id,
                               options.security)  # fmt: skip
        self.metrics = WorkerMetrics(lambda: (rt.pipeline for rt in self.runtimes.values()), self.lag)
        self.history = History()  # the dashboard's charts and records (bounded)
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
            self.ticks_topic.get_topic_name(): "ticks",
        }
        # OpenTelemetry trace payloads (``otlp.topic``): translated, then re-keyed like misplaced events.
        self.otlp: OtlpSource | None = None
        if config.otlp.topic is not None:
            self.otlp = OtlpSource(
                config.otlp, app, self.rekey_topic, self.dlq_topic, self.metrics.registry,
                worker=options.app_id, clock=clock,
                dead_letter_payload=lambda r, error, contract: self.dead_letter(r, error, contract=contract),
                keep_text=self.pipelines.model[0] is not None,  # an embedder to use the texts
            )  # fmt: skip
            self.source_roles[self.otlp.name] = "otlp"

    # ------------------------------------------------------------------ partitions
    def on_assigned(self, assigned: Iterable[Any]) -> None:
        self.assigned = {(tp.topic, tp.partition) for tp in assigned}
        trace.debug("assigned %s", sorted(self.assigned))
        self.generation += 1
        if self.timings.assigned is None and self.assigned:
            self.timings.assigned = time.monotonic()

    def on_revoked(self, revoked: Iterable[Any]) -> None:
        trace.debug("revoked (generation %d)", self.generation)
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
        trace.debug("restoring for generation %d (assigned %d partitions)", generation, len(self.assigned))
        await self._restore_all()
        self.restored_generation = generation
        if self.timings.restored is None:
            self.timings.restored = time.monotonic()

    async def _restore_all(self) -> None:
        self.runtimes.clear()
        self.pipelines.by_rollout.clear()
        self.tracker = OffsetTracker()
        self.guard = ReadGuard()
        self.stalls.forget()
        self.committed = {}
        if self.otlp is not None:
            self.otlp.reset()
        mine = self.events_partitions()
        n = self.topics.partitions
        checkpoints = [
            Checkpoint.decode(blob)
            for key, blob in list(self.table.data.items())
            if blob is not None and partition_for(key, n) in mine
        ]
        ends = await self.side.partitions(self.topics.name(role) for role in DEDUPED_ROLES)
        self.output_partitions = {t: sum(1 for tt, _ in ends if tt == t) for t, _ in ends}
        for tp, end in ends.items():
            self.marks[tp] = max(self.marks.get(tp, -1), end - 1)
        lows: dict[TP, int] = {}
        for cp in checkpoints:
            for tp, mark in cp.marks.items():
                if tp in ends:
                    lows[tp] = min(lows.get(tp, mark), mark)
        found = ids_by_rollout((r.key, r.value) for r in await self.side.records(lows)) if lows else {}
        shared, model = self.pipelines.shared, self.pipelines.model
        for cp in checkpoints:
            pipeline = RolloutPipeline.from_state(
                cp.state, self.config, shared, model=model,
                signing_key=self.pipelines.signing_key, instance=self.pipelines.instance,
            )  # fmt: skip
            rt = RolloutRuntime(
                pipeline, partition_for(cp.rollout_id.encode(), n), dict(cp.covered), dict(cp.covered),
                found.get(cp.rollout_id, set()),
            )  # fmt: skip
            rt.batches = _batches(pipeline)
            rt.checkpoint_wall = rt.last_event_wall = self.clock()
            self.runtimes[cp.rollout_id] = rt
            trace.debug("restore %s covered=%s events=%s", cp.rollout_id, cp.covered, _events_in(pipeline))
            self.pipelines.by_rollout[cp.rollout_id] = pipeline
        # Where each source partition must start: at its committed offset, and no later than just
        # after the oldest checkpoint that covers it (a message Faust skips before that is read here).
        sources = sorted(tp for tp in self.assigned if tp[0] in self.source_roles)
        committed = await self.side.committed(sources)
        self.lowest_needed = {}
        for tp in sources:
            needed = [c for c in (committed.get(tp),) if c is not None]
            needed += [rt.covered[tp] + 1 for rt in self.runtimes.values() if tp in rt.covered]
            if needed:
                self.lowest_needed[tp] = min(needed)
            if committed.get(tp) is not None:
                self.committed[tp] = int(committed[tp])  # type: ignore[arg-type]
        self.stats.restored += len(checkpoints)
        self.metrics.restores.inc(len(checkpoints))
        trace.debug("lowest needed %s", sorted(self.lowest_needed.items()))
        if checkpoints:
            log.info(
                "restored %d rollouts; %d outputs read back", len(checkpoints), sum(map(len, found.values()))
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
        trace.debug("checkpoint %s %s covered=%s events=%s", rid, reason, covered, _events_in(rt.pipeline))
        rt.covered = covered
        rt.batches = _batches(rt.pipeline)
        rt.checkpoint_wall = self.clock()
        rt.dirty = False
        rt.checkpoint_asked = False
        self.stats.checkpoints += 1
        self.metrics.checkpoints.labels(reason).inc()
        self.metrics.checkpoint_bytes.labels(rid).set(len(blob))
        if generation == self.generation:
            self.tracker.covered(rid, covered)
            await self.commit()

    async def publish(self, rt: RolloutRuntime, step: Step) -> None:
        """Publish a step's outputs in order and wait until Kafka has them all."""
        self.history.observe(rt.pipeline, step)
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
    async def deliver(self, record: SourceRecord) -> None:
        """A message from one of the source topics, in its partition's order, never raising for what it
        holds. A hole before it (messages Faust did not deliver) is read and applied first."""
        await self.ready()
        generation = self.generation
        tp = record.tp
        if not self.guard.knows(tp):
            self.guard.start(tp, self.lowest_needed.get(tp))
        verdict = self.guard.check(tp, record.offset)
        if verdict == "old":
            return
        records = [record]
        if isinstance(verdict, tuple):
            first, end = verdict
            log.warning(
                "%s[%d]: offsets %d..%d were not delivered: reading them", tp[0], tp[1], first, end - 1
            )
            trace.debug("hole %s[%d] %d..%d", tp[0], tp[1], first, end - 1)
            try:
                missing = await asyncio.wait_for(self.side.records({tp: first - 1}, {tp: end}), SIDE_READ_S)
            except SIDE_READ_ERRORS as exc:
                # Not read: handle nothing of this partition until it is (the next message tries again).
                log.error(
                    "%s[%d]: could not read offsets %d..%d (%s): retrying", tp[0], tp[1], first, end - 1, exc
                )
                self.guard.expected[tp] = first
                return
            trace.debug("hole %s[%d] read %d records", tp[0], tp[1], len(missing))
            records = [*missing, record]
            self.stats.refetched += len(missing)
            self.metrics.refetched.labels(tp[0], "hole").inc(len(missing))
        for r in records:
            if generation != self.generation:
                return  # revoked meanwhile: it is delivered again after the restore
            role = self.source_roles[r.topic]
            if role == "events":
                await self.on_event(r, generation)
            elif role == "ticks":
                await self.on_tick(r, generation)
            elif role == "otlp" and self.otlp is not None:
                await self.otlp.on_payload(r, lambda: generation == self.generation)
            else:
                await self.on_input(r, generation)

    async def read_stalled(self) -> None:
        """Read, and handle in order, the messages of any source partition that the broker holds but
        Faust has not delivered for :data:`STALL_S` (see :class:`StallWatch`; called under
        :attr:`work_lock`, after :meth:`ready`)."""
        if self.app.rebalancing or getattr(self.app, "in_recovery", False):
            self.stalls.forget()  # Faust holds its streams back meanwhile: not a stall
            return
        generation = self.generation
        consumer = self.app.consumer
        now = time.monotonic()
        for tp in sorted(self.assigned):
            if tp[0] not in self.source_roles:
                continue
            needed = self.guard.next_needed(tp)
            if needed is None:
                needed = self.lowest_needed.get(tp, self.committed.get(tp))
            try:
                high = consumer.highwater(_faust_tp(*tp))
            except Exception:
                continue
            stretch = self.stalls.check(tp, needed, int(high) if high is not None else None, now)
            if stretch is None:
                continue
            first, end = stretch[0], min(stretch[1], stretch[0] + STALL_READ_MAX)
            log.warning("%s[%d]: offsets %d..%d not delivered for %.0f s: reading them",
                        tp[0], tp[1], first, end - 1, STALL_S)  # fmt: skip
            try:
                records = await asyncio.wait_for(self.side.records({tp: first - 1}, {tp: end}), SIDE_READ_S)
            except SIDE_READ_ERRORS as exc:
                log.error("%s[%d]: could not read offsets %d..%d (%s): retrying", tp[0], tp[1], first,
                          end - 1, exc)  # fmt: skip
                continue
            self.stats.refetched += len(records)
            self.metrics.refetched.labels(tp[0], "stall").inc(len(records))
            for r in records:
                if generation != self.generation:
                    return
                await self.deliver(r)

    async def on_event(self, r: SourceRecord, generation: int) -> None:
        """One message of the events (or re-key) topic."""
        tp = r.tp
        result = validate_message(r.value)
        if isinstance(result, EventError):
            await self.dead_letter(r, result)
            self._handled(generation, r, None)
            return
        rid = result.rollout_id
        key = rid.encode("utf-8")
        misplaced = partition_for(key, self.topics.partitions) != r.partition or _decode_key(r.key) != rid
        if misplaced and r.topic == self.topics.events:
            # Applying it here would put this rollout's state on the wrong partition: route it.
            await (await self.rekey_topic.send(key=key, value=r.value, force=True))
            self.stats.rekeyed += 1
            self.metrics.rekeyed.labels(r.topic).inc()
            self._handled(generation, r, None)
            return
        rt = await self.runtime(rid)
        if generation != self.generation:
            return
        if r.offset <= rt.covered.get(tp, -1):
            self.stats.skipped += 1
            self.metrics.skipped.labels("checkpointed").inc()
            self._handled(generation, r, None)
            return
        self.tracker.read(tp, r.offset, rid)
        duplicates = rt.pipeline.duplicates
        started = time.perf_counter()
        step = rt.pipeline.process(result)
        closed = _batches(rt.pipeline) != rt.batches
        if closed:
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
        rt.applied[tp] = r.offset
        rt.last_event_wall = self.clock()
        rt.idle_handled = False
        rt.dirty = True
        if rt.pipeline.duplicates != duplicates:
            self.stats.skipped += 1
            self.metrics.skipped.labels("duplicate").inc()
        else:
            self.stats.applied += 1
            rt.applied_here += 1
            self.metrics.events.labels(rid, result.arm).inc()
        await self.publish(rt, step)
        if step.alerts or step.commands or step.readiness:
            await self.checkpoint(rt, "outputs")
        elif closed and rt.last_event_wall - rt.checkpoint_wall >= self.options.checkpoint_every_s:
            await self.checkpoint(rt, "batch")
        elif self.tracker.lag(tp, rid) >= self.options.checkpoint_max_lag:
            await self.checkpoint(rt, "lag")

    def _handled(self, generation: int, r: SourceRecord, rollout_id: str | None) -> None:
        """Count a handled message towards what may be committed (never across a rebalance)."""
        if generation == self.generation:
            self.tracker.read(r.tp, r.offset, rollout_id)

    async def on_input(self, r: SourceRecord, generation: int) -> None:
        """An ack (acks topic) or an operator action (control topic); commands there are skipped."""
        try:
            item = orjson.loads(r.value) if r.value is not None else None
        except orjson.JSONDecodeError as exc:
            await self.dead_letter(r, EventError("", f"not valid JSON: {exc}"), contract="input")
            self._handled(generation, r, None)
            return
        if not isinstance(item, dict):
            await self.dead_letter(r, EventError("", "must be a JSON object"), contract="input")
            self._handled(generation, r, None)
            return
        is_action = "action" in item
        if (is_action and item.get("action") not in OPERATOR_ACTIONS) or item.get("kind") == "readiness":
            self._handled(generation, r, None)
            return  # a rollout command or readiness record (ours, for controllers) or one we do not consume
        kind = "operator" if is_action else "ack"
        rid = item.get("rollout_id")
        if not isinstance(rid, str) or not rid:
            await self.dead_letter(r, EventError("rollout_id", "required field is missing"), contract=kind)
            self._handled(generation, r, None)
            return
        key = rid.encode("utf-8")
        if partition_for(key, self.topics.partitions) != r.partition:
            await (await self.inputs_topic.send(key=key, value=r.value, force=True))
            self.stats.rekeyed += 1
            self.metrics.rekeyed.labels(r.topic).inc()
            self._handled(generation, r, None)
            return
        if not is_action and rid not in self.runtimes:
            self._handled(generation, r, None)
            return  # an ack for a rollout this worker holds no state for: nothing it could move
        if rid not in self.runtimes and (stray := self.pipelines.stray_rejection(item)) is not None:
            # Rejected anyway (unsigned, forged, malformed) and addressed to a rollout with no state:
            # dead-lettered with the reason (replay writes the same to rejected.jsonl), so no message
            # can make the worker hold (and checkpoint) state for rollouts that do not exist.
            await self.dead_letter(r, stray, contract=kind)
            self._handled(generation, r, None)
            return
        rt = await self.runtime(rid)
        if generation != self.generation:
            return
        before = dict(self.pipelines.shared.silences)
        step = self.pipelines.on_input(item)
        self.metrics.inputs.labels(kind).inc()
        await self.publish(rt, step)
        await self._share_silences(before)
        self._handled(generation, r, None)  # the checkpoint below covers its effect
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
            if (
                rt.dirty
                and not rt.checkpoint_asked
                and now - rt.checkpoint_wall >= self.options.checkpoint_every_s
            ):
                # State that changed since its last checkpoint is checkpointed at least this often, so
                # that quiet rollouts do not hold back the commit (and a takeover resumes from it).
                tick = {"rollout_id": rid, "kind": "checkpoint"}
                await self.ticks_topic.send(key=rid.encode(), value=orjson.dumps(tick), force=True)
                rt.checkpoint_asked = True
            if rt.idle_handled or now - rt.last_event_wall < self.options.idle_after_s:
                continue
            p = rt.pipeline
            if not math.isfinite(p.last_ts):
                continue
            if any(behind.get((t, rt.partition), 0) > 0 for t in sources):
                continue  # its partition has unread events: it is not idle, this worker is behind
            idle: dict[str, Any] = {
                "rollout_id": rid,
                "kind": "idle",
                "since_wall": rt.last_event_wall,
                "advance_to": p.last_ts + (now - rt.last_event_wall),
            }
            await self.ticks_topic.send(key=rid.encode(), value=orjson.dumps(idle), force=True)
            rt.idle_handled = True

    async def on_tick(self, r: SourceRecord, generation: int) -> None:
        """A timer's tick for one rollout, handled by its owner in order: a periodic checkpoint, or (idle)
        close its open batch and move its clock on."""
        self._handled(generation, r, None)
        try:
            tick = orjson.loads(r.value or b"")
            if tick.get("kind") == "checkpoint":
                held = self.runtimes.get(str(tick["rollout_id"]))
                if held is not None and generation == self.generation and held.dirty:
                    await self.checkpoint(held, "periodic")
                return
            rid, since, advance_to = (
                str(tick["rollout_id"]),
                float(tick["since_wall"]),
                float(tick["advance_to"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return
        rt = self.runtimes.get(rid)
        if rt is None or generation != self.generation or rt.last_event_wall != since:
            return  # not held here any more, or traffic came back meanwhile: the tick is moot
        step = rt.pipeline.flush()
        step += rt.pipeline.advance(advance_to)
        await self.publish(rt, step)
        if step or rt.dirty:
            await self.checkpoint(rt, "idle")
        self.stats.idle_closed += 1

    # ------------------------------------------------------------------ commits and dead letters
    async def commit(self) -> None:
        """Commit each source partition's low watermark (what every checkpoint covers), when it moved."""
        generation = self.generation
        offsets = {}
        points = {tp: self.tracker.low(tp) for tp in self.tracker.partitions()}
        if self.otlp is not None:
            points.update(self.otlp.commit_points())
        for tp, low in points.items():
            if low > self.committed.get(tp, -1):
                offsets[tp] = low
        if not offsets or generation != self.generation:
            return
        consumer: Any = self.app.consumer  # Faust's public commit would commit from its own acks
        done = await consumer._commit({_faust_tp(*tp): o for tp, o in offsets.items()})
        if done and generation == self.generation:
            self.committed.update(offsets)
            trace.debug("commit %s", sorted(offsets.items()))

    async def dead_letter(self, r: SourceRecord, error: EventError, *, contract: str = "event.v1") -> None:
        ts = r.timestamp
        source = dead_letter.Source(
            r.topic, r.partition, r.offset, int(ts * 1000) if ts is not None else None
        )
        record = dead_letter.dead_letter_record(
            r.value, r.key, error, source, now=time.time(), worker=self.options.app_id, contract=contract
        )
        await (await self.dlq_topic.send(key=r.key, value=dead_letter.dumps(record), force=True))
        self.stats.dead_lettered += 1
        self.metrics.dead_letters.labels(r.topic, error.field or "message").inc()
        log.warning("dead-lettered %s[%d]@%d: %s", r.topic, r.partition, r.offset, error)

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
                # What was read here, or (nothing read yet in this assignment) what was committed.
                done = max(self.tracker.head((t, p)) + 1, self.committed.get((t, p), 0))
                out[(t, p)] = max(int(high) - done, 0)
        return out

    def status(self, rollout_id: str | None = None) -> dict[str, Any]:
        rollouts = [
            {**rollout_status(rt.pipeline), "applied_here": rt.applied_here, "checkpointed": not rt.dirty}
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
                "refetched": s.refetched,
                "idle_closed": s.idle_closed,
                "errors": s.errors,
                **({"otlp": self.otlp.counters()} if self.otlp is not None else {}),
            },
            "silences": [sil.to_state() for _, sil in sorted(self.pipelines.shared.silences.items())],
            "rollouts": rollouts,
        }


def _events_in(pipeline: RolloutPipeline) -> int:
    """Events in the pipeline's state (closed batches and the open one)."""
    return sum(m.counters["events"] + len(m.batch.events) for m in pipeline.engine.monitors.values())


def _batches(pipeline: RolloutPipeline) -> int:
    return sum(m.counters["batches"] for m in pipeline.engine.monitors.values())


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
        "store": "rocksdb://" if options.store == "rocksdb" else "memory://",  # rocksdb:// runs on rocksdict
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
    # Faust's own default is ``<app id>-data`` in the working directory; keep every app's under one folder.
    datadir = Path(options.data_dir) if options.data_dir is not None else data_dir_default(options.app_id)
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates the folder itself, not its parents
    settings["datadir"] = str(datadir)
    if options.store == "rocksdb":
        settings["store_rocksdb_options"] = {"block_cache_size": options.rocksdb_block_cache_mb * 1024 * 1024}
    app = WorkerFaustApp(options.app_id, loop=loop, **settings)
    rt = WorkerRuntime(app, options, config, topics, signing_key=signing_key, clock=clock)
    mount_dashboard(app, lambda: [r.pipeline for r in rt.runtimes.values()], rt.history, options.app_id)

    async def guarded(handler: Callable[..., Any], record: SourceRecord) -> None:
        # Nothing a message holds may stop the stream (an agent that raises is dead): a bug while
        # handling one is logged, counted and the message dead-lettered so it can be replayed.
        try:
            async with rt.work_lock:
                await handler(record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            rt.stats.errors += 1
            log.exception("processing failed for %s[%d]@%d", record.topic, record.partition, record.offset)
            try:
                await rt.dead_letter(record, EventError("", f"worker error: {type(exc).__name__}"))
            except Exception:
                log.exception("could not dead-letter it either")

    # Every source is read without Faust's acks: the worker commits its own offsets (see offsets.py).
    for topic in (
        rt.events_topic,
        rt.rekey_topic,
        rt.acks_topic,
        rt.control_topic,
        rt.inputs_topic,
        rt.ticks_topic,
        *([rt.otlp.topic] if rt.otlp is not None else []),
    ):

        @app.agent(topic, name=f"{options.app_id}.source.{topic.get_topic_name()}")
        async def source(stream: Any) -> Any:
            async for event in stream.noack().events():
                await guarded(rt.deliver, as_source(event))
                yield None

    @app.timer(interval=options.tick_s)  # type: ignore[untyped-decorator]
    async def sweep() -> None:
        async with rt.work_lock:
            # Restore at once after an assignment, not at the first message: a quiet partition's rollouts
            # still need their resolves and expiries, and /status must show them.
            await rt.ready()
            await rt.read_stalled()
            rt.sync_silences()
            if rt.otlp is not None:
                await rt.otlp.idle_flush()
            await rt.idle_sweep()
            await rt.commit()

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
        # Prometheus's text format (CONTENT_TYPE_LATEST carries a charset, which aiohttp wants as a header).
        return self.bytes(rt.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/status")
    async def status(self: Any, request: Any) -> Any:
        return self.json(rt.status(request.query.get("rollout")))

    del source, sweep, health, metrics, status
    return WorkerApp(app, rt)


def data_dir_default(app_id: str) -> Path:
    """Where an app's local files go when no data_dir is configured (the tables' RocksDB, Faust's files)."""
    return Path(".rollguard-data") / app_id
