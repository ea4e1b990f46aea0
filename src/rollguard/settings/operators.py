"""The ``operators`` section: who may act on rollouts, each by a key of their own (:class:`OperatorSettings`).

Operator actions (approve, hold, silence, declare a promotion, …) are signed with Ed25519 by the
operator's private key (``rollguard operator keygen`` makes one); rollguard verifies them against the
public keys listed here, so "who acted" in the audit and on the dashboard is backed by a key, not by a
name the action claims. When keys are listed, an action without a valid signature of one of them is
refused. Without any key, operator actions are checked as before (with rollguard's own HMAC key when
``commands.verify_operator_actions`` is on and a signing key is set, else not at all).

Example::

    operators:
      keys:
        alice-2026:                   # the key id the action names (key_id)
          operator: alice             # who holds it: the "by" of everything signed with it
          public_key: 0e9d4bbd1f2c0a7a8c6f4e2d1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e   # hex or base64
        bob-laptop: {operator: bob, public_key: "DpTUu9HywKeox..."}

A signed action also carries its ``expires_at`` (``rollguard operator … --ttl``): rollguard refuses it
at or after that time (the rollout's event time), and a ``command_id`` it has already seen.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from rollguard.settings.checks import Locator, mapping, only, text

_SECTION_KEYS: Final = ("keys",)
_KEY_KEYS: Final = ("operator", "public_key")
_KEY_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_HEX: Final = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class OperatorKey:
    """One operator's public key (raw 32-byte Ed25519)."""

    key_id: str
    operator: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    keys: Mapping[str, OperatorKey] = field(default_factory=lambda: MappingProxyType({}))


def decode_public_key(value: str) -> bytes | None:
    """A raw Ed25519 public key from 64 hex digits or base64 (standard or URL-safe) of 32 bytes.

    >>> len(decode_public_key("00" * 32) or b""), decode_public_key("too short")
    (32, None)
    """
    value = value.strip()
    if _HEX.fullmatch(value):
        return bytes.fromhex(value)
    try:
        padded = value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4)
        raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def _key(key_id: str, raw: Any, path: str, loc: Locator) -> OperatorKey:
    if not _KEY_ID.fullmatch(key_id):
        raise loc.error(path, "a key id is 1-64 letters, digits or . _ @ - (starting with a letter or digit)")
    data = mapping(raw, path, loc)
    only(data, _KEY_KEYS, path, loc)
    for name in _KEY_KEYS:
        if name not in data:
            raise loc.error(f"{path}.{name}", "required setting is missing")
    operator = text(data["operator"], f"{path}.operator", loc)
    encoded = text(data["public_key"], f"{path}.public_key", loc)
    public = decode_public_key(encoded)
    if public is None:
        raise loc.error(
            f"{path}.public_key",
            "must be an Ed25519 public key: 64 hex digits or the base64 of 32 bytes "
            "(as `rollguard operator keygen` prints it)",
        )
    return OperatorKey(key_id, operator, public)


def parse_operators(raw: Any, loc: Locator) -> OperatorSettings:
    """The ``operators`` section (absent: no operator keys)."""
    data = mapping(raw, "operators", loc)
    only(data, _SECTION_KEYS, "operators", loc)
    errors: list[Exception] = []
    keys: dict[str, OperatorKey] = {}
    for key_id, entry in mapping(data.get("keys"), "operators.keys", loc).items():
        try:  # every key is checked: all bad entries are reported together
            keys[str(key_id)] = _key(str(key_id), entry, f"operators.keys.{key_id}", loc)
        except ValueError as exc:
            errors.append(exc)
    if errors:
        raise loc.gather(errors)
    return OperatorSettings(MappingProxyType(keys))
