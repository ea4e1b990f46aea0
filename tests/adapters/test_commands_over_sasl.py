"""Every rollguard command that talks to Kafka reaches a secured cluster: against a broker's SASL/PLAIN
listener only, with the password taken from the environment as ``worker.kafka`` says, the real CLIs
(``python -m rollguard.cli …``) create the topics, publish an operator action, answer a command with an
ack, read a readiness record, send simulated events and deliver an alert to a real Alertmanager. A
wrong password stops each command within seconds with one line saying the broker refused it (not after
kafka-python's 30 s bootstrap wait); a missing one names the file and the field."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import kafka_broker
from alert_testkit import replayed_alert_pair
from controller_testkit import KEY, canary_flags, write_flags
from rollguard.cli import main
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
from secured_kit import PASSWORD_ENV, USER, Secured, sasl_plaintext, secured_topics, write_config
from services import Service

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


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
    key_file = operator_key_file(tmp_path)
    assert_action_published(secured, operator_hold(secured, key_file, "op-rollout", "over SASL"), "over SASL")


def test_the_flagd_controller_acks_a_signed_command_over_sasl(secured: Secured, tmp_path: Path) -> None:
    assert_the_flagd_controller_acks_a_command(secured, tmp_path)


def test_preflight_reads_a_signed_readiness_record_over_sasl(secured: Secured) -> None:
    assert_preflight_reads_a_signed_readiness(secured, "pf-rollout")


def test_simulate_sends_its_events_to_the_bootstrap_given_with_the_configs_security(secured: Secured) -> None:
    assert_simulate_sends_its_events(secured, "sim-rollout")


@pytest.fixture(scope="module")
def firing_alert(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return replayed_alert_pair(Path(tmp_path_factory.mktemp("replay")))[0]


def test_the_alertmanager_bridge_delivers_an_alert_read_over_sasl(
    secured: Secured, alertmanager: Service, firing_alert: dict[str, Any], tmp_path: Path
) -> None:
    assert_the_bridge_delivers_an_alert(secured, alertmanager.url, firing_alert, tmp_path)


# command -> (its arguments besides --config, its exit code, the start of its last line)
WRONG_PASSWORD_STOPS: dict[str, tuple[str, int, str]] = {
    "operator hold": ("operator hold op-rollout --key-file {operator_key} --topics-dir {contracts}",
                      1, "rollguard: not delivered: "),
    "topics apply": ("topics apply --dir {contracts}", 1, "topics apply: failed against "),
    "preflight": ("preflight pf-rollout --topics-dir {contracts}", 2, "rollguard: preflight failed: "),
    "simulate": ("simulate --topics-dir {contracts} --duration 10 --speed 0",
                 1, "rollguard: simulate stopped: "),
    "controller flagd": ("controller flagd --flags {flags} --key-file {command_key} --topics-dir {contracts} "
                         "--state-dir {state}", 1, "rollguard: controller stopped: "),
    "bridge alertmanager": ("bridge alertmanager --url http://127.0.0.1:9 --topics-dir {contracts}",
                            1, "rollguard: bridge stopped: "),
}  # fmt: skip


@pytest.mark.parametrize("command", list(WRONG_PASSWORD_STOPS))
def test_a_wrong_password_stops_each_command_within_seconds_with_one_line(
    command: str, secured: Secured, tmp_path: Path
) -> None:
    argv, exit_code, start = WRONG_PASSWORD_STOPS[command]
    command_key = tmp_path / "command.key"
    command_key.write_bytes(KEY + b"\n")
    paths = {
        "operator_key": operator_key_file(tmp_path) if command == "operator hold" else None,
        "command_key": command_key,
        "flags": write_flags(tmp_path / "flags.json", canary_flags()),
        "contracts": secured.contracts,
        "state": tmp_path / "state",
    }
    t0 = time.monotonic()
    done = secured.run(*argv.format(**paths).split(), "--config", str(secured.config), password="wrong")
    elapsed = time.monotonic() - t0
    assert done.returncode == exit_code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    *before, last = done.stderr.strip().splitlines()
    assert not before or command in ("controller flagd", "bridge alertmanager"), done.stderr  # services log
    assert last.startswith(start), last
    refused = f"{secured.listener.bootstrap} refused the credentials over SASL_PLAINTEXT as {USER} (PLAIN): "
    assert refused in last, last
    assert elapsed < 15, f"{elapsed:.1f} s: {last}"  # kafka-python alone gives up after 30 s


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
