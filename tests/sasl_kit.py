"""A broker with a SASL/PLAIN listener for the tests that prove rollguard reaches a secured cluster,
and the pieces every such test needs: the credentials, a config whose ``worker.kafka`` section
describes that listener, and kafka-python clients of the test's own over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import kafka_broker

USER, PASSWORD = "rollguard", "s3cret-for-tests"
PASSWORD_ENV = "RG_TEST_KAFKA_PASSWORD"


@pytest.fixture(scope="session")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kafka_broker.Broker]:
    """A broker of its own with a SASL_PLAINTEXT (PLAIN) listener at ``sasl_bootstrap``."""
    broker = kafka_broker.start(tmp_path_factory.mktemp("sasl-kafka"), sasl_user=f"{USER}:{PASSWORD}")
    try:
        yield broker
    finally:
        kafka_broker.stop(broker)


def kafka_section(broker: kafka_broker.Broker) -> dict[str, Any]:
    """``worker.kafka`` for the SASL listener, the password left to ``$RG_TEST_KAFKA_PASSWORD``."""
    return {
        "bootstrap": broker.sasl_bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_username": USER,
        "sasl_password_env": PASSWORD_ENV,
    }


def write_config(path: Path, broker: kafka_broker.Broker, **sections: Any) -> Path:
    """A rollguard config whose ``worker.kafka`` is the SASL listener (``worker`` in ``sections`` is
    merged over it)."""
    worker = {**sections.pop("worker", {}), "kafka": kafka_section(broker)}
    path.write_text(yaml.safe_dump({"worker": worker, **sections}))
    return path


def client_kwargs(broker: kafka_broker.Broker, password: str = PASSWORD) -> dict[str, Any]:
    """kafka-python settings of the test's own clients on the SASL listener."""
    return {
        "bootstrap_servers": broker.sasl_bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": USER,
        "sasl_plain_password": password,
    }
