"""What the worker tests share: topics of their own on the real broker, scenario traffic produced in
file order, the worker in-process or as a `rollguard worker` process, and reading its output topics
back to compare with `rollguard replay` on the same events."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer

from rollguard.adapters.replay import replay
from rollguard.adapters.topic_contracts import TopicSpec
from rollguard.adapters.topics_admin import apply_specs
from rollguard.adapters.worker import WorkerApp, WorkerTopics
from rollguard.settings import Config
from rollguard.sim import generate, get_scenario, merge_streams

OUTPUTS = {"verdicts": "verdicts.jsonl", "control": "commands.jsonl", "audit": "audit.jsonl"}
ALERT_ROLES = ("alerts.critical", "alerts.warning", "alerts.info")


def scenario_events() -> list[bytes]:
    """Three rollouts at once: an error spike in one cohort (critical alerts, a scoped rollback), a
    latency shift in one tenant (a warning), and an A/A rollout (nothing) — 33,687 events."""
    streams = [
        generate(
            get_scenario(
                "error_spike_coding",
                seed=11,
                duration_s=480,
                rate_per_s=30,
                canary_weight=0.3,
                start_s=120,
                error_rate=0.25,
            )
        ),
        generate(
            get_scenario(
                "latency_shift_tenant",
                seed=12,
                duration_s=480,
                rate_per_s=20,
                canary_weight=0.3,
                start_s=60,
                factor=1.6,
            )
        ),
        generate(get_scenario("aa", seed=13, duration_s=480, rate_per_s=20)),
    ]
    return [orjson.dumps(ev) for ev in merge_streams(*streams)]


def make_topics(bootstrap: str, partitions: int = 3) -> WorkerTopics:
    topics = WorkerTopics.prefixed(f"t{uuid.uuid4().hex[:10]}", partitions)
    specs = [
        TopicSpec(
            name,
            name,
            "worker test",
            partitions if name in _copartitioned(topics) else 2,
            1,
            3_600_000,
            "delete",
            "rollout_id",
            "x",
        )
        for name in topics.all_names()
    ]
    apply_specs(bootstrap, specs)
    return topics


def _copartitioned(topics: WorkerTopics) -> set[str]:
    return {topics.events, topics.acks, topics.control}


def produce(
    bootstrap: str, topic: str, values: Iterable[bytes], key_of: Callable[[bytes], bytes | None]
) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    n = 0
    for value in values:
        producer.send(topic, key=key_of(value), value=value)
        n += 1
    producer.flush()
    producer.close()
    return n


def rollout_key(value: bytes) -> bytes:
    return str(orjson.loads(value)["rollout_id"]).encode()


def read_topic(bootstrap: str, topic: str, *, timeout_ms: int = 3000) -> list[tuple[bytes | None, bytes]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=timeout_ms,
        enable_auto_commit=False,
    )
    try:
        return [(m.key, m.value) for m in consumer]
    finally:
        consumer.close()


def worker_outputs(bootstrap: str, topics: WorkerTopics) -> dict[str, list[dict[str, Any]]]:
    """Every record on the worker's output topics, parsed, per output (alerts of all tiers together)."""
    out = {role: [orjson.loads(v) for _, v in read_topic(bootstrap, topics.name(role))] for role in OUTPUTS}
    control = out["control"]
    # Commands, not operator actions (unsigned) nor readiness records (no action).
    out["control"] = [c for c in control if "signature" in c and "action" in c]
    out["readiness"] = [r for r in control if r.get("kind") == "readiness"]  # the control topic's other kind
    out["alerts"] = [
        orjson.loads(v) for role in ALERT_ROLES for _, v in read_topic(bootstrap, topics.name(role))
    ]
    return out


def replay_outputs(
    events: list[bytes], tmp: Path, config: Config | None = None, **kwargs: Any
) -> dict[str, list[dict[str, Any]]]:
    path = tmp / "events.jsonl"
    path.write_bytes(b"\n".join(events) + b"\n")
    replay(path, config or Config(), tmp / "replay", **kwargs)
    files = {**OUTPUTS, "alerts": "alerts.jsonl", "readiness": "readiness.jsonl"}
    out = {
        role: [orjson.loads(line) for line in (tmp / "replay" / f).read_bytes().splitlines()]
        for role, f in files.items()
    }
    # Alerts as :func:`worker_outputs` reads them: one topic per severity tier, each in publishing order.
    out["alerts"].sort(key=lambda a: ALERT_ROLES.index((config or Config()).alerts.route(a["severity"]).role))
    return out


def by_rollout(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by rollout, each rollout's in publishing order (topics only order per key)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(str(r["rollout_id"]), []).append(r)
    return out


def stamp(kind: str, record: dict[str, Any]) -> float:
    """The event time an output record is stamped with (``kind``: verdicts, alerts, control, or a record
    with ``at``: audit, readiness)."""
    if kind == "verdicts":
        return float(record["ts"])
    if kind == "alerts":
        return float(record["notification"]["at"])
    if kind == "control":
        return float(record["issued_at"])
    return float(record["at"])


def stamped_until(records: dict[str, list[dict[str, Any]]], last_ts: dict[str, float]) -> dict[str, Any]:
    """Per output and rollout, the records stamped no later than the rollout's last event time: what the
    worker and replay must agree on (the worker's idle tick moves a rollout's clock past its last event
    with wall time, and adds records after it that replay, ending with the file, does not)."""
    return {
        kind: {rid: [r for r in rs if stamp(kind, r) <= last_ts[rid]] for rid, rs in by_rollout(recs).items()}
        for kind, recs in records.items()
    }


class ManualClock:
    """A wall clock the test moves: idle ticks happen when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


async def run_until_idle(
    wa: WorkerApp, clock: ManualClock, n_events: int, *, idle_after_s: float, timeout: float = 240.0
) -> None:
    """Start the worker, wait until it applied every event, then let the idle tick close the batches."""
    await wa.start()
    await wait_until(lambda: wa.stats.applied + wa.stats.skipped >= n_events, timeout, "every event applied")
    await close_idle_batches(wa, clock, idle_after_s)


async def close_idle_batches(wa: WorkerApp, clock: ManualClock, idle_after_s: float) -> None:
    """Move the wall clock past ``idle_after_s`` and wait until every held rollout's idle tick was handled
    (its open batch closed, its outputs published and checkpointed)."""
    closed = wa.stats.idle_closed
    clock.now += idle_after_s
    n = len(wa.runtime.runtimes)
    await wait_until(lambda: wa.stats.idle_closed >= closed + n, 120, "the idle ticks of every rollout")


def write_contracts(topics: WorkerTopics, directory: Path) -> Path:
    """Topic contracts naming ``topics`` by role (what `rollguard worker --topics-dir` reads)."""
    import shutil

    import yaml

    from rollguard.adapters.topic_contracts import default_topics_dir

    directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(default_topics_dir() / "schemas", directory / "schemas", dirs_exist_ok=True)
    roles = {
        "events": topics.events,
        "dead-letter": topics.dead_letter,
        "acks": topics.acks,
        "control": topics.control,
        "verdicts": topics.verdicts,
        "audit": topics.audit,
        **topics.alerts,
    }
    for role, name in roles.items():
        doc = {
            "name": name,
            "role": role,
            "description": "worker test",
            "replication": 1,
            "retention": "1h",
            "partitions": topics.partitions if role in ("events", "acks", "control") else 2,
            "cleanup_policy": "delete",
            "key": "rollout_id",
            "payload_schema": "schemas/event.v1.json",
        }
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    return directory


def worker_command(
    bootstrap: str | None, config: Path, topics_dir: Path, app_id: str, data_dir: Path
) -> list[str]:
    """`rollguard worker` as ops run it (``bootstrap`` None: from the config or the environment)."""
    import sys

    cmd = [
        sys.executable,
        "-m",
        "rollguard.cli",
        "worker",
        "--config",
        str(config),
        "--topics-dir",
        str(topics_dir),
    ]
    cmd += ["--app-id", app_id, "--data-dir", str(data_dir), "--log-level", "warning"]
    return cmd + (["--bootstrap", bootstrap] if bootstrap else [])


def wait_ready(proc: Any, port: int, timeout: float) -> None:
    """Until the worker's health page says ready (its group joined, its rollouts restored)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode}")
        try:
            if get_json(f"http://127.0.0.1:{port}/rollguard/health/").get("status") == "ready":
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("worker not ready")


def get_json(url: str, timeout: float = 2.0) -> Any:
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response:
        return orjson.loads(response.read())


def expected_counts(events: list[bytes]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in events:
        rid = str(orjson.loads(value)["rollout_id"])
        counts[rid] = counts.get(rid, 0) + 1
    return counts
