"""The worker's Kafka security settings are known to work: `rollguard worker` against a broker's
SASL/PLAIN listener and its SASL_SSL listener with SCRAM-SHA-512 (the CA from ``ssl_cafile``), the
password taken from the environment, consumes events and publishes verdicts; a wrong password stops it
at start within seconds with one line, not after kafka-python's 30 s bootstrap wait."""

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
from secured_kit import PASSWORD, PASSWORD_ENV, Listener, read_records, sasl_plaintext, sasl_ssl, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def _worker_consumes_and_publishes_verdicts(
    broker: kafka_broker.Broker, listener: Listener, tmp_path: Path
) -> None:
    """Events sent over ``listener``, `rollguard worker` configured for ``listener`` only, its verdicts
    read back over ``listener``."""
    topics = make_topics(broker.bootstrap)
    contracts = write_contracts(topics, tmp_path / "topics")
    port = free_port()
    config = write_config(tmp_path / "rollguard.yaml", listener, worker={"web_port": port})
    producer = KafkaProducer(**listener.client_kwargs())
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
    cmd = worker_command(None, config, contracts, f"secured-{topics.events}", tmp_path / "data")
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_ready(proc, port, 90)
        deadline = time.monotonic() + 60
        while get_json(f"http://127.0.0.1:{port}/status")["worker"]["applied"] < n:
            assert time.monotonic() < deadline, f"events not applied over {listener.protocol}"
            time.sleep(0.5)
        verdicts = read_records(
            listener, topics.verdicts, timeout_s=60, until=lambda v: v.get("rollout_id") == "secure"
        )
        assert any(v.get("rollout_id") == "secure" for v in verdicts), "no verdict published"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def test_the_worker_runs_over_sasl_plain_with_the_password_from_the_environment(
    sasl_broker: kafka_broker.Broker, tmp_path: Path
) -> None:
    _worker_consumes_and_publishes_verdicts(sasl_broker, sasl_plaintext(sasl_broker), tmp_path)


def test_the_worker_runs_over_sasl_ssl_with_scram_sha_512_trusting_the_configured_ca(
    secured_broker: kafka_broker.Broker, tmp_path: Path
) -> None:
    _worker_consumes_and_publishes_verdicts(
        secured_broker, sasl_ssl(secured_broker, "SCRAM-SHA-512"), tmp_path
    )


def test_a_wrong_password_stops_the_worker_at_start_with_one_line(
    sasl_broker: kafka_broker.Broker, tmp_path: Path
) -> None:
    topics = make_topics(sasl_broker.bootstrap)
    contracts = write_contracts(topics, tmp_path / "topics")
    config = write_config(
        tmp_path / "rollguard.yaml", sasl_plaintext(sasl_broker), worker={"web_port": free_port()}
    )
    env = {**os.environ, PASSWORD_ENV: "wrong"}
    cmd = worker_command(None, config, contracts, "sasl-wrong", tmp_path / "data")
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    elapsed = time.monotonic() - t0
    assert done.returncode == 1
    assert f"cannot reach Kafka at {sasl_broker.sasl_bootstrap}" in done.stderr
    assert f"{sasl_broker.sasl_bootstrap} refused the credentials over SASL_PLAINTEXT" in done.stderr
    assert "Traceback" not in done.stderr
    assert elapsed < 15, done.stderr  # kafka-python alone gives up after 30 s
