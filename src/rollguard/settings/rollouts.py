"""The ``rollouts`` section: per-rollout facts events may not carry (:class:`RolloutSettings`).

Example::

    rollouts:
      checkout-v2: {canary_weight: 0.1}     # intended split when events do not carry it
      search-v7: {assignment: request}      # the router splits each request on its own
      "*": {phase: canary}                  # any other rollout
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from rollguard.settings.checks import Locator, choice, fill_each, weight

PHASES: Final = ("auto", "canary", "post_rollout")
ASSIGNMENTS: Final = ("unit", "request")


@dataclass(frozen=True, slots=True)
class RolloutSettings:
    """The intended canary share (``None``: from the events), the phase (``auto``: detected) and how
    the router assigns traffic: ``unit`` (sticky per ``unit_id``; events without one are left out of
    the sample-ratio check, whose draws are units) or ``request`` (each request on its own: a request
    without ``unit_id`` is its own unit, so lost or duplicated events show in the canary's share)."""

    canary_weight: float | None = None
    phase: str = "auto"
    assignment: str = "unit"


def parse_rollouts(raw: Any, loc: Locator) -> dict[str, RolloutSettings]:
    """The ``rollouts`` section by rollout id (``*`` applies to the rollouts not listed)."""
    return fill_each(
        RolloutSettings(),
        raw,
        "rollouts",
        loc,
        {
            "canary_weight": lambda v, p: weight(v, p, loc),
            "phase": lambda v, p: choice(v, p, loc, PHASES),
            "assignment": lambda v, p: choice(v, p, loc, ASSIGNMENTS),
        },
    )
