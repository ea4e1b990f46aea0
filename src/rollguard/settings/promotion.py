"""The ``promotion`` section: when and how far a healthy canary is ramped up (:class:`PromotionSettings`).

Example::

    promotion:
      rollouts:
        checkout-v2: {enabled: true, ramp: [0.05, 0.25, 0.5, 1.0]}
      tradeoffs:
        - {metric: quality.eval_score.mean, max_relative_drop: 0.02,
           when: cost_usd.mean, min_relative_saving: 0.2}
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from rollguard.domain.metrics import FAMILIES
from rollguard.settings.checks import (
    Locator,
    boolean,
    choice,
    fill,
    fill_each,
    mapping,
    names,
    number,
    only,
    probability,
    required,
    sequence,
    text,
    weight,
)
from rollguard.settings.commands import APPROVALS

COHORTS: Final = ("all", "whole")


@dataclass(frozen=True, slots=True)
class Tradeoff:
    """``metric`` may be worse by up to ``max_relative_drop`` (upper confidence bound, relative to
    control) when ``when`` is certainly better by at least ``min_relative_saving``."""

    metric: str
    max_relative_drop: float
    when: str
    min_relative_saving: float


@dataclass(frozen=True, slots=True)
class RolloutPromotion:
    """One rollout's exceptions to the section's ``enabled``, ``ramp`` and ``min_step_s``."""

    enabled: bool | None = None
    ramp: tuple[float, ...] | None = None
    min_step_s: float | None = None


@dataclass(frozen=True, slots=True)
class PromotionSettings:
    enabled: bool = False
    ramp: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 1.0)
    min_step_s: float = 900.0
    families: tuple[str, ...] = ("guardrail", "quality")
    metrics: tuple[str, ...] = ("*",)
    cohorts: str = "all"
    approval: str = "auto"
    tradeoffs: tuple[Tradeoff, ...] = ()
    rollouts: Mapping[str, RolloutPromotion] = field(default_factory=dict)

    def for_rollout(self, rollout_id: str) -> tuple[bool, tuple[float, ...], float]:
        """(enabled, ramp, min_step_s) for one rollout."""
        r = self.rollouts.get(rollout_id) or self.rollouts.get("*") or RolloutPromotion()
        enabled = self.enabled if r.enabled is None else r.enabled
        return enabled, r.ramp or self.ramp, self.min_step_s if r.min_step_s is None else r.min_step_s


def parse_promotion(raw: Any, loc: Locator) -> PromotionSettings:
    """The ``promotion`` section (``None`` or absent: the defaults)."""
    return fill(
        PromotionSettings(),
        mapping(raw, "promotion", loc),
        "promotion",
        loc,
        {
            "ramp": lambda v, p: _ramp(v, p, loc),
            "families": lambda v, p: names(v, p, loc, FAMILIES),
            "metrics": lambda v, p: names(v, p, loc),
            "cohorts": lambda v, p: choice(v, p, loc, COHORTS),
            "approval": lambda v, p: choice(v, p, loc, APPROVALS),
            "tradeoffs": lambda v, p: () if v is None else tuple(
                _tradeoff(t, f"{p}[{i}]", loc) for i, t in enumerate(sequence(v, p, loc))
            ),
            "rollouts": lambda v, p: _rollouts(v, p, loc),
        },
    )  # fmt: skip


def _ramp(value: Any, path: str, loc: Locator) -> tuple[float, ...]:
    """The weights a promoted canary steps through, each a traffic weight, strictly increasing."""
    steps = sequence(value, path, loc, of="weights", non_empty=True)
    ramp = tuple(weight(v, f"{path}[{i}]", loc) for i, v in enumerate(steps))
    if any(b <= a for a, b in itertools.pairwise(ramp)) or ramp[0] <= 0:
        raise loc.error(path, "weights must be positive and strictly increasing")
    return ramp


def _tradeoff(raw: Any, path: str, loc: Locator) -> Tradeoff:
    data = mapping(raw, path, loc)
    keys = ("max_relative_drop", "metric", "min_relative_saving", "when")
    only(data, keys, path, loc)
    required(data, keys, path, loc)
    return Tradeoff(
        text(data["metric"], f"{path}.metric", loc),
        number(data["max_relative_drop"], f"{path}.max_relative_drop", loc),
        text(data["when"], f"{path}.when", loc),
        probability(data["min_relative_saving"], f"{path}.min_relative_saving", loc),
    )


def _rollouts(value: Any, path: str, loc: Locator) -> dict[str, RolloutPromotion]:
    return fill_each(
        RolloutPromotion(),
        value,
        path,
        loc,
        {
            "enabled": lambda v, p: boolean(v, p, loc),
            "ramp": lambda v, p: _ramp(v, p, loc),
            "min_step_s": lambda v, p: number(v, p, loc),
        },
    )
