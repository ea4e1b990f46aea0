"""Pre-flight on the real broker: the worker rehearses each new rollout's revert through the control topic.

The reference flagd controller answers the rehearsal of a rollout whose flag it holds ``dry_run_ok``
without touching the flags file, and skips the readiness records beside it; the worker's readiness of
that rollout becomes ready (``/status``, and a signed readiness record on the control topic). A
rollout no controller answers for is not ready once the rehearsal timed out in event time, and the
on-call gets a warning. Events carry present-day timestamps: the controller checks expiry by its clock.

``rollguard preflight`` reads those records back: it exits 0 for the ready rollout and 1 for the other,
with the checklist; with ``--rehearse`` (the operator's signed ``rehearse_revert`` on the control topic)
the worker issues a new dry-run rollback, the controller answers it, and preflight reports the outcome.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer
from worker_kit import ManualClock, make_topics, read_topic, wait_until, worker_outputs, write_contracts

from controller_testkit import KEY, RunningController, canary_flags, write_flags
from readme import readme_command, with_options
from rollguard.adapters.controller.consumer import ControllerTopics
from rollguard.adapters.operator import write_key_file
from rollguard.adapters.worker import WorkerOptions, create_app
from rollguard.policy.commands.signing import verify_command
from rollguard.settings import parse_config

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]
CONFIG = "readiness: {baselines: off, rehearsal_timeout_s: 30}\n"


def _control_events(rollout: str, start: float, seconds: float, n: int) -> list[bytes]:
    """``n`` control requests of one rollout spread over ``seconds`` of event time from ``start``."""
    return [
        orjson.dumps(
            {"event_id": f"{rollout}-{i}", "request_id": f"{rollout}-q{i}", "ts": start + seconds * i / n,
             "rollout_id": rollout, "arm": "control", "status": "ok", "latency_ms": 400.0 + i % 7,
             "segment": {"input_class": "chat"}, "unit_id": f"u{i}"}
        )
        for i in range(n)
    ]  # fmt: skip


def test_the_reference_controller_rehearses_the_revert_and_the_rollout_becomes_ready(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    answered, unanswered = f"ready-{tag}", f"nobody-{tag}"  # only the first has a flag in the file
    flags = write_flags(tmp_path / "flags.json", canary_flags(answered, canary=0, control=100))
    before = flags.read_bytes()
    topics = make_topics(kafka_bootstrap)
    controllers: list[RunningController] = []
    options = WorkerOptions(
        kafka_bootstrap, app_id=f"ready-{topics.events}", web_enabled=False, idle_after_s=600
    )
    operator = write_key_file(tmp_path / "alice.key", "alice-test", "alice")
    alice = f"{{operator: alice, public_key: {operator.public_b64}}}"
    config = CONFIG + f"operators: {{keys: {{alice-test: {alice}}}}}\n"
    wa = create_app(options, parse_config(config), topics, signing_key=KEY, clock=ManualClock())
    contracts = write_contracts(topics, tmp_path / "topics")
    preflight_cfg = tmp_path / "rollguard.yaml"
    preflight_cfg.write_text(f"commands: {{signing_key: {KEY.decode()}}}\n")
    now = time.time()

    def preflight(rollout: str, rehearse: bool = False) -> subprocess.CompletedProcess[str]:
        """README's command (``--rehearse``: its second one), with this test's broker, files and rollout."""
        prefix = "rollguard preflight checkout-v2 --bootstrap"
        prefix += " localhost:9092 --rehearse" if rehearse else ""
        key_file = str(tmp_path / "alice.key")
        values = {"--bootstrap": kafka_bootstrap}
        values |= {"--key-file": key_file} if rehearse else {"--config": str(preflight_cfg)}
        argv = with_options(readme_command(prefix), values)
        argv[2] = rollout
        cmd = [sys.executable, "-m", "rollguard.cli", *argv[1:], "--topics-dir", str(contracts)]
        if rehearse:
            cmd += ["--config", str(preflight_cfg)]
        env = {**os.environ, "COLUMNS": "200"}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, check=False)

    rehearsed: list[subprocess.CompletedProcess[str]] = []

    def readiness(rollout: str) -> dict[str, Any] | None:
        rt = wa.runtime.runtimes.get(rollout)
        return None if rt is None else rt.pipeline.status()["readiness"]

    async def run() -> None:
        await wa.start()
        try:
            producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
            for value in _control_events(answered, now, 5.0, 50):
                producer.send(topics.events, key=answered.encode(), value=value)
            producer.flush()
            await wait_until(lambda: readiness(answered) is not None, 60, "the rollout seen")
            # The controller joins once the rehearsal is on the control topic (it reads from the earliest
            # offset; it subscribes only once its own client knows the topic's partitions).
            controllers.append(
                RunningController(
                    kafka_bootstrap, ControllerTopics(topics.control, topics.acks), flags, tmp_path / "ctl"
                )
            )
            await wait_until(
                lambda: bool((readiness(answered) or {}).get("ready")), 120, "ready after dry_run_ok"
            )
            # The operator asks for another rehearsal; preflight waits for its outcome.
            rehearsed.append(await asyncio.to_thread(preflight, answered, True))
            for value in _control_events(unanswered, now, 60.0, 120):  # event time passes the timeout
                producer.send(topics.events, key=unanswered.encode(), value=value)
            producer.flush()
            producer.close()
            await wait_until(lambda: wa.stats.applied >= 170, 60, "every event applied")
        finally:
            await wa.stop()

    try:
        asyncio.run(run())
    finally:
        for controller in controllers:
            controller.stop()
    assert wa.stats.errors == 0

    status = {r["rollout_id"]: r for r in wa.runtime.status()["rollouts"]}  # what /status serves
    ready = status[answered]["readiness"]
    revert = next(c for c in ready["checks"] if c["check"] == "revert")
    assert (
        ready["ready"] is True
        and revert["state"] == "met"
        and "dry_run_ok by flagd-file" in revert["evidence"]
    )
    assert status[answered]["commands"] == [] and status[answered]["level"] == 0  # the ladder did not move
    assert rehearsed[0].returncode == 0, rehearsed[0].stdout + rehearsed[0].stderr
    assert "READY" in rehearsed[0].stdout and "signature: verified" in rehearsed[0].stdout

    # The controller answered the rehearsal (and nothing else: readiness records are not commands), and
    # the flags file is byte for byte what it was.
    acks = [orjson.loads(v) for _, v in read_topic(kafka_bootstrap, topics.acks)]
    out = worker_outputs(kafka_bootstrap, topics)
    commands = [c for c in out["control"] if c["action"] != "rehearse_revert"]  # not the operator's ask
    rehearsals = [c for c in commands if c["rollout_id"] == answered]
    assert all(c["rehearsal"] and c["dry_run"] and c["action"] == "rollback" for c in commands)
    assert len(rehearsals) == 2  # at the first event, and the one the operator asked for
    assert revert["evidence"].startswith(f"dry-run rollback {rehearsals[1]['command_id']} answered")
    assert [(a["command_id"], a["status"], a["controller"]) for a in acks] == [
        (c["command_id"], "dry_run_ok", "flagd-file") for c in rehearsals
    ]
    assert flags.read_bytes() == before

    # Readiness records on the control topic, signed, each rollout's in order.
    records = out["readiness"]
    assert records and all(verify_command(r, KEY) for r in records)
    # Not ready until the controller answered (the rehearsal pending), then ready.
    of_answered = [(r["ready"], r["blocking"]) for r in records if r["rollout_id"] == answered]
    assert of_answered == [(False, ["revert"]), (True, []), (False, ["revert"]), (True, [])]

    # Nobody answers for the other rollout: not ready once 30 s of its event time passed, and a warning.
    final = next(r for r in records[::-1] if r["rollout_id"] == unanswered)
    assert final["ready"] is False and final["blocking"] == ["revert"]
    assert status[unanswered]["readiness"]["ready"] is False
    warnings = [a for a in out["alerts"] if a["rule"] == "revert_not_rehearsed"]
    assert [(a["rollout_id"], a["severity"], a["audience"]) for a in warnings] == [
        (unanswered, "warning", "oncall")
    ]

    # preflight reads the same records back: 0 for the ready rollout, 1 for the other, with the checklist.
    done = preflight(answered)
    assert done.returncode == 0 and f"{answered}: READY" in done.stdout, done.stdout + done.stderr
    missing = preflight(unanswered)
    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert f"{unanswered}: NOT READY" in missing.stdout and "revert path not rehearsed" in missing.stdout
    assert "to satisfy: a controller answers the dry-run rollback" in missing.stdout
    assert preflight(f"never-{tag}").returncode == 3  # nothing known about it
