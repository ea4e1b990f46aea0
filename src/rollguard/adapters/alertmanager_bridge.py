"""``rollguard bridge alertmanager``: the alert topics, delivered to Alertmanager's v2 API.

A Kafka consumer in a group (kafka-python, offsets committed by hand) reads
``rollguard.alerts.{critical,warning,info}`` — whoever produced the records — and posts each batch to
``POST /api/v2/alerts`` (httpx). The mapping and the bookkeeping are pure
(:mod:`rollguard.adapters.alertmanager_alerts`); this module is the loop around them.

Delivery rules:

- **Offsets are committed only after Alertmanager accepted the post** (or the record was
  dead-lettered): a crash re-posts at most the batch in flight, which Alertmanager merges into the
  same alert (same label set), so nothing is lost and a duplicate changes nothing.
- **Alertmanager down or answering 5xx**: the same batch is posted again with exponential backoff
  (``retry_initial_s`` doubling up to ``retry_max_s``) while the assigned partitions are paused and
  the consumer keeps polling, so it stays in its group. Nothing behind the batch is posted before it:
  per-partition order, hence per-rollout order (key = rollout_id), is kept.
- **400 / 413 / 422** mean "this alert is malformed" (Alertmanager's validation: label names,
  times, URLs, body size): the batch is posted again one record at a time, and the records
  Alertmanager still refuses go to the dead-letter topic with its answer as the reason, then are
  skipped. Any other 4xx (401, 403, 404, 405, 429, …) says the bridge or the URL is wrong, not the
  alert: dead-lettering would then drop every record, so the bridge keeps retrying and logs why.
  Records that are not alert v1 at all go to the dead-letter topic without being posted.
- **Re-posts**: every firing alert delivered is posted again every ``repost_interval_s`` (60 s;
  Alertmanager resolves an alert not posted within its ``resolve_timeout``, 5 m by default, and
  forgets all alerts when it restarts). Every resolve of an alert is posted, silenced or inhibited in
  Alertmanager or not: the bridge never asks Alertmanager whether a resolve is wanted.

State after a restart: the set of firing alerts to re-post is **rebuilt from the alert topics
themselves**. When partitions are assigned, each is read from its beginning up to the group's committed
offset and folded through the same :class:`DeliveredAlerts` the live path uses (posting nothing), then
consumption resumes at the committed offset and the rebuilt firing alerts are posted at once. Why not a
compacted state topic of our own: the alert topics already are the record of what was delivered
(everything before the committed offset was accepted), so a second copy could only disagree with them;
the rebuild follows partition ownership exactly when several bridges share the group; and it costs one
read of the retained alerts (30 days by contract), which are few next to events (a firing alert repeats
at most once per repeat interval, an hour for critical). The limit: an alert firing without a single new
record for longer than the retention (repeats are sent every repeat interval unless acknowledged) is no
longer re-posted. A new group (no committed offset) rebuilds from the whole topic and starts at its end,
which it commits at once: it delivers the alerts firing now, not a month of history, and a crash before
its first delivery does not skip what arrived meanwhile.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import jsonschema
import orjson
from kafka.consumer.group import KafkaConsumer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import CommitFailedError, KafkaError
from kafka.producer.kafka import KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition

from rollguard.adapters import dead_letter, kafka_clients
from rollguard.adapters.alertmanager_alerts import (
    AlertRecord,
    Delivered,
    DeliveredAlerts,
    Plan,
    parse_alert,
    to_alertmanager,
)
from rollguard.adapters.kafka_clients import PLAINTEXT, connection_at_start
from rollguard.adapters.kafka_security import KafkaSecurity
from rollguard.adapters.topic_contracts import TopicContractError, TopicSpec, load_topics, topic_for_role
from rollguard.domain.events import EventError
from rollguard.settings.bridge import AlertmanagerBridgeSettings

log = logging.getLogger("rollguard.bridge.alertmanager")

ALERT_ROLES: Final = ("alerts.critical", "alerts.warning", "alerts.info")
MALFORMED: Final = frozenset({400, 413, 422})
CONTRACT: Final = "alert.v1"
WORKER_NAME: Final = "rollguard-bridge-alertmanager"
REBUILD_STALL_S: Final = 60.0


class Stopping(Exception):
    """The bridge was asked to stop while a batch was not yet accepted: it is not committed."""


@dataclass(frozen=True, slots=True)
class BridgeTopics:
    """The alert topics the bridge reads and the dead-letter topic it writes (by contract role)."""

    alerts: tuple[str, ...]
    dead_letter: str
    schema: dict[str, Any]

    @classmethod
    def from_contracts(cls, specs: list[TopicSpec], topics_dir: Path) -> BridgeTopics:
        alert_specs = [topic_for_role(specs, role) for role in ALERT_ROLES]
        counts = {s.name: s.partitions for s in alert_specs}
        if len(set(counts.values())) != 1:
            # Key = rollout_id puts a rollout on the same partition number of each topic only when the
            # counts agree; the range assignor then gives those partitions to the same bridge, which
            # must see an alert's records on every topic (a raised severity moves it to another one).
            raise TopicContractError(
                f"the alert topics must have the same number of partitions, got {counts}: then a rollout's "
                "alerts of every severity are read by one bridge of a group"
            )
        schema_path = alert_specs[0].schema_path(topics_dir)
        try:
            schema = json.loads(schema_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TopicContractError(f"{schema_path}: cannot read the alert schema: {exc}") from exc
        return cls(tuple(s.name for s in alert_specs), topic_for_role(specs, "dead-letter").name, schema)


@dataclass(slots=True)
class BridgeStats:
    """What this bridge instance did (logged on exit; read by in-process tests and the benchmark)."""

    records: int = 0
    posted: int = 0
    resolves: int = 0
    reposts: int = 0
    dead_lettered: int = 0
    retries: int = 0
    skipped: int = 0
    rebuilt: int = 0


@dataclass(frozen=True, slots=True)
class PostResult:
    ok: bool
    status: int | None = None  # HTTP status, None when no answer came
    detail: str = ""

    @property
    def malformed(self) -> bool:
        return self.status in MALFORMED


class AlertmanagerClient:
    """``POST /api/v2/alerts`` with httpx: one connection kept alive, one timeout per request."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            timeout=timeout_s, headers={"Content-Type": "application/json", "User-Agent": WORKER_NAME}
        )

    def post(self, alerts: list[dict[str, Any]]) -> PostResult:
        try:
            resp = self.http.post(f"{self.url}/api/v2/alerts", content=orjson.dumps(alerts))
        except httpx.HTTPError as exc:  # refused, reset, timed out: Alertmanager is not there (yet)
            return PostResult(False, None, f"{type(exc).__name__}: {exc}")
        if resp.is_success:
            return PostResult(True, resp.status_code)
        return PostResult(False, resp.status_code, resp.text.strip()[:300])

    def close(self) -> None:
        self.http.close()


@dataclass(slots=True)
class _Item:
    message: Any  # kafka ConsumerRecord
    record: AlertRecord
    plan: Plan


@dataclass
class AlertmanagerBridge:
    """The consume → post → commit loop. Build it, then :meth:`run` until ``stop`` is set."""

    bootstrap: str
    url: str
    topics: BridgeTopics
    settings: AlertmanagerBridgeSettings = field(default_factory=AlertmanagerBridgeSettings)
    group_id: str | None = None
    clock: Callable[[], float] = time.time
    stats: BridgeStats = field(default_factory=BridgeStats)
    security: KafkaSecurity = PLAINTEXT

    def __post_init__(self) -> None:
        self.group = self.group_id or self.settings.group_id
        self.book = DeliveredAlerts(self.settings.worker_url)
        self.validator = jsonschema.Draft202012Validator(self.topics.schema)
        self.client = AlertmanagerClient(self.url, self.settings.timeout_s)
        self.stop = threading.Event()
        self.ready = threading.Event()  # set once the first assignment is rebuilt and consuming
        self._owned: set[TopicPartition] = set()
        self._lost: set[TopicPartition] = set()  # revoked since the batch in hand was polled
        self._to_rebuild: set[TopicPartition] = set()
        self._backlog: list[Any] = []
        self._next_repost = float("inf")
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None

    # ------------------------------------------------------------------------------------ the loop

    def run(self) -> None:
        consumer = kafka_clients.group_consumer(
            self.bootstrap,
            self.security,
            list(self.topics.alerts),
            listener=_Listener(self),
            stop=self.stop,
            group_id=self.group,
            client_id=WORKER_NAME,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # unused: every assigned partition is positioned by _rebuild
            max_poll_records=self.settings.max_batch,
            # Partition n of every alert topic to the same member: one rollout's alerts of any severity
            # (same key, same partition number) meet in one bridge when several share the group.
            partition_assignment_strategy=(RangePartitionAssignor,),
            # A bridge that died hands its partitions over after 10 s (the client's default is 45 s).
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
        )
        self._consumer = consumer
        self._producer = kafka_clients.producer(
            self.bootstrap, self.security, acks="all", client_id=WORKER_NAME
        )
        log.info(
            "bridge: %s -> %s/api/v2/alerts (group %s, re-post every %gs)",
            ", ".join(self.topics.alerts), self.client.url, self.group, self.settings.repost_interval_s,
        )  # fmt: skip
        try:
            while not self.stop.is_set():
                if self._to_rebuild:
                    self._rebuild()
                if time.monotonic() >= self._next_repost:  # first, so a rebuilt state is posted at once
                    self._repost()
                messages = self._take_backlog() or self._poll(self._poll_timeout_s())
                if messages:
                    self._deliver(messages)
        except Stopping:
            log.info("bridge: stopping with a batch not accepted yet; it is not committed")
        finally:
            consumer.close(autocommit=False)
            self._producer.close(timeout=10)
            self.client.close()
            log.info("bridge: stopped %s", self.stats)

    def _poll_timeout_s(self) -> float:
        return max(0.0, min(1.0, self._next_repost - time.monotonic()))

    def _poll(self, timeout_s: float) -> list[Any]:
        assert self._consumer is not None
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000))
        out: list[Any] = []
        for tp in sorted(batches, key=lambda t: (t.topic, t.partition)):
            out.extend(batches[tp])
        return out

    def _take_backlog(self) -> list[Any]:
        taken, self._backlog = self._backlog, []
        return taken

    # ------------------------------------------------------------------------------------ delivery

    def _deliver(self, messages: list[Any]) -> None:
        self._lost = set()
        now = self.clock()
        items: list[_Item] = []
        dead: list[tuple[Any, EventError]] = []
        for message in messages:
            parsed = parse_alert(message.value, self.validator)
            if isinstance(parsed, EventError):
                log.warning(
                    "bridge: %s[%d]@%d is not an alert v1 record (%s): dead-lettered",
                    message.topic, message.partition, message.offset, parsed,
                )  # fmt: skip
                dead.append((message, parsed))
                continue
            plan = self.book.apply(parsed, (message.topic, message.partition), now)
            if not plan.posts:
                self.stats.skipped += 1
                log.info(
                    "bridge: %s (%s) is superseded by a later record: not posted",
                    parsed.alert_id,
                    parsed.status,
                )
            items.append(_Item(message, parsed, plan))
        refused = self._post_items(items)
        for item, detail in refused:
            self.book.undo(item.plan, item.record)
            reason = f"alertmanager refused it: {detail}"
            dead.append((item.message, EventError("", reason, item.record.alert_id)))
        self._dead_letter(dead)
        self.stats.records += sum(1 for m in messages if self._keep(m))
        refused_ids = {id(item) for item, _ in refused}
        self.stats.resolves += sum(
            1
            for i in items
            if i.record.status == "resolved"
            and i.plan.posts
            and self._keep(i.message)
            and id(i) not in refused_ids
        )
        self._commit(messages)
        if self._next_repost == float("inf") and self.book.firing:
            self._next_repost = time.monotonic() + self.settings.repost_interval_s

    def _keep(self, message: Any) -> bool:
        """Whether a polled message is still this bridge's to post and commit."""
        tp = TopicPartition(message.topic, message.partition)
        return tp in self._owned and tp not in self._lost

    def _posts(self, items: Sequence[_Item]) -> Callable[[], list[dict[str, Any]]]:
        return lambda: [alert for i in items if self._keep(i.message) for alert in i.plan.posts]

    def _post_items(self, items: list[_Item]) -> list[tuple[_Item, str]]:
        """Post the batch until Alertmanager accepts it; when it calls the batch malformed, record by
        record. Returns the records Alertmanager refused, with its answer."""
        result = self._post_until_answered(self._posts(items))
        if result is None or not result.malformed:
            return []
        log.warning(
            "bridge: alertmanager refused a batch (HTTP %s: %s): posting record by record",
            result.status, result.detail,
        )  # fmt: skip
        refused: list[tuple[_Item, str]] = []
        for item in items:
            one = self._post_until_answered(self._posts([item]))
            if one is not None and one.malformed:
                detail = f"HTTP {one.status}: {one.detail}"
                log.error(
                    "bridge: alert %s (%s) dead-lettered: %s",
                    item.record.alert_id,
                    item.record.status,
                    detail,
                )
                refused.append((item, detail))
        return refused

    def _post_until_answered(self, alerts: Callable[[], list[dict[str, Any]]]) -> PostResult | None:
        """Post ``alerts()`` (evaluated again on every attempt: partitions revoked meanwhile drop out)
        until Alertmanager accepts them or calls them malformed; ``None`` when nothing is left to post."""
        delay = self.settings.retry_initial_s
        while True:
            payload = alerts()
            if not payload:
                return None
            result = self.client.post(payload)
            if result.ok:
                self.stats.posted += len(payload)
                return result
            if result.malformed:
                return result
            self.stats.retries += 1
            what = f"HTTP {result.status}: {result.detail}" if result.status else result.detail
            log.warning(
                "bridge: alertmanager did not accept %d alert(s) (%s): retrying in %.1fs",
                len(payload),
                what,
                delay,
            )
            self._wait(delay)
            delay = min(delay * 2, self.settings.retry_max_s)

    def _wait(self, seconds: float) -> None:
        """Back off without leaving the group: partitions paused, the consumer polling."""
        consumer = self._consumer
        assert consumer is not None
        deadline = time.monotonic() + seconds
        paused = set(consumer.assignment())
        consumer.pause(*paused)
        try:
            while not self.stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._backlog.extend(self._poll(min(remaining, 0.5)))
                newly = set(consumer.assignment()) - paused
                if newly:
                    consumer.pause(*newly)
                    paused |= newly
            raise Stopping
        finally:
            held = paused & set(consumer.assignment())
            consumer.resume(*(held - self._to_rebuild))

    def _dead_letter(self, dead: list[tuple[Any, EventError]]) -> None:
        if not dead:
            return
        producer = self._producer
        assert producer is not None
        delay = self.settings.retry_initial_s
        pending = [(m, e) for m, e in dead if self._keep(m)]
        while pending:
            try:
                futures = [
                    producer.send(self.topics.dead_letter, key=m.key, value=self._wrap(m, e))
                    for m, e in pending
                ]
                for future in futures:
                    future.get(timeout=30)
                self.stats.dead_lettered += len(pending)
                return
            except KafkaError as exc:
                log.warning("bridge: dead-letter topic unavailable (%s): retrying in %.1fs", exc, delay)
                self._wait(delay)
                delay = min(delay * 2, self.settings.retry_max_s)
                pending = [(m, e) for m, e in pending if self._keep(m)]

    def _wrap(self, message: Any, error: EventError) -> bytes:
        source = dead_letter.Source(message.topic, message.partition, message.offset, message.timestamp)
        record = dead_letter.dead_letter_record(
            message.value, message.key, error, source, now=self.clock(), worker=WORKER_NAME, contract=CONTRACT
        )
        return dead_letter.dumps(record)

    def _commit(self, messages: Sequence[Any]) -> None:
        consumer = self._consumer
        assert consumer is not None
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for m in messages:
            tp = TopicPartition(m.topic, m.partition)
            if self._keep(m):
                done = offsets[tp].offset if tp in offsets else 0
                offsets[tp] = OffsetAndMetadata(max(m.offset + 1, done), "", -1)
        if not offsets:
            return
        try:
            consumer.commit(offsets)
        except CommitFailedError as exc:  # the group rebalanced: the new owner posts these again
            log.warning("bridge: commit failed after a rebalance (%s); the batch will be posted again", exc)

    # ------------------------------------------------------------------------------------ re-posts

    def _repost(self) -> None:
        firing = list(self.book.firing.values())
        if not firing:
            self._next_repost = float("inf")
            return
        size = self.settings.max_batch
        for start in range(0, len(firing), size):
            chunk = firing[start : start + size]
            result = self._post_until_answered(self._still_firing(chunk))
            if result is None or not result.malformed:
                continue
            for delivered in chunk:
                one = self._post_until_answered(self._still_firing([delivered]))
                if one is not None and one.malformed:
                    log.error(
                        "bridge: alertmanager refuses %s (HTTP %s: %s): no longer re-posted",
                        delivered.record.alert_id, one.status, one.detail,
                    )  # fmt: skip
                    self.book.forget([delivered.record.fingerprint])
        self.stats.reposts += 1
        self._next_repost = time.monotonic() + self.settings.repost_interval_s

    def _still_firing(self, chunk: Sequence[Delivered]) -> Callable[[], list[dict[str, Any]]]:
        """The chunk's alerts that are still in the book when posted (a rebalance may drop some)."""

        def alerts() -> list[dict[str, Any]]:
            now = self.clock()
            return [
                to_alertmanager(d.record, worker_url=self.settings.worker_url, now=now)
                for d in chunk
                if self.book.firing.get(d.record.fingerprint) is d
            ]

        return alerts

    # ---------------------------------------------------------------------------- ownership, rebuild

    def _on_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = set(revoked)
        self._owned -= revoked
        self._lost |= revoked
        self._to_rebuild -= revoked
        self._backlog = [m for m in self._backlog if TopicPartition(m.topic, m.partition) not in revoked]
        dropped = self.book.drop_sources((tp.topic, tp.partition) for tp in revoked)
        if revoked:
            log.info(
                "bridge: partitions revoked: %s (%d firing alerts handed over)", _names(revoked), dropped
            )

    def _on_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = set(assigned)
        if not assigned:
            return
        assert self._consumer is not None
        self._consumer.pause(*assigned)  # nothing is consumed before its state is rebuilt
        self._to_rebuild |= assigned
        self._owned |= assigned

    def _rebuild(self) -> None:
        """Fold each newly assigned partition, from its start to the committed offset, into the book;
        then consume from the committed offset (the end, for a group without one) and re-post."""
        consumer = self._consumer
        assert consumer is not None
        tps = sorted(self._to_rebuild, key=lambda t: (t.topic, t.partition))
        self._to_rebuild = set()
        t0 = time.monotonic()
        ends = consumer.end_offsets(tps)
        targets: dict[TopicPartition, int] = {}
        fresh: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp in tps:
            committed = consumer.committed(tp)
            targets[tp] = committed if committed is not None else ends[tp]
            if committed is None:
                fresh[tp] = OffsetAndMetadata(ends[tp], "", -1)
        folded = self._fold(targets)
        if fresh:
            # A partition this group never read starts at its end, and that start is committed at
            # once: otherwise a bridge that dies before its first commit there would come back to
            # "no committed offset", start at the (then later) end and skip what arrived meanwhile.
            consumer.commit(fresh)
        for tp, offset in targets.items():
            consumer.seek(tp, offset)
        consumer.resume(*[tp for tp in tps if tp in self._owned])
        self.stats.rebuilt += folded
        self._next_repost = time.monotonic()  # post the rebuilt firing alerts now
        self.ready.set()
        log.info(
            "bridge: assigned %s; rebuilt from %d record(s) in %.2fs: %d firing alert(s) to keep posting",
            _names(tps), folded, time.monotonic() - t0, len(self.book.firing),
        )  # fmt: skip

    def _fold(self, targets: dict[TopicPartition, int]) -> int:
        """Read [beginning, target) of each partition with a group-less consumer and fold it in."""
        reader = kafka_clients.consumer(
            self.bootstrap,
            self.security,
            group_id=None,
            enable_auto_commit=False,
            client_id=f"{WORKER_NAME}-rebuild",
        )
        try:
            reader.assign(list(targets))
            reader.seek_to_beginning(*targets)
            remaining = {tp for tp, target in targets.items() if reader.position(tp) < target}
            folded = 0
            now = self.clock()
            last_progress = time.monotonic()
            while remaining:
                batches = reader.poll(timeout_ms=500)
                for tp in sorted(batches, key=lambda t: (t.topic, t.partition)):
                    for m in batches[tp]:
                        if m.offset >= targets[tp]:
                            break
                        parsed = parse_alert(m.value, self.validator)
                        if not isinstance(parsed, EventError):
                            self.book.apply(parsed, (m.topic, m.partition), now)
                        folded += 1
                    last_progress = time.monotonic()
                remaining = {tp for tp in remaining if reader.position(tp) < targets[tp]}
                if remaining and time.monotonic() - last_progress > REBUILD_STALL_S:
                    raise KafkaError(f"rebuild stalled reading {_names(remaining)}")
            return folded
        finally:
            reader.close(autocommit=False)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, bridge: AlertmanagerBridge) -> None:
        self.bridge = bridge

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.bridge._on_revoked(revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.bridge._on_assigned(assigned)


def _names(tps: Iterable[TopicPartition]) -> str:
    return ", ".join(
        f"{tp.topic}[{tp.partition}]" for tp in sorted(tps, key=lambda t: (t.topic, t.partition))
    )


# --------------------------------------------------------------------------------------------- CLI


def run_bridge_alertmanager(args: argparse.Namespace) -> int:
    """The CLI entry: validate config, contracts and URL, then run until SIGTERM/SIGINT."""
    import urllib.parse

    from rollguard.settings.config import ConfigError, load_config

    level = getattr(logging, str(args.log_level).upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("kafka", "httpx", "httpcore"):  # a line per request or connection: only at debug
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"rollguard: bad config: {exc}", file=sys.stderr)
        return 2
    connection = connection_at_start(config, args.bootstrap, args.config)
    if connection is None:
        return 2
    bootstrap, security = connection
    parsed = urllib.parse.urlsplit(args.url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        print(f"rollguard: --url must be Alertmanager's http(s) URL, got {args.url!r}", file=sys.stderr)
        return 2
    try:
        from rollguard.adapters.topic_contracts import default_topics_dir

        topics_dir = Path(args.topics_dir) if args.topics_dir else default_topics_dir()
        topics = BridgeTopics.from_contracts(load_topics(topics_dir), topics_dir)
    except TopicContractError as exc:
        print(f"rollguard: bad topic contracts: {exc}", file=sys.stderr)
        return 2
    bridge = AlertmanagerBridge(
        bootstrap,
        args.url,
        topics,
        config.bridge.alertmanager,
        group_id=args.group_id,
        security=security,
    )

    def stop(signum: int, _frame: object) -> None:
        log.info("bridge: %s received: finishing the batch in hand", signal.Signals(signum).name)
        bridge.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        bridge.run()
    except Exception as exc:  # Kafka unreachable or refusing our credentials: one line, exit 1, no traceback
        log.debug("bridge stopped", exc_info=True)
        print(f"rollguard: bridge stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
