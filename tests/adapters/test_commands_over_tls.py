"""rollguard's commands reach a cluster over TLS: against a broker's SSL listener only, trusting the CA
``worker.kafka.ssl_cafile`` names (a throwaway one, made for this test session), the real CLIs create
the topics, publish an operator action, read a readiness record (over SASL_SSL too), send simulated
events, answer a command with an ack and deliver an alert to a real Alertmanager; with a client
certificate they pass a listener that requires one; over SASL_SSL they authenticate with SCRAM. A CA
that did not sign the broker's certificate, no client certificate where one is required, or a wrong
password stops a command within seconds with one line that says what the broker refused, not after a
30 s wait; a listener that is not up yet is still waited for. (`rollguard worker` over SASL_SSL:
tests/adapters/worker/test_worker_security.py.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import kafka_broker
from alert_testkit import replayed_alert_pair
from secured_commands import (
    BRIDGE,
    assert_action_published,
    assert_preflight_reads_a_signed_readiness,
    assert_simulate_sends_its_events,
    assert_the_bridge_delivers_an_alert,
    assert_the_flagd_controller_acks_a_command,
    operator_hold,
    operator_key_file,
)
from secured_kit import (
    PASSWORD,
    USER,
    Listener,
    Secured,
    another_ca,
    late_listener,
    mutual_tls,
    sasl_ssl,
    secured_topics,
    tls,
)
from services import Service

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def secured(secured_broker: kafka_broker.Broker, tmp_path_factory: pytest.TempPathFactory) -> Secured:
    """Contracts for every role under names of this module, created by ``rollguard topics apply``
    with no ``--bootstrap``: the config's ``worker.kafka`` is the SSL listener and the broker's CA."""
    return secured_topics(tls(secured_broker), tmp_path_factory.mktemp("tls-commands"), "tls", bridge=BRIDGE)


@pytest.fixture(scope="module")
def operator_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return operator_key_file(tmp_path_factory.mktemp("operator"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA the broker has never heard of, and a client certificate it signed."""
    return another_ca(tmp_path_factory.mktemp("other-ca"))


def test_topics_apply_creates_the_topics_over_tls_trusting_the_configured_ca(secured: Secured) -> None:
    secured.assert_topics_created()


LISTENERS: dict[str, Callable[[kafka_broker.Broker], Listener]] = {
    "over SSL trusting the configured CA": tls,
    "with a client certificate where the listener requires one": mutual_tls,
    "over SASL_SSL with SCRAM-SHA-256": lambda broker: sasl_ssl(broker, "SCRAM-SHA-256"),
}


@pytest.mark.parametrize("how", list(LISTENERS))
def test_an_operator_action_is_published_on_the_control_topic(
    how: str, secured: Secured, secured_broker: kafka_broker.Broker, operator_key: Path, tmp_path: Path
) -> None:
    over = secured.through(LISTENERS[how](secured_broker), tmp_path / "rollguard.yaml")
    assert_action_published(over, operator_hold(over, operator_key, "tls-rollout", how), how)


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_preflight_reads_a_signed_readiness_record(
    protocol: str, secured: Secured, secured_broker: kafka_broker.Broker, tmp_path: Path
) -> None:
    listener = tls(secured_broker) if protocol == "SSL" else sasl_ssl(secured_broker)
    over = secured.through(listener, tmp_path / "rollguard.yaml")
    assert_preflight_reads_a_signed_readiness(over, f"pf-{protocol.lower()}")


def test_simulate_sends_its_events_over_tls_to_the_bootstrap_given(secured: Secured) -> None:
    assert_simulate_sends_its_events(secured, "sim-tls")


def test_the_flagd_controller_acks_a_signed_command_over_tls(secured: Secured, tmp_path: Path) -> None:
    assert_the_flagd_controller_acks_a_command(secured, tmp_path)


def test_the_alertmanager_bridge_delivers_an_alert_read_over_tls(
    secured: Secured, alertmanager: Service, tmp_path: Path
) -> None:
    (tmp_path / "replay").mkdir()
    firing = replayed_alert_pair(tmp_path / "replay")[0]
    assert_the_bridge_delivers_an_alert(secured, alertmanager.url, firing, tmp_path)


def test_an_operator_action_waits_for_a_tls_listener_that_is_not_up_yet(
    secured: Secured, secured_broker: kafka_broker.Broker, operator_key: Path, tmp_path: Path
) -> None:
    """Refused connections are a broker still starting, not a refusal of the TLS settings: the command
    waits for the listener (kafka-python's bootstrap wait) and then publishes."""
    with late_listener(secured.listener.bootstrap, delay_s=1.5) as address:
        over = secured.through(replace(secured.listener, bootstrap=address), tmp_path / "late.yaml")
        t0 = time.monotonic()
        done = operator_hold(over, operator_key, "tls-rollout", "once the listener is up")
        waited = time.monotonic() - t0
    assert waited >= 1.5, done.stderr
    assert_action_published(secured, done, "once the listener is up")  # read over the listener itself


# (a listener with a refused setting, the password, what the one line must say)
REFUSED: dict[str, tuple[Callable[[kafka_broker.Broker, Path], Listener], str | None, str]] = {
    "trusting a CA that did not sign the broker's certificate": (
        lambda broker, other: tls(broker, ca_file=other / "ca.pem"),
        None,
        "is not trusted over SSL: [SSL: CERTIFICATE_VERIFY_FAILED]",
    ),
    "without the client certificate the listener requires": (
        lambda broker, _: replace(mutual_tls(broker), client_cert=None),
        None,
        "refused the TLS handshake over SSL: [SSL: ",
    ),
    "with a client certificate of another CA": (
        lambda broker, other: mutual_tls(broker, client_cert=(other / "client.crt", other / "client.key")),
        None,
        "refused the TLS handshake over SSL: [SSL: ",
    ),
    "over SASL_SSL with a wrong password": (
        lambda broker, _: sasl_ssl(broker),
        "wrong",
        f"refused the credentials over SASL_SSL as {USER} (SCRAM-SHA-512): ",
    ),
}


@pytest.mark.parametrize("command", ["operator hold", "topics apply"])
@pytest.mark.parametrize("refused", list(REFUSED))
def test_a_refused_certificate_or_password_stops_a_command_within_seconds_with_one_line(
    refused: str,
    command: str,
    secured: Secured,
    secured_broker: kafka_broker.Broker,
    operator_key: Path,
    other_ca: Path,
    tmp_path: Path,
) -> None:
    listener_of, password, says = REFUSED[refused]
    listener = listener_of(secured_broker, other_ca)
    over = secured.through(listener, tmp_path / "refused.yaml")
    argv: list[Any] = (
        ["operator", "hold", "tls-rollout", "--key-file", operator_key, "--topics-dir", secured.contracts]
        if command == "operator hold"
        else ["topics", "apply", "--dir", secured.contracts]
    )
    t0 = time.monotonic()
    done = over.run(*map(str, argv), "--config", str(over.config), password=password or PASSWORD)
    elapsed = time.monotonic() - t0
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()  # one line, nothing else
    start = "rollguard: not delivered: " if command == "operator hold" else "topics apply: failed against "
    assert line.startswith(start), line
    assert f"{listener.bootstrap} {says}" in line, line
    assert elapsed < 15, f"{elapsed:.1f} s: {line}"  # kafka-python alone gives up after 30 s
