"""The worker's Kafka security settings are known to work: `rollguard worker` against a broker's
SASL/PLAIN listener, with the password taken from the environment; a wrong password stops it at start
with one line, not a hang."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer
from worker_kit import get_json, make_topics, wait_ready, worker_command, write_contracts

import kafka_broker
from kafka_broker import free_port
from sasl_kit import PASSWORD, PASSWORD_ENV, client_kwargs, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def _config(tmp_path: Path, broker: kafka_broker.Broker, port: int) -> Path:
    return write_config(tmp_path / "rollguard.yaml", broker, worker={"web_port": port})


def test_the_worker_runs_over_sasl_plain_with_the_password_from_the_environment(
    sasl_broker: kafka_broker.Broker, tmp_path: Path
) -> None:
    topics = make_topics(sasl_broker.bootstrap)
    contracts = write_contracts(topics, tmp_path / "topics")
    port = free_port()
    config = _config(tmp_path, sasl_broker, port)
    producer = KafkaProducer(**client_kwargs(sasl_broker))
    n = 400
    for i in range(n):
        ev = {
            "event_id": f"e{i}",
            "request_id": f"r{i}",
            "ts": 1767225600.0 + i / 4,
            "rollout_id": "secure",
            "arm": ("control", "canary")[i % 2],
            "status": "ok",
            "latency_ms": 100.0 + i % 7,
        }
        producer.send(topics.events, key=b"secure", value=orjson.dumps(ev))
    producer.flush()
    producer.close()
    env = {**os.environ, PASSWORD_ENV: PASSWORD}
    env.pop("ROLLGUARD_BOOTSTRAP", None)
    cmd = worker_command(None, config, contracts, f"sasl-{topics.events}", tmp_path / "data")
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_ready(proc, port, 90)
        deadline = time.monotonic() + 60
        while get_json(f"http://127.0.0.1:{port}/status")["worker"]["applied"] < n:
            assert time.monotonic() < deadline, "events not applied over SASL"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def test_a_wrong_password_stops_the_worker_at_start_with_one_line(
    sasl_broker: kafka_broker.Broker, tmp_path: Path
) -> None:
    topics = make_topics(sasl_broker.bootstrap)
    contracts = write_contracts(topics, tmp_path / "topics")
    config = _config(tmp_path, sasl_broker, free_port())
    env = {**os.environ, PASSWORD_ENV: "wrong"}
    cmd = worker_command(None, config, contracts, "sasl-wrong", tmp_path / "data")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 1
    assert f"cannot reach Kafka at {sasl_broker.sasl_bootstrap}" in done.stderr
    assert "Traceback" not in done.stderr
