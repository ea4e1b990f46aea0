"""The command ladder over real topics: a controller acks each command on the acks topic, and the worker
climbs disable scope → reduce weight → roll back exactly as replay does with ``--auto-ack`` (a
controller that applies every command a fixed time after it was issued). The acks take effect when
they arrive, not at the time they carry: the event times of the steps may differ, the steps may not."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer
from worker_kit import ManualClock, make_topics, replay_outputs, rollout_key, wait_until

from rollguard.adapters.worker import WorkerOptions, WorkerTopics, create_app
from rollguard.settings import Config
from rollguard.sim import Injection, generate, get_scenario

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]
ACK_AFTER_S = 20.0


def _ladder_events() -> list[bytes]:
    """Coding errors rise at minute 1, then errors rise everywhere at minute 4: one scope is not enough."""
    sc = get_scenario(
        "error_spike_coding",
        seed=21,
        duration_s=900,
        rate_per_s=30,
        canary_weight=0.3,
        start_s=60,
        error_rate=0.3,
    )
    sc.injections.append(Injection("error_rate", 0.08, 240, cohort={}, label="errors everywhere"))
    return [orjson.dumps(ev) for ev in generate(sc)]


def _controller(bootstrap: str, topics: WorkerTopics, stop: threading.Event, acked: list[str]) -> None:
    """A rollout controller: applies every rollout command it reads and acks it ``applied`` (a dry run:
    ``dry_run_ok``); readiness records are not commands."""
    consumer = KafkaConsumer(
        topics.control,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=200,
        enable_auto_commit=False,
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        while not stop.is_set():
            for message in consumer:
                command = orjson.loads(message.value)
                if "action" not in command or "signature" not in command or command.get("requires_approval"):
                    continue
                ack = {
                    "schema_version": 1,
                    "command_id": command["command_id"],
                    "rollout_id": command["rollout_id"],
                    "status": "dry_run_ok" if command["dry_run"] else "applied",
                    "at": command["issued_at"] + ACK_AFTER_S,
                    "controller": "test",
                }
                producer.send(topics.acks, key=message.key, value=orjson.dumps(ack)).get(timeout=10)
                acked.append(command["command_id"])
    finally:
        consumer.close()
        producer.close()


def _steps(commands: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    return [
        (c["action"], orjson.dumps(c["scope"], option=orjson.OPT_SORT_KEYS).decode(), c.get("target_weight"))
        for c in commands
    ]


def test_acks_on_the_real_topic_move_the_ladder_as_auto_ack_does_in_replay(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    events = _ladder_events()
    expected = replay_outputs(events, tmp_path, auto_ack_s=ACK_AFTER_S)
    rehearsal, *ladder = expected["control"]
    assert rehearsal["rehearsal"] and rehearsal["dry_run"]  # at the first event; never a ladder step
    assert [s[0] for s in _steps(ladder)] == ["disable_scope", "reduce_weight", "rollback"]

    topics = make_topics(kafka_bootstrap)
    stop = threading.Event()
    acked: list[str] = []
    controller = threading.Thread(
        target=_controller, args=(kafka_bootstrap, topics, stop, acked), daemon=True
    )
    controller.start()
    clock = ManualClock()
    options = WorkerOptions(
        kafka_bootstrap, app_id=f"ladder-{topics.events}", web_enabled=False, idle_after_s=60, tick_s=0.2
    )
    wa = create_app(options, Config(), topics, clock=clock)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks=1, linger_ms=5)

    async def run() -> None:
        await wa.start()
        try:
            # Traffic at about 60x real time, so that acks arrive while the regression is still going on.
            for i, value in enumerate(events):
                producer.send(topics.events, key=rollout_key(value), value=value)
                if i % 100 == 99:
                    producer.flush()
                    await asyncio.sleep(0.05)
            producer.flush()
            await wait_until(lambda: wa.stats.applied >= len(events), 240, "every event applied")
            await wait_until(lambda: len(acked) >= 4, 60, "the rehearsal and three commands acked")
            rid = next(iter(wa.runtime.runtimes))
            await wait_until(
                lambda: wa.runtime.runtimes[rid].pipeline.status()["level"] == 2, 60, "the rollback applied"
            )
        finally:
            await wa.stop()
            stop.set()

    asyncio.run(run())
    controller.join(timeout=10)
    producer.close()
    consumer = KafkaConsumer(
        topics.control,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    commands = [c for c in (orjson.loads(m.value) for m in consumer) if "signature" in c and "action" in c]
    consumer.close()
    assert _steps(commands) == _steps(expected["control"])
    status = next(iter(wa.runtime.runtimes.values())).pipeline.status()
    assert status["level"] == 2 and status["disabled_scopes"] == ["input_class=coding"]
    assert [c["status"] for c in status["commands"]] == ["applied"] * 3
