"""Every rollguard command that talks to Kafka reaches a secured cluster: against a broker's SASL/PLAIN
listener only, with the password taken from the environment as ``worker.kafka`` says, the real CLIs
(``python -m rollguard.cli …``) create the topics, publish an operator action, answer a command with an
ack, read a readiness record, send simulated events and deliver an alert to a real Alertmanager. A
wrong password stops a command with one line, not a hang; a missing one names the file and the field."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import kafka_broker
from alert_testkit import replayed_alert_pair
from controller_testkit import KEY, ROLLOUT, canary_flags, command, write_flags
from rollguard.cli import main
from rollguard.policy.commands.signing import signed
from secured_kit import (
    PASSWORD_ENV,
    SIGNING_KEY,
    USER,
    Secured,
    cli_env,
    sasl_plaintext,
    secured_topics,
    write_config,
)
from services import Service, am_alerts, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

BRIDGE = {"alertmanager": {"repost_interval_s": 1, "retry_initial_s": 0.1, "retry_max_s": 1}}


@pytest.fixture(scope="module")
def secured(sasl_broker: kafka_broker.Broker, tmp_path_factory: pytest.TempPathFactory) -> Secured:
    """Contracts for every role under names of this module, created by ``rollguard topics apply``
    with no ``--bootstrap``: the config's ``worker.kafka`` is the SASL listener."""
    return secured_topics(
        sasl_plaintext(sasl_broker), tmp_path_factory.mktemp("sasl-commands"), "sasl", bridge=BRIDGE
    )


def test_topics_apply_creates_the_topics_through_the_sasl_listener_named_in_the_config(
    secured: Secured,
) -> None:
    secured.assert_topics_created()


def test_an_operator_action_is_published_on_the_control_topic_over_sasl(
    secured: Secured, tmp_path: Path
) -> None:
    key_file = tmp_path / "alice.key"
    made = secured.run(
        "operator", "keygen", "--operator", "alice", "--key-id", "alice-1", "--out", str(key_file)
    )
    assert made.returncode == 0, made.stderr
    done = secured.run(
        "operator", "hold", "op-rollout", "--config", str(secured.config),
        "--key-file", str(key_file), "--topics-dir", str(secured.contracts), "--comment", "over SASL",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    command_id = done.stdout.split(": ", 1)[1].split()[0]  # "hold ROLLOUT by alice (alice-1): ID published…"
    assert command_id.startswith("op-"), done.stdout
    assert f"published to {secured.names['control']}[" in done.stdout
    (action,) = [
        r for r in secured.read("control", until=lambda r: r.get("command_id") == command_id)
        if r.get("command_id") == command_id
    ]  # fmt: skip
    assert (action["action"], action["issued_by"], action["key_id"]) == ("hold", "alice", "alice-1")
    assert action["operator"]["comment"] == "over SASL" and action["signature"]


def test_the_flagd_controller_acks_a_signed_command_over_sasl(secured: Secured, tmp_path: Path) -> None:
    flags = write_flags(tmp_path / "flags.json", canary_flags())
    key_file = tmp_path / "command.key"
    key_file.write_bytes(KEY + b"\n")
    log_path = tmp_path / "controller.log"
    argv = [
        sys.executable, "-m", "rollguard.cli", "controller", "flagd", "--config", str(secured.config),
        "--flags", str(flags), "--key-file", str(key_file), "--topics-dir", str(secured.contracts),
        "--state-dir", str(tmp_path / "state"), "--group-id", f"sasl-controller-{uuid.uuid4().hex[:8]}",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=cli_env())
    try:
        rollback = command("rollback")
        secured.publish("control", ROLLOUT, rollback)
        acks = secured.read("acks", timeout_s=60, until=lambda r: r["command_id"] == rollback["command_id"])
        assert proc.poll() is None, log_path.read_text()
        (ack,) = [a for a in acks if a["command_id"] == rollback["command_id"]]
        assert ack["status"] == "applied", ack
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()


def test_preflight_reads_a_signed_readiness_record_over_sasl(secured: Secured) -> None:
    checks = [
        {"check": "revert", "mode": "block", "state": "met", "evidence": "dry-run answered", "to_satisfy": ""}
    ]
    record = {"kind": "readiness", "rollout_id": "pf-rollout", "sequence": 3, "ready": True, "checks": checks,
              "blocking": [], "warnings": []}  # fmt: skip
    secured.publish("control", "pf-rollout", signed(record, SIGNING_KEY.encode()))
    done = secured.run(
        "preflight", "pf-rollout", "--config", str(secured.config), "--topics-dir", str(secured.contracts)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0].startswith("pf-rollout: READY  (readiness #3, from the control topic")
    assert "signature: verified" in done.stdout


def test_simulate_sends_its_events_to_the_bootstrap_given_with_the_configs_security(secured: Secured) -> None:
    done = secured.run(
        "simulate", "--bootstrap", secured.listener.bootstrap, "--config", str(secured.config),
        "--topics-dir", str(secured.contracts), "--duration", "60", "--rate", "5", "--speed", "0",
        "--rollout-id", "sim-rollout",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sent = int(done.stdout.split(" events -> ")[0].rsplit(" ", 1)[1])
    assert sent > 100
    events = [e for e in secured.read("events") if e["rollout_id"] == "sim-rollout"]
    assert len(events) == sent


@pytest.fixture(scope="module")
def firing_alert(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return replayed_alert_pair(Path(tmp_path_factory.mktemp("replay")))[0]


def test_the_alertmanager_bridge_delivers_an_alert_read_over_sasl(
    secured: Secured, alertmanager: Service, firing_alert: dict[str, Any], tmp_path: Path
) -> None:
    log_path = tmp_path / "bridge.log"
    argv = [
        sys.executable, "-m", "rollguard.cli", "bridge", "alertmanager", "--config", str(secured.config),
        "--url", alertmanager.url, "--topics-dir", str(secured.contracts),
        "--group-id", f"sasl-bridge-{uuid.uuid4().hex[:8]}",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=cli_env())
    try:
        wait_until(
            lambda: "bridge: assigned" in log_path.read_text() or proc.poll() is not None,
            60, what="the bridge consuming",
        )  # fmt: skip
        assert proc.poll() is None, log_path.read_text()
        secured.publish(f"alerts.{firing_alert['severity']}", firing_alert["rollout_id"], firing_alert)
        rollout = firing_alert["rollout_id"]
        (alert,) = wait_until(
            lambda: am_alerts(alertmanager.url, filter=f'rollout="{rollout}"'), 60, what="the alert"
        )
        assert alert["annotations"]["alert_id"] == firing_alert["alert_id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()


def test_a_wrong_password_stops_topics_apply_and_the_bridge_with_one_line_not_a_hang(
    secured: Secured,
) -> None:
    commands = {
        "topics apply": ["topics", "apply", "--dir", str(secured.contracts)],
        "bridge": [
            "bridge",
            "alertmanager",
            "--url",
            "http://127.0.0.1:9",
            "--topics-dir",
            str(secured.contracts),
        ],
    }
    expected = {"topics apply": "topics apply: failed against ", "bridge": "rollguard: bridge stopped: "}
    t0 = time.monotonic()
    procs = {  # at once: each waits out kafka-python's 30 s request timeout before it gives up
        name: subprocess.Popen(
            [sys.executable, "-m", "rollguard.cli", *argv, "--config", str(secured.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env("wrong"),
        )
        for name, argv in commands.items()
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 1, (name, out, err)
        assert "Traceback" not in err, err
        last = err.strip().splitlines()[-1]  # before it, only kafka-python's own warnings (the bridge logs)
        assert last.startswith(expected[name]) and secured.listener.bootstrap in last, last
        assert name != "topics apply" or err.strip() == last, err  # it logs nothing else
        assert f"over SASL_PLAINTEXT as {USER}" in last, last  # not just "unable to bootstrap"
    assert time.monotonic() - t0 < 60


def test_a_missing_password_names_the_config_file_and_the_field_and_stops_each_command_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = kafka_broker.Broker("127.0.0.1:1", tmp_path, 0.0, sasl_bootstrap="127.0.0.1:1")
    config = str(write_config(tmp_path / "c.yaml", sasl_plaintext(broker)))
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.delenv("ROLLGUARD_BOOTSTRAP", raising=False)
    key_file, operator_key = tmp_path / "k.key", tmp_path / "op.key"
    key_file.write_text("k")
    assert main(["operator", "keygen", "--operator", "o", "--key-id", "o-1", "--out", str(operator_key)]) == 0
    capsys.readouterr()
    for argv in (
        ["operator", "hold", "r", "--config", config, "--key-file", str(operator_key)],
        ["topics", "apply", "--config", config],
        ["simulate", "--config", config],
        ["preflight", "r", "--config", config],
        ["controller", "flagd", "--config", config, "--flags", "f.json", "--key-file", str(key_file)],
        ["bridge", "alertmanager", "--config", config, "--url", "http://127.0.0.1:9"],
    ):
        assert main(argv) == (1 if argv[0] == "topics" else 2), argv  # topics apply's 2: "topics differ"
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == (
            f"rollguard: {config}: worker.kafka: SASL_PLAINTEXT needs a password in the environment "
            f"variable {PASSWORD_ENV}"
        ), argv
