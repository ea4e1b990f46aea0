"""The embeddings and shadow sections: semantic drift and shadow comparison settings, checked at start."""

from __future__ import annotations

import pytest
from config_errors import assert_fails

from rollguard.settings import parse_config
from rollguard.settings.embeddings import SHADOW_MARGINS, EmbeddingSettings, ShadowSettings


def test_sections_parse_into_typed_settings() -> None:
    cfg = parse_config(
        """
embeddings:
  enabled: false
  budget_per_s: 50
  stratify: [input_class]
  margin: 0.4
  batch_size: 128.0
shadow:
  max_wait_s: 10
  margins: {latency_ms: 0.2}
"""
    )
    assert cfg.embeddings.enabled == "false" and cfg.embeddings.budget_per_s == 50.0
    assert cfg.embeddings.stratify == ("input_class",) and cfg.embeddings.margin == 0.4
    assert cfg.embeddings.batch_size == 128 and isinstance(cfg.embeddings.batch_size, int)
    assert cfg.shadow.max_wait_s == 10.0 and cfg.shadow.margins["latency_ms"] == 0.2
    assert cfg.shadow.margins["failure_rate"] == 0.005
    assert parse_config("").embeddings == EmbeddingSettings() and parse_config("").shadow == ShadowSettings()


def test_enabled_takes_auto_or_a_yaml_boolean_and_stratify_may_be_null() -> None:
    assert parse_config("embeddings: {enabled: true}").embeddings.enabled == "true"
    assert parse_config("embeddings: {enabled: auto, stratify: null}").embeddings.stratify is None
    assert dict(parse_config("shadow: {margins: null}").shadow.margins) == SHADOW_MARGINS


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("embeddings: [1]", 1, "embeddings", "must be a mapping, got list"),
        (
            "embeddings:\n  enabled: maybe\n",
            2,
            "embeddings.enabled",
            "must be one of auto, true, false, got 'maybe'",
        ),
        ("embeddings:\n  budget_per_s: -3\n", 2, "embeddings.budget_per_s", "must be positive, got -3"),
        ("embeddings:\n  batch_size: 0", 2, "embeddings.batch_size", "must be positive, got 0"),
        (
            "embeddings:\n  budget: 3\n",
            2,
            "embeddings.budget",
            "unknown setting (expected one of: alpha, batch_size, "
            "budget_per_s, burst_s, codebook_size, enabled, "
            "margin, max_batch_delay_s, max_cells, max_control_ratio, "
            "min_cell_share, min_samples, model_config, "
            "onset_horizon_s, onset_step_s, onset_window_s, pca_components, rate_half_life_s, recompute_s, "
            "reference_dir, seed, stratify, warmup)",
        ),
        ("embeddings:\n  alpha: 2\n", 2, "embeddings.alpha", "must be strictly between 0 and 1, got 2"),
        ("embeddings:\n  warmup: 4\n", 2, "embeddings.warmup", "must be at least twice codebook_size (24)"),
        (
            "embeddings:\n  stratify: input_class",
            2,
            "embeddings.stratify",
            "must be a list of segment dimensions",
        ),
        (
            "embeddings:\n  model_config: ''",
            2,
            "embeddings.model_config",
            "must be a non-empty string, got ''",
        ),
        ("embeddings:\n  seed: -1", 2, "embeddings.seed", "must be at least 0, got -1"),
        # file order: a bad value before an unknown key is the one reported
        (
            "embeddings:\n  batch_size: 2.5\n  bogus: 1\n",
            2,
            "embeddings.batch_size",
            "must be a whole number, got 2.5",
        ),
        (
            "shadow:\n  margins:\n    latency: 0.1\n",
            3,
            "shadow.margins.latency",
            "unknown metric (expected one of: cost_usd, embedding, "
            "failure_rate, latency_ms, refusal_rate, tokens_out)",
        ),
        ("shadow:\n  margins:\n    latency_ms: 0", 3, "shadow.margins.latency_ms", "must be positive, got 0"),
        ("shadow:\n  margins: 0.1", 2, "shadow.margins", "must be a mapping, got float"),
        ("shadow:\n  enabled: yes please\n", 2, "shadow.enabled", "must be true or false"),
        (
            "shadow:\n  bogus: 1\n",
            2,
            "shadow.bogus",
            "unknown setting (expected one of: alpha, embed_share, "
            "enabled, margins, max_pending, max_wait_s, min_pairs)",
        ),
        ("shadow:\n  embed_share: 1", 2, "shadow.embed_share", "must be strictly between 0 and 1, got 1"),
        ("shadow:\n  max_pending: 0", 2, "shadow.max_pending", "must be positive, got 0"),
    ],
)
def test_errors_name_the_line_and_field(text: str, line: int, field: str, message: str) -> None:
    assert_fails(text, line, field, message)
