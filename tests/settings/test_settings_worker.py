"""The worker section: how the worker reaches Kafka (bootstrap, client id, TLS, SASL) and paces itself,
checked with the rest of the file; secrets come from the environment, never from the file."""

from __future__ import annotations

import pytest
from config_errors import assert_fails

from rollguard.settings import Config, parse_config
from rollguard.settings.worker import KafkaSettings, WorkerSettings


def test_defaults_without_the_section() -> None:
    assert parse_config("worker:\n").worker == Config().worker == WorkerSettings()
    w = WorkerSettings()
    assert (w.web_bind, w.store, w.kafka.security_protocol, w.kafka.bootstrap) == (
        "127.0.0.1", "memory", "PLAINTEXT", None,
    )  # fmt: skip


def test_the_section_parses_into_typed_settings() -> None:
    worker = parse_config(
        "worker:\n"
        "  web_port: 7000\n  replication: 3\n  store: rocksdb\n  idle_after_s: 10\n"
        "  kafka:\n    bootstrap: k1:9093,k2:9093\n    security_protocol: SASL_SSL\n"
        "    sasl_mechanism: SCRAM-SHA-512\n    sasl_username: rg\n    sasl_password_env: RG_PW\n"
        "    ssl_cafile: /etc/ca.pem\n"
    ).worker
    assert (worker.web_port, worker.replication, worker.store) == (7000, 3, "rocksdb")
    assert worker.idle_after_s == 10.0
    assert worker.kafka == KafkaSettings(
        "k1:9093,k2:9093", None, "SASL_SSL", "SCRAM-SHA-512", "rg", "RG_PW", "/etc/ca.pem", None, None
    )


def test_connection_settings_can_come_from_the_environment() -> None:
    kafka = parse_config("worker: {kafka: {bootstrap: 'file:9092'}}").worker.kafka
    env = {"ROLLGUARD_BOOTSTRAP": "env:9092", "ROLLGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}
    assert kafka.with_environment(env).bootstrap == "env:9092"
    assert kafka.with_environment(env).security_protocol == "SASL_PLAINTEXT"
    assert kafka.with_environment({}) is kafka


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("worker: 5", 1, "worker", "must be a mapping, got int"),
        ("worker:\n  web_port: '7000'", 2, "worker.web_port", "must be a number, got '7000'"),
        ("worker:\n  web_port: 70000", 2, "worker.web_port", "must be at most 65535, got 70000"),
        ("worker:\n  web_enabled: 1", 2, "worker.web_enabled", "must be true or false"),
        ("worker:\n  replication: 0", 2, "worker.replication", "must be at least 1, got 0"),
        ("worker:\n  store: redis", 2, "worker.store", "must be one of memory, rocksdb, got 'redis'"),
        ("worker:\n  tick_s: 0", 2, "worker.tick_s", "must be positive, got 0"),
        ("worker:\n  kafka: {bootstrap: nohost}", 2, "worker.kafka.bootstrap",
         "must be HOST:PORT[,HOST:PORT...], got 'nohost'"),
        ("worker:\n  kafka:\n    security_protocol: TLS", 3, "worker.kafka.security_protocol",
         "must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, got 'TLS'"),
        ("worker:\n  kafka:\n    sasl_mechanism: GSSAPI", 3, "worker.kafka.sasl_mechanism",
         "must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, got 'GSSAPI'"),
        ("worker:\n  kafka:\n    sasl_password: hunter2", 3, "worker.kafka.sasl_password",
         "unknown setting (expected one of: bootstrap, client_id, sasl_mechanism, sasl_password_env, "
         "sasl_username, security_protocol, ssl_cafile, ssl_certfile, ssl_keyfile)"),
        ("worker:\n  replication: x\n  bogus: 1\n", 2, "worker.replication", "must be a number, got 'x'"),
    ],
)  # fmt: skip
def test_errors_name_the_line_and_field(text: str, line: int, field: str, message: str) -> None:
    assert_fails(text, line, field, message)


def test_sasl_needs_a_user_name() -> None:
    assert_fails(
        "worker:\n  kafka:\n    security_protocol: SASL_PLAINTEXT\n", 3, "worker.kafka.sasl_username",
        "required with security_protocol SASL_PLAINTEXT",
    )  # fmt: skip
