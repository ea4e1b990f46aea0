"""The loop closes: simulator → worker → control topic → the reference flagd controller → acks topic →
worker. Each `applied` ack moves the worker's ladder (the next step only after it), exactly as replay's
``--auto-ack`` models a controller; and the flag an application evaluates (OpenFeature SDK, flagd
provider, in-process, reading the controller's file) ends rolled back.

Traffic carries present-day timestamps: the controller checks each command's expiry against its own
clock, so commands issued from events of the simulator's default date would all be expired."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer
from worker_kit import ManualClock, make_topics, replay_outputs, wait_until

from controller_testkit import KEY, RunningController, canary_flags, evaluator, write_flags
from rollguard.adapters.controller.consumer import ControllerTopics
from rollguard.adapters.worker import WorkerOptions, create_app
from rollguard.policy.commands.signing import verify_command
from rollguard.settings import parse_config
from rollguard.sim import Injection, generate, get_scenario

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(600)]
# A short ladder: the regression persists 15 s after each applied step before the next, no cooldown.
CONFIG = "commands: {persist_s: 15, cooldown_s: 15}"
DURATION = 150.0


def _ladder(rollout: str) -> tuple[list[dict[str, object]], float]:
    """Coding errors rise at second 5, errors everywhere at second 40 (80 requests/s, 30% canary)."""
    sc = get_scenario(
        "error_spike_coding",
        seed=21,
        duration_s=DURATION,
        rate_per_s=80,
        canary_weight=0.3,
        start_s=5,
        error_rate=0.5,
    )
    sc.injections.append(Injection("error_rate", 0.15, 40, cohort={}, label="errors everywhere"))
    sc.rollout_id = rollout
    return list(generate(sc)), sc.start_ts


def test_simulator_worker_controller_acks_worker(kafka_bootstrap: str, tmp_path: Path) -> None:
    rollout = f"loop-{int(time.time())}"
    events, start_ts = _ladder(rollout)
    expected = replay_outputs(
        [orjson.dumps(ev) for ev in events],
        tmp_path,
        auto_ack_s=1.0,
        signing_key=KEY,
        config=parse_config(CONFIG),
    )
    steps = [c["action"] for c in expected["control"] if not c.get("rehearsal")]
    assert steps == ["disable_scope", "reduce_weight", "rollback"]

    topics = make_topics(kafka_bootstrap)
    flags = write_flags(tmp_path / "flags.json", canary_flags(rollout, canary=30, control=70))
    controller = RunningController(
        kafka_bootstrap, ControllerTopics(topics.control, topics.acks), flags, tmp_path / "controller"
    )
    options = WorkerOptions(
        kafka_bootstrap, app_id=f"loop-{topics.events}", web_enabled=False, idle_after_s=600
    )
    wa = create_app(options, parse_config(CONFIG), topics, signing_key=KEY, clock=ManualClock())
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks=1, linger_ms=5)

    async def run() -> None:
        await wa.start()
        try:
            # Live traffic: each event is produced when its time comes, stamped with the present, so the
            # controller's clock (expiry, ack time) and the rollout's event time agree.
            wall0 = time.time()
            for ev in events:
                due = wall0 + (float(ev["ts"]) - start_ts)  # type: ignore[arg-type]
                if due - time.time() > 0.02:
                    producer.flush()
                    await asyncio.sleep(due - time.time())
                producer.send(topics.events, key=rollout.encode(), value=orjson.dumps({**ev, "ts": due}))
            producer.flush()
            await wait_until(lambda: wa.stats.applied >= len(events), 120, "every event applied")
            await wait_until(
                lambda: wa.runtime.runtimes[rollout].pipeline.status()["level"] == 2,
                60,
                "the rollback applied by the controller",
            )
        finally:
            await wa.stop()

    try:
        asyncio.run(run())
    finally:
        producer.close()
        controller.stop()

    status = wa.runtime.runtimes[rollout].pipeline.status()
    assert [c["action"] for c in status["commands"]] == steps
    assert [c["status"] for c in status["commands"]] == ["applied"] * 3
    # The ladder stepped only after each applied ack: each command was issued after the previous was applied.
    for before, after in zip(status["commands"], status["commands"][1:], strict=False):
        assert after["issued_at"] >= before["applied_at"]
    consumer = KafkaConsumer(
        topics.acks, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=3000
    )
    acks = [orjson.loads(m.value) for m in consumer]
    consumer.close()
    # The controller rehearsed the revert (dry_run_ok, nothing changed) before it applied the ladder.
    assert [a["status"] for a in acks] == ["dry_run_ok"] + ["applied"] * 3 and all(
        a["controller"] == "flagd-file" for a in acks
    )
    commands = [
        orjson.loads(m.value)
        for m in KafkaConsumer(
            topics.control,
            bootstrap_servers=kafka_bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=3000,
        )
    ]
    assert all(verify_command(c, KEY) for c in commands if "signature" in c)
    with evaluator(flags, rollout) as flag:
        assert flag.canary_share(2000) == 0.0  # rolled back: the control variant everywhere
        assert flag.variant("someone", input_class="coding") == "control"
