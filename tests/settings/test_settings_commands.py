"""The commands section: the rollout command ladder's rails, per rollout where it matters."""

from __future__ import annotations

import pytest
from config_errors import assert_fails

from rollguard.settings import Config, parse_config
from rollguard.settings.commands import RolloutCommandSettings

KNOWN = (
    "unknown setting (expected one of: ack_timeout_s, approval, approval_timeout_s, cooldown_s, dry_run, "
    "enabled, escalate_at_scopes, key_id, max_attempts, max_per_hour, on_srm, pause_on_srm, persist_s, "
    "progression, reduce_weight_to, rollouts, signing_key, signing_key_env, ttl_s, verify_operator_actions)"
)


def test_defaults_without_config() -> None:
    c = Config().commands
    assert (c.dry_run, c.progression, c.approval, c.on_srm) == (
        False,
        ("disable_scope", "reduce_weight", "rollback"),
        "auto",
        "approve",
    )
    assert c.for_rollout("any") == RolloutCommandSettings()


def test_the_section_parses_into_typed_settings() -> None:
    c = parse_config("""
commands:
  dry_run: true
  progression: [disable_scope, rollback]
  max_per_hour: 2.0
  rollouts: {r9: {approval: required}, "*": {dry_run: false}}
""").commands
    assert c.dry_run and c.progression == ("disable_scope", "rollback") and c.max_per_hour == 2
    assert c.for_rollout("r9") == RolloutCommandSettings(approval="required")
    assert c.for_rollout("other") == RolloutCommandSettings(dry_run=False)


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("commands: 5", 1, "commands", "must be a mapping, got int"),
        ("commands:\n  signing_keys: x", 2, "commands.signing_keys", KNOWN),
        (
            "commands:\n  progression: [rollback, disable_scope]\n",
            2,
            "commands.progression",
            "must be distinct steps in the order disable_scope, reduce_weight, rollback",
        ),
        (
            "commands:\n  progression: []",
            2,
            "commands.progression",
            "must be distinct steps in the order disable_scope, reduce_weight, rollback",
        ),
        (
            "commands:\n  progression: [rollback, rollback]",
            2,
            "commands.progression",
            "must be distinct steps in the order disable_scope, reduce_weight, rollback",
        ),
        (
            "commands:\n  progression: [pause]",
            2,
            "commands.progression[0]",
            "must be one of disable_scope, reduce_weight, rollback, got 'pause'",
        ),
        (
            "commands:\n  ttl_s: 60\n  ack_timeout_s: 120\n",
            3,
            "commands.ack_timeout_s",
            "must not exceed commands.ttl_s",
        ),
        ("commands:\n  ttl_s: 0", 2, "commands.ttl_s", "must be positive, got 0"),
        ("commands:\n  max_per_hour: 0\n", 2, "commands.max_per_hour", "must be at least 1, got 0"),
        ("commands:\n  max_attempts: 0.5", 2, "commands.max_attempts", "must be a whole number, got 0.5"),
        ("commands:\n  escalate_at_scopes: 0", 2, "commands.escalate_at_scopes", "must be at least 1, got 0"),
        ("commands:\n  reduce_weight_to: 2", 2, "commands.reduce_weight_to", "must be in [0, 1], got 2"),
        (
            "commands:\n  approval: sometimes",
            2,
            "commands.approval",
            "must be one of auto, required, got 'sometimes'",
        ),
        (
            "commands:\n  on_srm: ignore",
            2,
            "commands.on_srm",
            "must be one of auto, approve, block, got 'ignore'",
        ),
        ("commands:\n  signing_key: ''", 2, "commands.signing_key", "must be a non-empty string, got ''"),
        ("commands:\n  key_id: 5", 2, "commands.key_id", "must be a non-empty string, got 5"),
        ("commands:\n  dry_run: yes please", 2, "commands.dry_run", "must be true or false"),
        ("commands:\n  cooldown_s: -1", 2, "commands.cooldown_s", "must be at least 0, got -1"),
        ("commands:\n  rollouts: [r9]", 2, "commands.rollouts", "must be a mapping, got list"),
        (
            "commands:\n  rollouts:\n    r9: {approval: never}",
            3,
            "commands.rollouts.r9.approval",
            "must be one of auto, required, got 'never'",
        ),
        (
            "commands:\n  rollouts:\n    r9: {paused: true}",
            3,
            "commands.rollouts.r9.paused",
            "unknown setting (expected one of: approval, dry_run, enabled)",
        ),
        (
            "commands:\n  rollouts:\n    r9: {enabled: 1}",
            3,
            "commands.rollouts.r9.enabled",
            "must be true or false",
        ),
    ],
)
def test_errors_name_the_line_and_field(text: str, line: int, field: str, message: str) -> None:
    assert_fails(text, line, field, message)
