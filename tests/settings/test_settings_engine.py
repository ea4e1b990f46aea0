"""The engine section: batching and budgets, every number checked, the first bad one (file order) reported."""

from __future__ import annotations

import pytest
from config_errors import assert_fails

from rollguard.settings import Config, parse_config
from rollguard.settings.engine import EngineSettings


def test_an_absent_or_empty_section_gives_the_defaults() -> None:
    assert parse_config("engine:\n").engine == parse_config("").engine == EngineSettings() == Config().engine


def test_settings_keep_the_type_of_their_default() -> None:
    engine = parse_config(
        "engine: {batch_seconds: 2, min_samples: 50.0, whole_rollout_alpha_share: 0.25}"
    ).engine
    assert engine.batch_seconds == 2.0 and isinstance(engine.batch_seconds, float)
    assert engine.min_samples == 50 and isinstance(engine.min_samples, int)
    assert engine.whole_rollout_alpha_share == 0.25


def test_the_change_grid_is_never_finer_than_a_batch() -> None:
    assert parse_config("engine: {batch_seconds: 60, cusum_step_s: 30}").engine.cusum_grid_s == 60.0


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("engine: 5\n", 1, "engine", "must be a mapping, got int"),
        ("engine:\n  batch_seconds: fast\n", 2, "engine.batch_seconds", "must be a number, got 'fast'"),
        (
            "engine:\n  batchseconds: 1\n",
            2,
            "engine.batchseconds",
            "unknown setting (expected one of: baseline_window_s, batch_seconds, canary_horizon_s, "
            "cohort_ttl_s, cusum_step_s, dedup_max_ids, dedup_window_s, drift_horizon_s, max_batch_seconds, "
            "max_cohorts_per_rollout, "
            "max_quality_keys, min_batch_events, min_samples, post_rollout_period_s, promotion_silence_s, "
            "unit_filter_bits, whole_rollout_alpha_share)",
        ),
        (
            "engine:\n  min_batch_events: 2.5\n",
            2,
            "engine.min_batch_events",
            "must be a whole number, got 2.5",
        ),
        ("engine:\n  cohort_ttl_s: -1\n", 2, "engine.cohort_ttl_s", "must be at least 0, got -1"),
        ("engine:\n  batch_seconds: 0\n", 2, "engine.batch_seconds", "must be positive, got 0"),
        ("engine:\n  cusum_step_s: -5\n", 2, "engine.cusum_step_s", "must be positive, got -5"),
        ("engine:\n  min_samples: 0\n", 2, "engine.min_samples", "must be positive, got 0"),
        (
            "engine:\n  max_cohorts_per_rollout: 1.5\n",
            2,
            "engine.max_cohorts_per_rollout",
            "must be a whole number, got 1.5",
        ),
        ("engine:\n  promotion_silence_s: 0\n", 2, "engine.promotion_silence_s", "must be positive, got 0"),
        (
            "engine:\n  whole_rollout_alpha_share: 1\n",
            2,
            "engine.whole_rollout_alpha_share",
            "must be strictly between 0 and 1, got 1",
        ),
        # file order: a bad value before an unknown key is the one reported
        ("engine:\n  min_samples: x\n  bogus: 1\n", 2, "engine.min_samples", "must be a number, got 'x'"),
    ],
)
def test_errors_name_the_line_and_field(text: str, line: int, field: str, message: str) -> None:
    assert_fails(text, line, field, message)
