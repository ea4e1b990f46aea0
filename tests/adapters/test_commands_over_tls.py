"""rollguard's commands reach a cluster over TLS: against a broker's SSL listener only, trusting the CA
``worker.kafka.ssl_cafile`` names (a throwaway one, made for this test session), the real CLIs create
the topics and publish an operator action; with a client certificate they pass a listener that requires
one; over SASL_SSL they authenticate with SCRAM-SHA-256. A CA that did not sign the broker's certificate,
or no client certificate where one is required, stops a command with one line, not a hang or a
traceback. (`rollguard worker` over SASL_SSL: tests/adapters/worker/test_worker_security.py.)"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

import kafka_broker
from secured_kit import (
    Listener,
    Secured,
    another_ca,
    cli_env,
    mutual_tls,
    sasl_ssl,
    secured_topics,
    tls,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def secured(secured_broker: kafka_broker.Broker, tmp_path_factory: pytest.TempPathFactory) -> Secured:
    """Contracts for every role under names of this module, created by ``rollguard topics apply``
    with no ``--bootstrap``: the config's ``worker.kafka`` is the SSL listener and the broker's CA."""
    return secured_topics(tls(secured_broker), tmp_path_factory.mktemp("tls-commands"), "tls")


@pytest.fixture(scope="module")
def operator_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key_file = tmp_path_factory.mktemp("operator") / "alice.key"
    made = subprocess.run(
        [sys.executable, "-m", "rollguard.cli", "operator", "keygen", "--operator", "alice",
         "--key-id", "alice-1", "--out", str(key_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return key_file


def _hold(secured: Secured, config: Path, key_file: Path, comment: str) -> subprocess.CompletedProcess[str]:
    return secured.run(
        "operator", "hold", "tls-rollout", "--config", str(config), "--key-file", str(key_file),
        "--topics-dir", str(secured.contracts), "--comment", comment,
    )  # fmt: skip


def _assert_action_published(
    secured: Secured, done: subprocess.CompletedProcess[str], listener: Listener, comment: str
) -> None:
    """``operator hold`` said it published, and the action is on the control topic (read over
    ``listener``)."""
    assert done.returncode == 0, done.stderr
    command_id = done.stdout.split(": ", 1)[1].split()[0]  # "hold ROLLOUT by alice (alice-1): ID published…"
    assert command_id.startswith("op-"), done.stdout
    assert f"published to {secured.names['control']}[" in done.stdout
    reader = Secured(listener, secured.config, secured.contracts, secured.names, secured.applied)
    (action,) = [
        r for r in reader.read("control", until=lambda r: r.get("command_id") == command_id)
        if r.get("command_id") == command_id
    ]  # fmt: skip
    assert (action["action"], action["issued_by"], action["key_id"]) == ("hold", "alice", "alice-1")
    assert action["operator"]["comment"] == comment and action["signature"]


def test_topics_apply_creates_the_topics_over_tls_trusting_the_configured_ca(secured: Secured) -> None:
    secured.assert_topics_created()


def test_an_operator_action_is_published_on_the_control_topic_over_tls(
    secured: Secured, operator_key: Path
) -> None:
    done = _hold(secured, secured.config, operator_key, "over TLS")
    _assert_action_published(secured, done, secured.listener, "over TLS")


def test_an_operator_action_passes_a_listener_that_requires_a_client_certificate(
    secured: Secured, secured_broker: kafka_broker.Broker, operator_key: Path, tmp_path: Path
) -> None:
    listener = mutual_tls(secured_broker)
    config = write_config(tmp_path / "mtls.yaml", listener)
    done = _hold(secured, config, operator_key, "with a client certificate")
    _assert_action_published(secured, done, listener, "with a client certificate")


def test_an_operator_action_is_published_over_sasl_ssl_with_scram_sha_256(
    secured: Secured, secured_broker: kafka_broker.Broker, operator_key: Path, tmp_path: Path
) -> None:
    listener = sasl_ssl(secured_broker, "SCRAM-SHA-256")
    config = write_config(tmp_path / "scram.yaml", listener)
    done = _hold(secured, config, operator_key, "over SASL_SSL")
    _assert_action_published(secured, done, listener, "over SASL_SSL")


def test_a_wrong_ca_or_a_missing_client_certificate_stops_each_command_with_one_line_not_a_hang(
    secured: Secured, secured_broker: kafka_broker.Broker, operator_key: Path, tmp_path: Path
) -> None:
    other = another_ca(tmp_path / "other-ca")
    wrong_ca = write_config(tmp_path / "wrong-ca.yaml", tls(secured_broker, ca_file=other / "ca.pem"))
    no_cert = write_config(tmp_path / "no-cert.yaml", replace(mutual_tls(secured_broker), client_cert=None))
    foreign_cert = write_config(
        tmp_path / "foreign-cert.yaml",
        mutual_tls(secured_broker, client_cert=(other / "client.crt", other / "client.key")),
    )
    topics_apply = ["topics", "apply", "--dir", str(secured.contracts)]
    hold = ["operator", "hold", "tls-rollout", "--key-file", str(operator_key)]
    hold += ["--topics-dir", str(secured.contracts)]
    ssl_at, mtls_at = secured_broker.ssl_bootstrap, secured_broker.mtls_bootstrap
    not_delivered = "rollguard: not delivered: "
    cases = [  # (argv, the start of its one line, the listener it tried)
        ([*topics_apply, "--config", str(wrong_ca)], "topics apply: failed against ", ssl_at),
        ([*hold, "--config", str(wrong_ca)], not_delivered, ssl_at),
        ([*hold, "--config", str(no_cert)], not_delivered, mtls_at),
        ([*hold, "--config", str(foreign_cert)], not_delivered, mtls_at),
    ]
    t0 = time.monotonic()
    procs = [  # at once: each waits out kafka-python's bootstrap timeout before it gives up
        subprocess.Popen(
            [sys.executable, "-m", "rollguard.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )
        for argv, _, _ in cases
    ]
    for (argv, expected, bootstrap), proc in zip(cases, procs, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, (argv, out, err)
        assert "Traceback" not in err, err
        assert err.strip() == err.strip().splitlines()[-1], (argv, err)  # one line, nothing else
        assert err.startswith(expected) and str(bootstrap) in err, (argv, err)
        assert "over SSL" in err, (argv, err)  # not just "unable to bootstrap"
    assert time.monotonic() - t0 < 90
