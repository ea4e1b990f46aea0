"""The rollouts section: a rollout's intended split and phase, with ``*`` for the others."""

from __future__ import annotations

import pytest
from config_errors import assert_fails

from rollguard.settings import parse_config
from rollguard.settings.rollouts import RolloutSettings


def test_a_listed_rollout_then_star_then_the_defaults_apply() -> None:
    cfg = parse_config(
        "rollouts:\n  checkout: {canary_weight: 0.1, phase: canary}\n  '*': {phase: post_rollout}\n"
    )
    assert cfg.rollout("checkout") == RolloutSettings(0.1, "canary")
    assert cfg.rollout("other") == RolloutSettings(None, "post_rollout")
    assert parse_config("").rollout("other") == RolloutSettings(None, "auto")


def test_a_rollout_whose_router_splits_each_request_says_so() -> None:
    cfg = parse_config("rollouts:\n  search: {assignment: request}\n")
    assert cfg.rollout("search").assignment == "request" and cfg.rollout("other").assignment == "unit"


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("rollouts:\n  r1: fast\n", 2, "rollouts.r1", "must be a mapping, got str"),
        (
            "rollouts:\n  r1:\n    phase: done\n",
            3,
            "rollouts.r1.phase",
            "must be one of auto, canary, post_rollout, got 'done'",
        ),
        (
            "rollouts:\n  r1: {canary_weight: 1.5}\n",
            2,
            "rollouts.r1.canary_weight",
            "must be in [0, 1], got 1.5",
        ),
        (
            "rollouts:\n  r1: {canary_weight: -0.5}\n",
            2,
            "rollouts.r1.canary_weight",
            "must be at least 0, got -0.5",
        ),
        (
            "rollouts:\n  r1: {weight: 0.5}\n",
            2,
            "rollouts.r1.weight",
            "unknown setting (expected one of: assignment, canary_weight, phase)",
        ),
        (
            "rollouts:\n  r1: {assignment: user}\n",
            2,
            "rollouts.r1.assignment",
            "must be one of unit, request, got 'user'",
        ),
    ],
)
def test_errors_name_the_line_and_field(text: str, line: int, field: str, message: str) -> None:
    assert_fails(text, line, field, message)
