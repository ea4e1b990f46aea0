"""Helpers for the JSON-compatible state of the estimators (internal)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["check_state", "finite_or_none", "none_or_float"]


def check_state(state: Any, version: int, keys: Iterable[str]) -> None:
    """Raise ``ValueError`` unless ``state`` is a mapping of the given version holding ``keys``."""
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict, got {type(state).__name__}")
    if state.get("v") != version:
        raise ValueError(f"unsupported state version {state.get('v')!r} (expected {version})")
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"state is missing {', '.join(missing)}")


def finite_or_none(x: float) -> float | None:
    """``x`` as a float, or ``None`` when it is not finite (JSON has no inf/nan)."""
    return float(x) if math.isfinite(x) else None


def none_or_float(x: Any, default: float) -> float:
    """Inverse of :func:`finite_or_none`: ``None`` becomes ``default``."""
    return default if x is None else float(x)
