"""Which commands a controller acts on: signature, expiry by its own clock, fields, sequence, and what
it must leave alone without an answer."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import orjson
import pytest

from controller_testkit import KEY, command
from rollguard.adapters.controller import admission
from rollguard.adapters.controller.admission import Refusal, RolloutCommand
from rollguard.policy.commands.signing import signed

SCHEMAS = Path(__file__).resolve().parents[3] / "topics" / "schemas"


def test_the_testkit_builds_commands_that_satisfy_the_command_v1_schema() -> None:
    schema = json.loads((SCHEMAS / "command.v1.json").read_text())
    for c in (
        command("disable_scope", scope={"input_class": "coding"}),
        command("promote", target_weight=0.5),
    ):
        jsonschema.validate(c, schema)


def test_a_correctly_signed_command_passes_and_any_change_after_signing_does_not() -> None:
    c = command("reduce_weight", target_weight=0.05)
    assert admission.check_signature(c, KEY, accept_unsigned=False) is None
    tampered = {**c, "target_weight": 0.5}
    r = admission.check_signature(tampered, KEY, accept_unsigned=False)
    assert r == Refusal("unauthorized", r.reason) and "does not verify" in r.reason
    forged = command("reduce_weight", target_weight=0.05, key=b"someone-elses-key")
    assert admission.check_signature(forged, KEY, accept_unsigned=False) is not None


@pytest.mark.parametrize("signature", ["é" * 64, "ABCDEF" * 10 + "ABCD", "00", 7])
def test_a_signature_that_is_not_lowercase_hex_sha256_is_refused_without_raising(signature: object) -> None:
    c = {**command("rollback"), "signature": signature}
    r = admission.check_signature(c, KEY, accept_unsigned=True)
    assert r is not None and r.reason_code == "unauthorized"


def test_unsigned_commands_are_refused_unless_the_controller_accepts_them() -> None:
    c = command("rollback", key=None)
    assert c["signature"] == ""
    r = admission.check_signature(c, KEY, accept_unsigned=False)
    assert r is not None and r.reason_code == "unauthorized" and "unsigned" in r.reason
    assert admission.check_signature(c, KEY, accept_unsigned=True) is None
    # accepting unsigned commands does not mean accepting a wrong signature
    bad = {**command("rollback"), "signature": "00" * 32}
    assert admission.check_signature(bad, KEY, accept_unsigned=True) is not None


def test_expiry_is_judged_by_the_clock_passed_in() -> None:
    c = command("rollback", issued_at=1000.0, ttl_s=60.0)
    assert admission.check_expiry(c, 1059.9) is None
    r = admission.check_expiry(c, 1060.0)
    assert r is not None and r.reason_code == "expired"
    assert admission.check_expiry(command("rollback"), time.time()) is None


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("action", "explode", "action: must be one of"),
        ("scope", {"tenant": 3}, "scope: must be an object of strings"),
        ("target_weight", 1.5, "target_weight: reduce_weight needs a number in [0, 1]"),
        ("target_weight", True, "target_weight"),
        ("sequence", -1, "sequence: must be a whole number"),
        ("expected_version", 3, "expected_version: must be a string"),
        ("dry_run", "yes", "dry_run: must be true or false"),
    ],
)
def test_bad_fields_are_invalid_and_named(field: str, value: object, fragment: str) -> None:
    c = command("reduce_weight", target_weight=0.05)
    c[field] = value
    r = admission.parse_command(signed(c, KEY))
    assert isinstance(r, Refusal) and r.reason_code == "invalid" and fragment in r.reason


def test_weight_actions_need_a_target_weight_and_others_ignore_one() -> None:
    r = admission.parse_command(command("promote"))
    assert isinstance(r, Refusal) and "target_weight" in r.reason
    ok = admission.parse_command(command("rollback", target_weight=0.3))
    assert isinstance(ok, RolloutCommand) and ok.target_weight is None


def test_a_command_not_newer_than_the_last_applied_one_is_superseded() -> None:
    c = admission.parse_command(command("rollback", sequence=4))
    assert isinstance(c, RolloutCommand)
    assert admission.check_sequence(c, None) is None
    assert admission.check_sequence(c, 3) is None
    for last in (4, 9):
        r = admission.check_sequence(c, last)
        assert r is not None and r.reason_code == "superseded"


@pytest.mark.parametrize(
    "action",
    ["acknowledge_alert", "silence", "unsilence", "hold", "release", "override_verdict", "approve", "reject"],
)
def test_operator_actions_are_not_for_controllers(action: str) -> None:
    assert admission.not_for_controllers(command(action)) is not None


def test_proposals_are_not_for_controllers_until_approved() -> None:
    assert admission.not_for_controllers(command("rollback", requires_approval=True)) is not None
    assert admission.not_for_controllers(command("rollback", requires_approval=False)) is None


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (b"\xff", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"rollout_id": "r"}', "no command_id"),
        (None, "empty"),
    ],
)
def test_messages_without_a_command_id_cannot_be_answered(value: bytes | None, fragment: str) -> None:
    out = admission.decode(value)
    assert isinstance(out, str) and fragment in out


def test_acks_follow_the_ack_v1_schema() -> None:
    schema = json.loads((SCHEMAS / "ack.v1.json").read_text())
    c = command("rollback")
    for ack in (
        admission.make_ack(c, "applied", time.time(), reason="done", observed_version="2", flag="f"),
        admission.make_ack(c, "rejected", time.time(), refusal=Refusal("expired", "late")),
        admission.make_ack(c, "failed", time.time(), refusal=Refusal("error", "disk")),
        admission.make_ack(c, "dry_run_ok", time.time(), reason="would apply"),
    ):
        jsonschema.validate(orjson.loads(orjson.dumps(ack)), schema)
        assert ack["controller"] == "flagd-file"
