"""The checks every config section is built from: each error reads ``file:line: field: what is wrong``.

Each section module (``engine``, ``alerts``, ``worker``, …) parses its part of the file with these
and nothing hand-written: a value is checked where it is read. A flat section (:func:`fill`) checks
every key and reports all its bad ones together (:meth:`Locator.gather`); the first in file order
leads. The ``loc`` passed around is what knows the line of a dotted field path (the
config loader's line table, see :func:`rollguard.settings.config.compose_located`).

>>> from rollguard.settings.config import compose_located
>>> data, loc = compose_located("gate:\\n  alpha: 2\\n", "rollguard.yaml")
>>> probability(data["gate"]["alpha"], "gate.alpha", loc)
Traceback (most recent call last):
rollguard.settings.config.ConfigError: rollguard.yaml:2: gate.alpha: must be strictly between 0 and 1, got 2
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    S = TypeVar("S", bound=DataclassInstance)

Check = Callable[[Any, str], Any]
"""A setting's own check: ``(value, dotted path) -> parsed value``, raising the located error."""


class Locator(Protocol):
    """What the config loader provides: an error located at the line of a dotted path, and one error
    that carries several (so that a file's check reports all of them, not only the first)."""

    def error(self, path: str, message: str) -> Exception: ...

    def gather(self, errors: list[Exception]) -> Exception: ...


# ------------------------------------------------------------------------------------------ structure


def mapping(value: Any, path: str, loc: Locator) -> dict[str, Any]:
    """A section's mapping; an absent (null) section is an empty one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise loc.error(path, f"must be a mapping, got {type(value).__name__}")
    return value


def sequence(value: Any, path: str, loc: Locator, *, of: str = "", non_empty: bool = False) -> list[Any]:
    """A YAML list (``of`` what, for the message), not empty if ``non_empty``; the caller checks items."""
    if not isinstance(value, list) or (non_empty and not value):
        raise loc.error(path, f"must be a {'non-empty ' if non_empty else ''}list{' of ' + of if of else ''}")
    return value


def only(
    keys: Iterable[str], allowed: Iterable[str], path: str, loc: Locator, *, what: str = "setting"
) -> None:
    """Refuse a key that is not a known ``what`` of the mapping at ``path``, naming the known ones.

    ``keys`` is a mapping (all its keys, before any value is read) or a single ``[key]`` for sections
    that check each key just before its value (so errors come in file order)."""
    known = set(allowed)
    for key in keys:
        if key not in known:
            raise loc.error(f"{path}.{key}", f"unknown {what} (expected one of: {', '.join(sorted(known))})")


def required(data: Mapping[str, Any], keys: Iterable[str], path: str, loc: Locator) -> None:
    """Refuse a mapping that lacks one of ``keys`` (checked in the given order)."""
    for key in keys:
        if key not in data:
            raise loc.error(f"{path}.{key}", "required setting is missing")


# ------------------------------------------------------------------------------------------- scalars


def number(value: Any, path: str, loc: Locator, *, minimum: float = 0.0, integer: bool = False) -> float:
    """A finite number (booleans are not numbers), whole if ``integer``, at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise loc.error(path, f"must be a number, got {value!r}")
    if integer and not float(value).is_integer():
        raise loc.error(path, f"must be a whole number, got {value!r}")
    if value < minimum:
        raise loc.error(path, f"must be at least {minimum:g}, got {value!r}")
    return float(value)


def whole(value: Any, path: str, loc: Locator, *, minimum: int = 0) -> int:
    """A whole number (``5`` or ``5.0``) at least ``minimum``: counts, sizes, ports."""
    return int(number(value, path, loc, minimum=minimum, integer=True))


def positive(value: Any, path: str, loc: Locator, *, integer: bool = False) -> float:
    """A number above 0 (durations, rates, sizes that cannot be zero), whole if ``integer``."""
    setting = number(value, path, loc, minimum=-math.inf, integer=integer)
    if setting <= 0:
        raise loc.error(path, f"must be positive, got {value!r}")
    return setting


def probability(value: Any, path: str, loc: Locator) -> float:
    """A number strictly between 0 and 1: a false-alarm budget, a share, a hysteresis threshold."""
    setting = number(value, path, loc, minimum=-math.inf)
    if not 0.0 < setting < 1.0:
        raise loc.error(path, f"must be strictly between 0 and 1, got {value!r}")
    return setting


def weight(value: Any, path: str, loc: Locator) -> float:
    """A traffic weight in [0, 1] (the canary's share of requests)."""
    setting = number(value, path, loc)
    if setting > 1.0:
        raise loc.error(path, f"must be in [0, 1], got {value!r}")
    return setting


def boolean(value: Any, path: str, loc: Locator) -> bool:
    """``true`` or ``false`` (YAML booleans only: ``1`` and ``"yes"`` are refused)."""
    if not isinstance(value, bool):
        raise loc.error(path, "must be true or false")
    return value


def text(value: Any, path: str, loc: Locator) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise loc.error(path, f"must be a non-empty string, got {value!r}")
    return value


def choice(value: Any, path: str, loc: Locator, choices: Iterable[str]) -> str:
    """One of a fixed set of words, listed in the error in the order given."""
    options = tuple(choices)
    if value not in options:
        raise loc.error(path, f"must be one of {', '.join(options)}, got {value!r}")
    return str(value)


# ------------------------------------------------------------------------------------------- names


def _is_names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def name_list(value: Any, path: str, loc: Locator, *, what: str = "names") -> tuple[str, ...]:
    """A list of non-empty strings (dimension names, metric names); ``what`` words the error."""
    if not _is_names(value):
        raise loc.error(path, f"must be a list of {what}")
    return tuple(value)


def names(value: Any, path: str, loc: Locator, choices: Iterable[str] | None = None) -> tuple[str, ...]:
    """One name or a list of names (``family: latency`` or ``family: [latency, cost]``), each one of
    ``choices`` if given (an error names the list item at fault)."""
    items = [value] if isinstance(value, str) else value
    if not _is_names(items):
        raise loc.error(path, "must be a name or a list of names")
    if choices is not None:
        options = tuple(choices)
        for i, item in enumerate(items):
            choice(item, f"{path}[{i}]" if isinstance(value, list) else path, loc, options)
    return tuple(items)


# ------------------------------------------------------------------------------------------ sections


def fill(
    defaults: S,
    data: Mapping[str, Any],
    path: str,
    loc: Locator,
    checks: Mapping[str, Check] | None = None,
    *,
    nested: Iterable[str] = (),
    internal: Iterable[str] = (),
) -> S:
    """A flat settings dataclass from a mapping, key by key in file order.

    A key with an entry in ``checks`` is parsed by it; any other is checked by the type of its default:
    a boolean, a whole number at least 0, a number at least 0, or a non-empty string (also for a
    default of ``None``). ``nested`` keys are known (an unknown key's error lists them) but parsed by
    the caller; ``internal`` fields are not settings of the file (the caller fills them otherwise)."""
    checks = checks or {}
    nested = frozenset(nested)
    allowed = ({f.name for f in dataclasses.fields(defaults)} - set(internal)) | nested
    values: dict[str, Any] = {}
    errors: list[Exception] = []
    for key, value in data.items():
        try:  # every key is checked: one error per bad key, all of them reported together
            only([key], allowed, path, loc)
            if key in nested:
                continue
            values[key] = _setting(defaults, key, value, f"{path}.{key}", loc, checks)
        except ValueError as exc:  # the located error of the key (the loader's errors are ValueErrors)
            errors.append(exc)
    if errors:
        raise loc.gather(errors)
    return dataclasses.replace(defaults, **values)


def fill_each(
    defaults: S, raw: Any, path: str, loc: Locator, checks: Mapping[str, Check] | None = None
) -> dict[str, S]:
    """Names (rollout ids, ``*``) mapped to flat settings dataclasses, each one :func:`fill`-ed from
    ``defaults`` with the same ``checks`` at ``path.<name>``: the per-rollout overrides of a section."""
    return {
        str(name): fill(defaults, mapping(value, f"{path}.{name}", loc), f"{path}.{name}", loc, checks)
        for name, value in mapping(raw, path, loc).items()
    }


def _setting(defaults: Any, key: str, value: Any, p: str, loc: Locator, checks: Mapping[str, Check]) -> Any:
    """One key of :func:`fill`: its own check, else the check of its default's type."""
    default = getattr(defaults, key)
    if key in checks:
        setting = checks[key](value, p)
        return int(setting) if type(default) is int and isinstance(setting, float) else setting
    if isinstance(default, bool):
        return boolean(value, p, loc)
    if isinstance(default, int):
        return whole(value, p, loc)
    if isinstance(default, float):
        return number(value, p, loc)
    if default is None or isinstance(default, str):
        return text(value, p, loc)
    raise TypeError(f"{p}: no check for a {type(default).__name__} setting")  # a bug, not bad input
