"""What the start-up look at a secured cluster counts as a refusal: only a broker's definite answer about
the security (the real refusals — a wrong password, CA or client certificate — are run against a broker
in test_commands_over_sasl.py and test_commands_over_tls.py). A connection refused, timed out or closed
mid-handshake is a broker not up (or going away), left to the client, which waits for it."""

from __future__ import annotations

import ssl
import time

import pytest
from aiokafka.errors import KafkaConnectionError

from kafka_broker import free_port
from rollguard.adapters.kafka_handshake import addresses, answer, refusal_of
from rollguard.adapters.kafka_security import KafkaSecurity

TLS = KafkaSecurity("SSL")
SASL_SSL = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "rollguard", "secret")


def _closed_mid_handshake() -> KafkaConnectionError:
    exc = KafkaConnectionError("Connection at 127.0.0.1:9093 closed")
    exc.__cause__ = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    return exc


@pytest.mark.parametrize(
    "failure",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
        _closed_mid_handshake(),
        KafkaConnectionError("Connection at 127.0.0.1:9093 closed"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("security", [TLS, SASL_SSL], ids=lambda s: s.protocol)
def test_a_connection_that_failed_without_an_answer_is_not_a_refusal(
    failure: BaseException, security: KafkaSecurity
) -> None:
    assert refusal_of(failure, "127.0.0.1:9093", security) is None


def test_an_address_nobody_listens_on_is_left_to_the_client_at_once() -> None:
    t0 = time.monotonic()
    assert answer(f"127.0.0.1:{free_port()}", SASL_SSL) is None  # not ACCEPTED either: asked again next time
    assert time.monotonic() - t0 < 5


def test_the_bootstrap_list_is_asked_in_its_order_with_ipv6_in_brackets_and_the_default_port() -> None:
    assert addresses("b1:9093,[::1]:9094, b2") == [("b1", 9093), ("::1", 9094), ("b2", 9092)]
