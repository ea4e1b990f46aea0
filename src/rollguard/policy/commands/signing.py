"""Signatures on commands: HMAC-SHA256 over the canonical JSON of the command without ``signature``.

Canonical JSON follows RFC 8785 (JCS) for the values commands hold: object keys sorted by UTF-16 code
units, no whitespace, minimal string escapes, numbers in ECMAScript shortest form (``1`` not ``1.0``,
``1e-7``, ``1e+21``). A controller in any language with a JCS library verifies without guessing.

Controllers reject a command whose signature does not verify (forged or tampered) and one whose
``expires_at`` has passed by their clock; :func:`verify_command` does both and says which.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

SIGNATURE_FIELD: Final = "signature"
_ESCAPES: Final = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _number(x: float) -> str:
    """ECMAScript Number::toString of a finite double (what JCS prescribes).

    >>> [_number(v) for v in (1.0, 0.5, 1e-7, 1e21, 123456789012345680000.0, 0.000001, -0.0, 2e-3)]
    ['1', '0.5', '1e-7', '1e+21', '123456789012345680000', '0.000001', '0', '0.002']
    """
    if not math.isfinite(x):
        raise ValueError("canonical JSON has no NaN or infinity")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    r = repr(abs(x))  # shortest round-trip digits
    mantissa, _, exp = r.partition("e")
    int_part, _, frac = mantissa.partition(".")
    digits = (int_part + frac).lstrip("0")
    lead_zeros = len(int_part + frac) - len((int_part + frac).lstrip("0"))
    n = len(int_part) - lead_zeros + (int(exp) if exp else 0)  # decimal point position
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return sign + out


def _string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical UTF-8 JSON of plain data (dict, list, str, int, float, bool, None).

    >>> canonical_json({"b": [1.0, True, None], "a": "é\\n"}).decode()
    '{"a":"é\\\\n","b":[1,true,null]}'
    """
    return _canon(value).encode("utf-8")


def _canon(v: Any) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return _number(float(v)) if abs(v) > 2**53 else str(v)
    if isinstance(v, float):
        return _number(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, Mapping):
        keys = sorted(v, key=lambda k: str(k).encode("utf-16-be"))
        return "{" + ",".join(_string(str(k)) + ":" + _canon(v[k]) for k in keys) + "}"
    if isinstance(v, list | tuple):
        return "[" + ",".join(_canon(x) for x in v) + "]"
    raise TypeError(f"not canonical JSON data: {type(v).__name__}")


def signing_payload(command: Mapping[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in command.items() if k != SIGNATURE_FIELD})


def sign(command: Mapping[str, Any], key: bytes) -> str:
    """Hex HMAC-SHA256 of the canonical command (without its ``signature``)."""
    return hmac.new(key, signing_payload(command), hashlib.sha256).hexdigest()


def signed(command: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    """The command with its ``signature`` set; ``""`` (unsigned, controllers must refuse) without a key."""
    command[SIGNATURE_FIELD] = sign(command, key) if key else ""
    return command


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    reason: str  # "ok" | "unsigned" | "bad_signature" | "expired" | "malformed"

    def __bool__(self) -> bool:
        return self.ok


def verify_command(command: Mapping[str, Any], key: bytes, now: float | None = None) -> Verification:
    """Check a command as a controller should: signature first, then expiry at ``now`` (if given)."""
    sig = command.get(SIGNATURE_FIELD)
    if not isinstance(sig, str) or not sig:
        return Verification(False, "unsigned")
    try:
        expected = sign(command, key)
    except (TypeError, ValueError):
        return Verification(False, "malformed")
    # compare_digest refuses non-ASCII str: compare bytes, so any signature a message holds is checkable.
    if not hmac.compare_digest(expected.encode("utf-8"), sig.encode("utf-8", "surrogatepass")):
        return Verification(False, "bad_signature")
    expires = command.get("expires_at")
    if now is not None and (not isinstance(expires, int | float) or now >= expires):
        return Verification(False, "expired")
    return Verification(True, "ok")


def resolve_signing_key(literal: str | None, env_name: str, environ: Mapping[str, str]) -> bytes | None:
    """The key from the environment variable ``env_name`` if set, else the literal from config.

    Takes the environment as an argument so the core never reads process state itself."""
    value = environ.get(env_name) if env_name else None
    if value:
        return value.encode("utf-8")
    return literal.encode("utf-8") if literal else None
