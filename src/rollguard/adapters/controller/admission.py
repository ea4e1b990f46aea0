"""Which commands a controller acts on, and what it answers otherwise. Pure: the clock comes in as ``now``.

The order of the checks is the safety argument:

1. Messages that are not for a controller get no ack at all: readiness records (``kind: readiness``,
   rollguard's pre-flight checklist for people and ramp tools; no command), operator actions
   (acknowledge_alert, silence, hold, ... — rollguard consumes those) and proposals
   (``requires_approval: true``: an operator's ``approve`` issues them again as a new command; acking
   a proposal would read as if it had been acted on).
2. The signature, before anything else is believed: a forged or tampered command is ``unauthorized``,
   an unsigned one too unless the controller runs with ``--accept-unsigned``.
3. (The handler then looks the command id up: a command already answered gets its original ack again,
   even if it has expired since, so a redelivery never turns an ``applied`` into a reject.)
4. The fields (``invalid``), expiry by the controller's own clock (``expired``), the per-rollout
   sequence (``superseded``: not newer than a command already applied).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import orjson

from rollguard.domain.events import excerpt
from rollguard.policy.commands.signing import verify_command
from rollguard.policy.policy import OPERATOR_ACTIONS

CONTROLLER_NAME: Final = "flagd-file"
ROLLOUT_ACTIONS: Final = ("disable_scope", "reduce_weight", "rollback", "pause", "promote")
WEIGHTED_ACTIONS: Final = frozenset({"reduce_weight", "promote"})
_HEX_SHA256: Final = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a command is rejected: ``reason_code`` from ack v1 and a sentence for people."""

    reason_code: str  # unauthorized | expired | superseded | invalid | conflict
    reason: str


@dataclass(frozen=True, slots=True)
class RolloutCommand:
    """The fields of a rollout command a controller acts on (validated)."""

    command_id: str
    rollout_id: str
    action: str
    scope: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    target_weight: float | None = None
    expected_version: str | None = None
    sequence: int | None = None
    dry_run: bool = False


def is_readiness(record: Mapping[str, Any]) -> bool:
    """A readiness record (the control topic's other record type): read by people and ramp tools."""
    return record.get("kind") == "readiness"


def decode(value: bytes | None) -> dict[str, Any] | str:
    """The command object (or a readiness record: see :func:`is_readiness`), or why the message cannot be
    a command (it then gets no ack: no id to ack)."""
    if value is None:
        return "empty message"
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return f"not JSON ({exc})"
    if not isinstance(record, dict):
        return f"not a JSON object: {excerpt(record)}"
    if is_readiness(record):
        return record
    for name in ("command_id", "rollout_id"):
        if not isinstance(record.get(name), str) or not record[name]:
            return f"no {name}"
    return record


def not_for_controllers(record: Mapping[str, Any]) -> str | None:
    """Why a controller must ignore this message without an ack, or ``None`` when it is for one."""
    action = record.get("action")
    if action in OPERATOR_ACTIONS:
        return f"operator action {action!r} (for rollguard)"
    if record.get("requires_approval") is True:
        return "proposal awaiting approval"
    return None


def check_signature(record: Mapping[str, Any], key: bytes, *, accept_unsigned: bool) -> Refusal | None:
    """A forged or tampered command is refused; an unsigned one unless ``accept_unsigned``."""
    sig = record.get("signature")
    if isinstance(sig, str) and sig == "" and accept_unsigned:
        return None
    if isinstance(sig, str) and sig and not _HEX_SHA256.fullmatch(sig):
        # checked here: verify_command's compare_digest raises on non-ASCII text (a poison message)
        return Refusal("unauthorized", f"signature is not a hex HMAC-SHA256: {excerpt(sig)}")
    verdict = verify_command(record, key)
    if verdict.ok:
        return None
    if verdict.reason == "unsigned":
        return Refusal("unauthorized", "unsigned command (the controller requires signed commands)")
    if verdict.reason == "bad_signature":
        return Refusal(
            "unauthorized", "signature does not verify (forged, tampered or signed with another key)"
        )
    return Refusal("invalid", "command cannot be canonicalised for its signature")


def check_expiry(record: Mapping[str, Any], now: float) -> Refusal | None:
    """Expired by the controller's clock: ``now >= expires_at``."""
    expires = record.get("expires_at")
    if isinstance(expires, bool) or not isinstance(expires, int | float) or not math.isfinite(expires):
        return Refusal("invalid", f"expires_at must be a number, got {excerpt(expires)}")
    if now >= expires:
        return Refusal(
            "expired", f"expired at {expires:.3f}, {now - expires:.3f} s before the controller got it"
        )
    return None


def parse_command(record: Mapping[str, Any]) -> RolloutCommand | Refusal:
    """The rollout command in ``record``, or an ``invalid`` refusal naming the field."""

    def bad(name: str, what: str) -> Refusal:
        return Refusal("invalid", f"{name}: {what}, got {excerpt(record.get(name))}")

    action = record.get("action")
    if action not in ROLLOUT_ACTIONS:
        return bad("action", f"must be one of {', '.join(ROLLOUT_ACTIONS)}")
    scope = record.get("scope", {})
    if not isinstance(scope, dict) or not all(isinstance(v, str) for v in scope.values()):
        return bad("scope", "must be an object of strings")
    weight = record.get("target_weight")
    if action in WEIGHTED_ACTIONS:
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
            return bad("target_weight", f"{action} needs a number in [0, 1]")
        weight = float(weight)
    else:
        weight = None
    expected = record.get("expected_version")
    if expected is not None and not isinstance(expected, str):
        return bad("expected_version", "must be a string")
    sequence = record.get("sequence")
    if sequence is not None and (isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0):
        return bad("sequence", "must be a whole number >= 0")
    dry_run = record.get("dry_run", False)
    if not isinstance(dry_run, bool):
        return bad("dry_run", "must be true or false")
    return RolloutCommand(
        command_id=str(record["command_id"]),
        rollout_id=str(record["rollout_id"]),
        action=str(action),
        scope=MappingProxyType(dict(scope)),
        target_weight=weight,
        expected_version=expected,
        sequence=sequence,
        dry_run=dry_run,
    )


def check_sequence(command: RolloutCommand, last_applied: int | None) -> Refusal | None:
    """``superseded`` when not newer than the rollout's last applied command (commands without one pass)."""
    if command.sequence is None or last_applied is None or command.sequence > last_applied:
        return None
    return Refusal(
        "superseded", f"sequence {command.sequence} is not newer than {last_applied}, already applied"
    )


def make_ack(
    record: Mapping[str, Any],
    status: str,
    at: float,
    *,
    refusal: Refusal | None = None,
    reason: str | None = None,
    observed_version: str | None = None,
    flag: str | None = None,
) -> dict[str, Any]:
    """An ack v1 for the command in ``record``."""
    ack: dict[str, Any] = {
        "schema_version": 1,
        "command_id": record["command_id"],
        "rollout_id": record["rollout_id"],
        "status": status,
        "at": at,
        "controller": CONTROLLER_NAME,
    }
    if refusal is not None:
        ack["reason_code"] = refusal.reason_code
        ack["reason"] = refusal.reason
    elif reason is not None:
        ack["reason"] = reason
    if observed_version is not None:
        ack["observed_version"] = observed_version
    if flag is not None:
        ack["flag"] = flag
    return ack
