"""Checks shared by every section of the config file, so that each error reads the same way.

The core settings (:mod:`rollguard.settings.config`), the alert/command/promotion/gate settings
(:mod:`rollguard.settings.policy`) and the embedding/shadow settings
(:mod:`rollguard.settings.embeddings`) all fail at start with ``file:line: field: what is wrong``;
the ``loc`` passed around is what knows the line of a dotted field path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol


class Locator(Protocol):
    """What the config loader provides: an error located at the line of a dotted path."""

    def error(self, path: str, message: str) -> Exception: ...


def mapping(value: Any, path: str, loc: Locator) -> dict[str, Any]:
    """A section's mapping; an absent (null) section is an empty one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise loc.error(path, f"must be a mapping, got {type(value).__name__}")
    return value


def only(keys: Iterable[str], allowed: Iterable[str], path: str, loc: Locator) -> None:
    """Refuse a key that is not a known setting of the section at ``path``, naming the known ones.

    ``keys`` is a section's mapping (all its keys, before any value is read) or a single ``[key]``
    for sections that check each key just before its value."""
    known = set(allowed)
    for key in keys:
        if key not in known:
            raise loc.error(f"{path}.{key}", f"unknown setting (expected one of: {', '.join(sorted(known))})")


def number(value: Any, path: str, loc: Locator, *, minimum: float = 0.0, integer: bool = False) -> float:
    """A finite number (booleans are not numbers), whole if ``integer``, at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise loc.error(path, f"must be a number, got {value!r}")
    if integer and not float(value).is_integer():
        raise loc.error(path, f"must be a whole number, got {value!r}")
    if value < minimum:
        raise loc.error(path, f"must be at least {minimum:g}, got {value!r}")
    return float(value)


def boolean(value: Any, path: str, loc: Locator) -> bool:
    if not isinstance(value, bool):
        raise loc.error(path, "must be true or false")
    return value


def text(value: Any, path: str, loc: Locator) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise loc.error(path, f"must be a non-empty string, got {value!r}")
    return value
