"""The ``gate`` section: the offline eval gate's test, families and cohorts (:class:`GateSettings`).

Used by ``rollguard gate`` (:mod:`rollguard.detect.eval_gate`), which compares two eval runs.

Example::

    gate:
      alpha: 0.01
      families: [guardrail, quality]
      dimensions: [input_class]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from rollguard.domain.metrics import FAMILIES
from rollguard.settings.checks import Locator, choice, fill, mapping, name_list, names, probability, whole

METHODS: Final = ("fixed", "sequential")
PAIRED: Final = ("auto", "never")


@dataclass(frozen=True, slots=True)
class GateSettings:
    alpha: float = 0.05
    method: str = "fixed"
    families: tuple[str, ...] = FAMILIES
    dimensions: tuple[str, ...] | None = None
    max_dimensions: int = 8
    min_samples: int = 30
    paired: str = "auto"


def parse_gate(raw: Any, loc: Locator) -> GateSettings:
    """The ``gate`` section (``None`` or absent: the defaults)."""
    return fill(
        GateSettings(),
        mapping(raw, "gate", loc),
        "gate",
        loc,
        {
            "alpha": lambda v, p: probability(v, p, loc),
            "method": lambda v, p: choice(v, p, loc, METHODS),
            "families": lambda v, p: names(v, p, loc, FAMILIES),
            "dimensions": lambda v, p: name_list(v, p, loc, what="dimension names"),
            "paired": lambda v, p: choice(v, p, loc, PAIRED),
            "min_samples": lambda v, p: whole(v, p, loc, minimum=2),
        },
    )
