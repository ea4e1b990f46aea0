"""Operator actions signed by the operator: Ed25519 over the action's canonical JSON, one key per person.

rollguard's own commands are signed with its HMAC key (:mod:`rollguard.policy.commands.signing`), which
only rollguard and the controllers hold; an operator's action must instead say *who* acted, in a way
the action's text cannot fake. Each operator holds a private key (``rollguard operator keygen``), the
action names its ``key_id``, and rollguard verifies the signature against the public keys of the
``operators`` config section: the action's ``issued_by`` must be the key's operator, so "who acted" in
the audit and on the dashboard is backed by a key.

The signed bytes are the RFC 8785 canonical JSON of the action without ``signature`` (the same
canonical form as commands), and ``signature`` is the hex of the 64-byte Ed25519 signature.

>>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
>>> from rollguard.settings.operators import OperatorKey
>>> private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
>>> keys = {"alice-1": OperatorKey("alice-1", "alice", public_bytes(private))}
>>> action = sign_action({"action": "hold", "rollout_id": "r", "command_id": "op-1", "issued_by": "alice",
...                       "key_id": "alice-1", "issued_at": 100.0, "expires_at": 1000.0}, private)
>>> verify_action(action, keys, now=200.0) is None
True
>>> verify_action({**action, "issued_by": "mallory"}, keys, now=200.0)
'bad_signature'
>>> verify_action(action, keys, now=1000.0)
'expired'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rollguard.policy.commands.signing import SIGNATURE_FIELD, signing_payload
from rollguard.settings.operators import OperatorKey

_SIGNATURE: Final = re.compile(r"[0-9a-f]{128}")


def public_bytes(private: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key of a private key (what the config lists)."""
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign_action(action: dict[str, Any], private: Ed25519PrivateKey) -> dict[str, Any]:
    """The action with its ``signature`` set (it must already name its ``key_id`` and ``issued_by``)."""
    action[SIGNATURE_FIELD] = private.sign(signing_payload(action)).hex()
    return action


def verify_action(
    action: Mapping[str, Any], keys: Mapping[str, OperatorKey], now: float | None
) -> str | None:
    """None when ``action`` is signed by a listed operator key and unexpired at ``now`` (event time);
    else why not: ``unknown_key``, ``unsigned``, ``bad_signature``, ``not_the_key_holder``, ``expired``,
    ``malformed``."""
    key = keys.get(str(action.get("key_id")))
    if key is None:
        return "unknown_key"
    sig = action.get(SIGNATURE_FIELD)
    if not isinstance(sig, str) or not sig:
        return "unsigned"
    if not _SIGNATURE.fullmatch(sig):
        return "malformed"
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(bytes.fromhex(sig), signing_payload(action))
    except InvalidSignature:
        return "bad_signature"
    except (TypeError, ValueError):
        return "malformed"
    if action.get("issued_by") != key.operator:
        return "not_the_key_holder"
    expires = action.get("expires_at")
    if not isinstance(expires, int | float) or isinstance(expires, bool) or not math.isfinite(expires):
        return "malformed"
    if now is not None and now >= expires:
        return "expired"
    return None
