"""Operators sign their actions with keys of their own: "who acted" is the holder of a listed key, never a
name the action claims; without listed keys, operator actions are checked as before."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from policy_testkit import T0, operator, policy, verdict
from rollguard.policy.operators import public_bytes, sign_action

ALICE = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
MALLORY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
CONFIG = f"""
commands: {{approval: required, approval_timeout_s: 600}}
operators:
  keys:
    alice-1: {{operator: alice, public_key: {base64.b64encode(public_bytes(ALICE)).decode()}}}
"""


def signed_by(key: Ed25519PrivateKey, action: str, *, key_id: str = "alice-1", by: str = "alice",
              issued_at: float = T0 + 60, **params: object) -> dict[str, object]:  # fmt: skip
    body = operator(action, by=by, issued_at=issued_at, **params)
    body.pop("signature")
    return sign_action({**body, "key_id": key_id}, key)


def _proposal(p: object) -> str:
    out = p.on_changes([verdict("error_rate", "input_class=coding", ts=T0)])  # type: ignore[attr-defined]
    return str(out.commands[0]["command_id"])


def test_an_approval_signed_by_a_listed_key_is_applied_and_audited_with_its_key() -> None:
    p = policy(CONFIG)
    proposal = _proposal(p)
    out = p.on_operator(signed_by(ALICE, "approve", command_id=proposal))
    (cmd,) = out.commands
    assert cmd["approved_by"] == "alice" and cmd["proposal_id"] == proposal
    (audit,) = [a for a in out.audit if a["type"] == "operator"]
    assert (audit["by"], audit["key_id"], audit["result"][:3]) == ("alice", "alice-1", "ok:")


def test_forged_unsigned_or_expired_actions_are_refused_and_audited() -> None:
    p = policy(CONFIG)
    proposal = _proposal(p)
    cases = {
        "unknown_key": signed_by(MALLORY, "approve", key_id="mallory-1", by="mallory", command_id=proposal),
        "bad_signature": signed_by(MALLORY, "approve", command_id=proposal),  # claims alice's key id
        "not_the_key_holder": signed_by(ALICE, "approve", by="bob", command_id=proposal),
        "unsigned": {**signed_by(ALICE, "approve", command_id=proposal), "signature": ""},
        "expired": signed_by(ALICE, "approve", issued_at=T0 - 7200, command_id=proposal),
    }
    for why, action in cases.items():
        out = p.on_operator(action)
        assert out.commands == []
        assert out.audit[0]["result"] == f"rejected: signature check failed: {why}", why
    assert p.status("r1")["commands"][0]["status"] == "proposed"  # still waiting for a real operator


def test_without_listed_keys_operator_actions_are_accepted_as_before() -> None:
    p = policy("commands: {approval: required}")
    proposal = _proposal(p)
    out = p.on_operator(operator("approve", by="bob", command_id=proposal, issued_at=T0 + 60))
    assert out.commands[0]["approved_by"] == "bob" and "key_id" not in out.audit[0]


def test_status_says_until_when_a_proposal_waits() -> None:
    p = policy(CONFIG)
    _proposal(p)
    (cmd,) = p.status("r1")["commands"]
    assert cmd["status"] == "proposed" and cmd["approval_expires_at"] == T0 + 600
