"""The ``commands`` section: the safety rails of rollout commands (:class:`CommandSettings`).

What the ladder may do, how fast and with whose approval; see :mod:`rollguard.policy.commands`.

Example::

    commands:
      dry_run: true
      signing_key_env: ROLLGUARD_SIGNING_KEY
      progression: [disable_scope, rollback]
      rollouts:
        checkout-v2: {approval: required}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from rollguard.settings.checks import (
    Locator,
    boolean,
    choice,
    fill,
    fill_each,
    mapping,
    names,
    positive,
    text,
    weight,
    whole,
)

ROLLOUT_ACTIONS: Final = ("disable_scope", "reduce_weight", "rollback")
APPROVALS: Final = ("auto", "required")
ON_SRM: Final = ("auto", "approve", "block")


@dataclass(frozen=True, slots=True)
class RolloutCommandSettings:
    """One rollout's exceptions to the section's ``enabled``, ``dry_run`` and ``approval``."""

    enabled: bool | None = None
    dry_run: bool | None = None
    approval: str | None = None


@dataclass(frozen=True, slots=True)
class CommandSettings:
    """Safety rails of rollout commands; see :mod:`rollguard.policy.commands`."""

    enabled: bool = True
    dry_run: bool = False
    signing_key: str | None = None
    signing_key_env: str = "ROLLGUARD_SIGNING_KEY"
    key_id: str | None = None
    ttl_s: float = 900.0
    ack_timeout_s: float = 120.0
    cooldown_s: float = 300.0
    max_per_hour: int = 6
    max_attempts: int = 3
    progression: tuple[str, ...] = ROLLOUT_ACTIONS
    reduce_weight_to: float = 0.01
    escalate_at_scopes: int = 2
    persist_s: float = 300.0
    approval: str = "auto"
    approval_timeout_s: float = 900.0
    on_srm: str = "approve"
    pause_on_srm: bool = False
    verify_operator_actions: bool = True
    rollouts: Mapping[str, RolloutCommandSettings] = field(default_factory=dict)

    def for_rollout(self, rollout_id: str) -> RolloutCommandSettings:
        return self.rollouts.get(rollout_id) or self.rollouts.get("*") or RolloutCommandSettings()


def parse_commands(raw: Any, loc: Locator) -> CommandSettings:
    """The ``commands`` section (``None`` or absent: the defaults)."""
    settings = fill(
        CommandSettings(),
        mapping(raw, "commands", loc),
        "commands",
        loc,
        {
            "signing_key": lambda v, p: text(v, p, loc),
            "key_id": lambda v, p: text(v, p, loc),
            "progression": lambda v, p: _progression(v, p, loc),
            "reduce_weight_to": lambda v, p: weight(v, p, loc),
            "approval": lambda v, p: choice(v, p, loc, APPROVALS),
            "on_srm": lambda v, p: choice(v, p, loc, ON_SRM),
            "ttl_s": lambda v, p: positive(v, p, loc),
            "max_per_hour": lambda v, p: whole(v, p, loc, minimum=1),
            "max_attempts": lambda v, p: whole(v, p, loc, minimum=1),
            "escalate_at_scopes": lambda v, p: whole(v, p, loc, minimum=1),
            "rollouts": lambda v, p: _rollouts(v, p, loc),
        },
    )
    if settings.ack_timeout_s > settings.ttl_s:
        raise loc.error("commands.ack_timeout_s", "must not exceed commands.ttl_s")
    return settings


def _progression(value: Any, path: str, loc: Locator) -> tuple[str, ...]:
    """The ladder's steps: a subset of :data:`ROLLOUT_ACTIONS`, mildest first."""
    steps = names(value, path, loc, ROLLOUT_ACTIONS)
    order = [ROLLOUT_ACTIONS.index(s) for s in steps]
    if not steps or order != sorted(set(order)):
        raise loc.error(path, f"must be distinct steps in the order {', '.join(ROLLOUT_ACTIONS)}")
    return steps


def _rollouts(value: Any, path: str, loc: Locator) -> dict[str, RolloutCommandSettings]:
    return fill_each(
        RolloutCommandSettings(),
        value,
        path,
        loc,
        {
            "enabled": lambda v, p: boolean(v, p, loc),
            "dry_run": lambda v, p: boolean(v, p, loc),
            "approval": lambda v, p: choice(v, p, loc, APPROVALS),
        },
    )
