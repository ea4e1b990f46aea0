"""The streaming stack against the real broker: the Faust worker counts events per rollout exactly,
dead-letters malformed messages with their reason and source, and recovers its table on restart."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import jsonschema
import orjson
import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer

from kafka_broker import free_port, record_timing
from rollguard.adapters.dead_letter import decode_original
from rollguard.adapters.topic_contracts import TopicSpec, default_topics_dir
from rollguard.adapters.topics_admin import apply_specs, run_topics_apply
from rollguard.adapters.worker import WorkerApp, WorkerTopics, create_app

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

N_EVENTS = 300
ROLLOUTS = ("chat-v1", "chat-v2", "search-v7")
MALFORMED = {
    b'{"event_id": "bad-arm", "request_id": "q", "ts": 1767225600, "rollout_id": "chat-v1",'
    b' "arm": "blue", "status": "ok"}': ("arm", "must be one of control, canary, shadow"),
    b"\xff\xfe not json at all": ("", "not valid JSON"),
}


def _event(i: int) -> bytes:
    rollout = ROLLOUTS[i % len(ROLLOUTS)]
    return orjson.dumps(
        {
            "event_id": f"e{i}",
            "request_id": f"r{i}",
            "ts": 1_767_225_600 + i,
            "rollout_id": rollout,
            "arm": ("control", "canary")[i % 2],
            "status": "ok",
            "latency_ms": 100 + i % 50,
        }
    )


def _expected() -> dict[str, int]:
    counts = dict.fromkeys(ROLLOUTS, 0)
    for i in range(N_EVENTS):
        counts[ROLLOUTS[i % len(ROLLOUTS)]] += 1
    return counts


async def _wait_for(wa: WorkerApp, want: dict[str, int], dead: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wa.counts_snapshot() == want and wa.stats.dead_lettered >= dead:
            return
        await asyncio.sleep(0.1)


def _read_all(bootstrap: str, topic: str, n: int) -> list[tuple[bytes | None, bytes]]:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10_000
    )
    try:
        out = []
        for message in consumer:
            out.append((message.key, message.value))
            if len(out) >= n:
                break
        return out
    finally:
        consumer.close()


def test_worker_counts_exactly_and_dead_letters(kafka_bootstrap: str, tmp_path: Path) -> None:
    sfx = uuid.uuid4().hex[:8]
    topics = WorkerTopics(f"test.events.{sfx}", f"test.dead-letter.{sfx}", partitions=3)
    apply_specs(
        kafka_bootstrap,
        [
            TopicSpec(
                topics.events,
                "events",
                "smoke",
                3,
                1,
                3_600_000,
                "delete",
                "rollout_id",
                "schemas/event.v1.json",
            ),
            TopicSpec(
                topics.dead_letter, "dead-letter", "smoke", 1, 1, 3_600_000, "delete", "original_key", "x"
            ),
        ],
    )
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    for i in range(N_EVENTS):
        rollout = ROLLOUTS[i % len(ROLLOUTS)]
        # Every 10th event has no key: the worker must re-key it rather than count it on the wrong partition.
        producer.send(topics.events, key=None if i % 10 == 0 else rollout.encode(), value=_event(i))
    for value in MALFORMED:
        producer.send(topics.events, key=b"chat-v1", value=value)
    producer.flush()
    producer.close()
    want = _expected()

    async def first_run() -> WorkerApp:
        wa = create_app(kafka_bootstrap, f"smoke-{sfx}", tmp_path / "w1", topics)
        await wa.start()
        try:
            await _wait_for(wa, want, len(MALFORMED), timeout=60)
        finally:
            await wa.stop()
        return wa

    wa = asyncio.run(first_run())
    assert wa.counts_snapshot() == want
    assert wa.stats.valid == N_EVENTS
    assert wa.stats.rekeyed == N_EVENTS // 10
    assert wa.stats.dead_lettered == len(MALFORMED)
    assert wa.stats.errors == 0
    assert wa.timings.join_s is not None and wa.timings.ready_s is not None
    record_timing("faust consumer-group join (first start)", wa.timings.join_s)
    record_timing("faust ready incl. table recovery (first start)", wa.timings.ready_s)

    schema = json.loads((default_topics_dir() / "schemas" / "dead-letter.v1.json").read_text())
    records = [orjson.loads(v) for _, v in _read_all(kafka_bootstrap, topics.dead_letter, len(MALFORMED))]
    assert len(records) == len(MALFORMED)
    for record in records:
        jsonschema.validate(record, schema)
        field, reason = MALFORMED[decode_original(record)]
        assert record["field"] == field
        assert reason in record["reason"]
        assert record["source_topic"] == topics.events
        assert record["original_key"] == "chat-v1"
        assert record["source_offset"] >= 0
    assert {r["original_encoding"] for r in records} == {"utf-8", "base64"}

    # A restarted worker (same app id, fresh process state) rebuilds its table from the changelog.
    async def second_run() -> WorkerApp:
        wa2 = create_app(kafka_bootstrap, f"smoke-{sfx}", tmp_path / "w2", topics)
        await wa2.start()
        try:
            await _wait_for(wa2, want, 0, timeout=30)
        finally:
            await wa2.stop()
        return wa2

    wa2 = asyncio.run(second_run())
    assert wa2.counts_snapshot() == want
    assert wa2.stats.valid == 0  # nothing re-processed: offsets were committed
    if wa2.timings.ready_s is not None:
        record_timing("faust ready incl. table recovery (restart)", wa2.timings.ready_s)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body: dict[str, object] = json.loads(response.read())
                return body
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {timeout}s")


def test_worker_cli_process(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`rollguard worker` as ops run it: refuses to start without its topics, then runs, reports
    ready on its health page, and stops cleanly on SIGTERM."""
    sfx = uuid.uuid4().hex[:8]
    topics_dir = tmp_path / "topics"
    shutil.copytree(default_topics_dir() / "schemas", topics_dir / "schemas")
    for role, name in (("events", f"test.cli.events.{sfx}"), ("dead-letter", f"test.cli.dl.{sfx}")):
        doc = {
            "name": name,
            "role": role,
            "description": "cli test",
            "partitions": 2,
            "replication": 1,
            "retention": "1h",
            "cleanup_policy": "delete",
            "key": "rollout_id",
            "payload_schema": "schemas/event.v1.json",
        }
        (topics_dir / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    port = free_port()
    config = tmp_path / "rollguard.yaml"
    config.write_text(yaml.safe_dump({"worker": {"web_port": port, "web_bind": "127.0.0.1"}}))
    cmd = [
        sys.executable,
        "-m",
        "rollguard.cli",
        "worker",
        "--bootstrap",
        kafka_bootstrap,
        "--config",
        str(config),
        "--app-id",
        f"cli-{sfx}",
        "--data-dir",
        str(tmp_path / "data"),
        "--topics-dir",
        str(topics_dir),
        "--log-level",
        "warning",
    ]

    missing = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 1
    assert "topics apply" in missing.stderr

    assert run_topics_apply(kafka_bootstrap, str(topics_dir), dry_run=False) == 0
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        health = _wait_healthy(f"http://127.0.0.1:{port}/rollguard/health/", proc, timeout=60)
        assert health["status"] == "ready"
        record_timing("`rollguard worker` process: consumer-group join", float(str(health["join_s"])))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.close()
    assert code == 0, (tmp_path / "worker.log").read_text()[-3000:]
