"""Signed commands: controllers can verify, and reject forged, tampered or expired ones."""

from __future__ import annotations

import copy

import pytest

from policy_testkit import T0, operator, policy, verdict
from rollguard.policy.commands.signing import canonical_json, resolve_signing_key, verify_command

KEY = b"controller-shared-secret"


def _command() -> dict:
    out = policy(key=KEY).on_changes([verdict("error_rate", "input_class=coding", ts=T0)])
    (cmd,) = out.commands
    return cmd


def test_a_command_verifies_with_the_shared_key() -> None:
    cmd = _command()
    assert len(cmd["signature"]) == 64
    check = verify_command(cmd, KEY, now=T0 + 10)
    assert check.ok and check.reason == "ok"


def test_a_forged_command_is_rejected() -> None:
    forged = _command()
    forged["signature"] = "0" * 64
    assert verify_command(forged, KEY).reason == "bad_signature"
    other_key = (
        policy(key=b"attacker").on_changes([verdict("error_rate", "input_class=coding", ts=T0)]).commands[0]
    )
    assert verify_command(other_key, KEY).reason == "bad_signature"


@pytest.mark.parametrize("signature", ["é" * 64, "\ud800" + "0" * 63, "0" * 63 + "\x00", "00"])
def test_any_signature_a_message_holds_is_checked_not_raised_on(signature: str) -> None:
    cmd = _command()
    cmd["signature"] = signature
    assert verify_command(cmd, KEY).reason == "bad_signature"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("scope", {}),
        ("action", "rollback"),
        ("target_weight", 0.0),
        ("expires_at", T0 + 10**6),
        ("dry_run", True),
    ],
)
def test_a_tampered_command_is_rejected(field: str, value: object) -> None:
    cmd = copy.deepcopy(_command())
    cmd[field] = value
    assert verify_command(cmd, KEY).reason == "bad_signature"


def test_an_expired_command_is_rejected_by_the_controller_clock() -> None:
    cmd = _command()
    assert verify_command(cmd, KEY, now=cmd["expires_at"] - 1).ok
    assert verify_command(cmd, KEY, now=cmd["expires_at"]).reason == "expired"


def test_without_a_key_commands_are_unsigned_and_never_verify() -> None:
    cmd = policy().on_changes([verdict("error_rate", "input_class=coding")]).commands[0]
    assert cmd["signature"] == "" and verify_command(cmd, KEY).reason == "unsigned"


def test_canonical_json_is_rfc8785_for_command_values() -> None:
    assert canonical_json({"b": 1.0, "a": [0.5, 1e-7, 1e21, None, True], "é": "x\ty"}) == (
        '{"a":[0.5,1e-7,1e+21,null,true],"b":1,"é":"x\\ty"}'.encode()
    )
    assert canonical_json({"w": 0.01, "t": 1767225700.5}) == b'{"t":1767225700.5,"w":0.01}'


def test_key_comes_from_the_environment_before_the_config_file() -> None:
    assert resolve_signing_key("from-file", "RG_KEY", {"RG_KEY": "from-env"}) == b"from-env"
    assert resolve_signing_key("from-file", "RG_KEY", {}) == b"from-file"
    assert resolve_signing_key(None, "RG_KEY", {}) is None


def test_operator_actions_must_be_signed_when_rollguard_has_a_key() -> None:
    p = policy(key=KEY)
    forged = operator("hold", key=b"someone-else")
    assert p.on_operator(forged).audit[0]["result"] == "rejected: signature check failed: bad_signature"
    assert p.status("r1")["hold"] is None
    good = operator("hold", key=KEY)
    assert p.on_operator(good).audit[0]["result"].startswith("ok")
    assert p.on_operator(good).audit[0]["result"] == "rejected: duplicate command_id"
