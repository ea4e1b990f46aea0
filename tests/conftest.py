"""Shared fixtures. Kafka is started lazily: only a test that asks for ``kafka_bootstrap`` pays for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import kafka_broker

# A broker with secured listeners: SASL, TLS, SASL_SSL (started only for the tests that ask for it).
from secured_kit import sasl_broker, secured_broker  # noqa: F401

# Real Alertmanager and Prometheus, and a webhook sink (tests/services.py), for every test folder.
from services import alertmanager, prometheus_for, webhook_sink  # noqa: F401


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a real broker: ``$ROLLGUARD_TEST_BOOTSTRAP``, else one started for this session."""
    external = kafka_broker.external_bootstrap()
    if external:
        yield external
        return
    broker = kafka_broker.start(tmp_path_factory.mktemp("kafka"))
    try:
        yield broker.bootstrap
    finally:
        kafka_broker.stop(broker)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if kafka_broker.TIMINGS:
        terminalreporter.section("rollguard timings")
        for name, seconds in kafka_broker.TIMINGS.items():
            terminalreporter.write_line(f"{name}: {seconds:.2f} s")
