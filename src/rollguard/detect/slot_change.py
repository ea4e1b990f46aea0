"""A check's change of state in one cohort slot, before the monitor names the cohort and the phase.

Checks work on slot numbers (arrays are indexed by slot); naming a slot's cohort needs the registry and
the rollout's phase, which only the monitor holds, so each check reports :class:`SlotChange` records
and the monitor turns them into :class:`~rollguard.domain.verdicts.VerdictChange` in the order found.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple


class SlotChange(NamedTuple):
    """``kind`` is "verdict", "drift", "srm" or "phase"; ``previous`` the state it left (None: first)."""

    kind: str
    slot: int
    metric: str
    state: str
    previous: str | None
    evidence: dict[str, Any]


def round_evidence(d: dict[str, Any]) -> dict[str, Any]:
    """Finite floats to 6 significant digits: the evidence of CUSUM and SRM changes is stable text.

    >>> round_evidence({"statistic": 12.3456789, "n": 3, "threshold": float("inf")})
    {'statistic': 12.3457, 'n': 3, 'threshold': inf}
    """
    return {k: (float(f"{v:.6g}") if isinstance(v, float) and math.isfinite(v) else v) for k, v in d.items()}
