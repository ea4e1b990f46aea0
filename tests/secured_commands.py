"""What each rollguard command must do over a secured listener, one function each, so that the SASL and
the TLS test modules check the same things: the real CLI (``python -m rollguard.cli …``) is run with the
config of a :class:`~secured_kit.Secured` and its outcome is read back over that listener."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from controller_testkit import KEY, ROLLOUT, canary_flags, command, write_flags
from rollguard.policy.commands.signing import signed
from secured_kit import SIGNING_KEY, Secured, cli_env
from services import am_alerts, wait_until

#: ``bridge`` settings of a secured module's config: a bridge that re-posts and retries quickly.
BRIDGE = {"alertmanager": {"repost_interval_s": 1, "retry_initial_s": 0.1, "retry_max_s": 1}}


def operator_key_file(directory: Path) -> Path:
    """An operator key of alice (key id alice-1), made by ``rollguard operator keygen``."""
    key_file = directory / "alice.key"
    made = subprocess.run(
        [sys.executable, "-m", "rollguard.cli", "operator", "keygen", "--operator", "alice",
         "--key-id", "alice-1", "--out", str(key_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return key_file


def operator_hold(
    secured: Secured, key_file: Path, rollout: str, comment: str
) -> subprocess.CompletedProcess[str]:
    return secured.run(
        "operator", "hold", rollout, "--config", str(secured.config), "--key-file", str(key_file),
        "--topics-dir", str(secured.contracts), "--comment", comment,
    )  # fmt: skip


def assert_action_published(secured: Secured, done: subprocess.CompletedProcess[str], comment: str) -> None:
    """``operator hold`` said it published, and the signed action is on the control topic."""
    assert done.returncode == 0, done.stderr
    command_id = done.stdout.split(": ", 1)[1].split()[0]  # "hold ROLLOUT by alice (alice-1): ID published…"
    assert command_id.startswith("op-"), done.stdout
    assert f"published to {secured.names['control']}[" in done.stdout
    (action,) = [
        r for r in secured.read("control", until=lambda r: r.get("command_id") == command_id)
        if r.get("command_id") == command_id
    ]  # fmt: skip
    assert (action["action"], action["issued_by"], action["key_id"]) == ("hold", "alice", "alice-1")
    assert action["operator"]["comment"] == comment and action["signature"]


def assert_preflight_reads_a_signed_readiness(secured: Secured, rollout: str) -> None:
    """A signed readiness record on the control topic: ``rollguard preflight`` reads it and verifies it."""
    checks = [
        {"check": "revert", "mode": "block", "state": "met", "evidence": "dry-run answered", "to_satisfy": ""}
    ]
    record = {"kind": "readiness", "rollout_id": rollout, "sequence": 3, "ready": True, "checks": checks,
              "blocking": [], "warnings": []}  # fmt: skip
    secured.publish("control", rollout, signed(record, SIGNING_KEY.encode()))
    done = secured.run(
        "preflight", rollout, "--config", str(secured.config), "--topics-dir", str(secured.contracts)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0].startswith(f"{rollout}: READY  (readiness #3, from the control topic")
    assert "signature: verified" in done.stdout


def assert_simulate_sends_its_events(secured: Secured, rollout: str) -> None:
    """``rollguard simulate --bootstrap ADDRESS --config FILE`` sends over the config's security: every
    event it counted is on the events topic."""
    done = secured.run(
        "simulate", "--bootstrap", secured.listener.bootstrap, "--config", str(secured.config),
        "--topics-dir", str(secured.contracts), "--duration", "60", "--rate", "5", "--speed", "0",
        "--rollout-id", rollout,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sent = int(done.stdout.split(" events -> ")[0].rsplit(" ", 1)[1])
    assert sent > 100
    events = [e for e in secured.read("events") if e["rollout_id"] == rollout]
    assert len(events) == sent


def _service(secured: Secured, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "rollguard.cli", *argv, "--config", str(secured.config),
             "--topics-dir", str(secured.contracts)],
            stdout=log, stderr=subprocess.STDOUT, env=cli_env(),
        )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes], log_path: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log_path.read_text()


def assert_the_flagd_controller_acks_a_command(secured: Secured, work: Path) -> None:
    """``rollguard controller flagd`` applies a signed rollback from the control topic and acks it."""
    flags = write_flags(work / "flags.json", canary_flags())
    key_file = work / "command.key"
    key_file.write_bytes(KEY + b"\n")
    log_path = work / "controller.log"
    proc = _service(
        secured,
        ["controller", "flagd", "--flags", str(flags), "--key-file", str(key_file),
         "--state-dir", str(work / "state"), "--group-id", f"secured-controller-{uuid.uuid4().hex[:8]}"],
        log_path,
    )  # fmt: skip
    try:
        rollback = command("rollback")
        secured.publish("control", ROLLOUT, rollback)
        acks = secured.read("acks", timeout_s=60, until=lambda r: r["command_id"] == rollback["command_id"])
        assert proc.poll() is None, log_path.read_text()
        (ack,) = [a for a in acks if a["command_id"] == rollback["command_id"]]
        assert ack["status"] == "applied", ack
    finally:
        _stop(proc, log_path)


def assert_the_bridge_delivers_an_alert(
    secured: Secured, alertmanager_url: str, firing_alert: dict[str, Any], work: Path
) -> None:
    """``rollguard bridge alertmanager`` reads an alert from its topic and posts it to Alertmanager."""
    log_path = work / "bridge.log"
    proc = _service(
        secured,
        ["bridge", "alertmanager", "--url", alertmanager_url,
         "--group-id", f"secured-bridge-{uuid.uuid4().hex[:8]}"],
        log_path,
    )  # fmt: skip
    try:
        wait_until(
            lambda: "bridge: assigned" in log_path.read_text() or proc.poll() is not None,
            60, what="the bridge consuming",
        )  # fmt: skip
        assert proc.poll() is None, log_path.read_text()
        secured.publish(f"alerts.{firing_alert['severity']}", firing_alert["rollout_id"], firing_alert)
        rollout = firing_alert["rollout_id"]
        (alert,) = wait_until(
            lambda: am_alerts(alertmanager_url, filter=f'rollout="{rollout}"'), 60, what="the alert"
        )
        assert alert["annotations"]["alert_id"] == firing_alert["alert_id"]
    finally:
        _stop(proc, log_path)
