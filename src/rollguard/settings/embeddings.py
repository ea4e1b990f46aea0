"""The ``embeddings`` and ``shadow`` sections: semantic drift of answers and the shadow comparison.

The defaults are the product's behaviour with no config at all: semantic drift is on whenever events
carry ``response_text`` and the model is installed (``enabled: auto``), with a budget that a 2-core
worker can afford next to the rest of the detector.

Example::

    embeddings:
      enabled: auto                 # auto | true | false
      model_config: models/embedding.yaml
      budget_per_s: 20              # embeddings per second of event time, per worker
      margin: 0.25                  # drift that matters: Mahalanobis distance between arm centroids
      stratify: [input_class]       # sampling strata (default: every segment dimension)
    shadow:
      max_wait_s: 30                # event time a partner may lag before the event counts as unpaired
      margins: {latency_ms: 0.1, failure_rate: 0.005}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

from rollguard.settings.checks import (
    Check,
    Locator,
    choice,
    fill,
    mapping,
    name_list,
    only,
    positive,
    probability,
)

ENABLED: Final = ("auto", "true", "false")
SHADOW_MARGINS: Final[dict[str, float]] = {
    "embedding": 0.25,  # Mahalanobis distance between shadow and live answers (paired)
    "latency_ms": 0.10,  # relative: shadow slower than live by more than 10 %
    "tokens_out": 0.15,
    "cost_usd": 0.10,
    "failure_rate": 0.005,  # absolute: shadow fails (error, timeout) 0.5 points more often than live
    "refusal_rate": 0.01,  # absolute: shadow refuses 1 point more often
}


@dataclass(frozen=True, slots=True)
class EmbeddingSettings:
    """Budgeted embedding of responses and the per-cohort semantic drift test.

    ``budget_per_s`` caps embeddings per second of *event time* per worker (so a replay embeds what a
    live worker would have); ``margin`` is the Mahalanobis distance between the arms' feature
    centroids that counts as drift; ``alpha`` is the false-alarm budget of all semantic tests of one
    rollout (split over its cohort slots like the scalar metrics, half to the cumulative test, half
    to the recent-window test whose windows start every ``onset_step_s`` and last ``onset_window_s``
    over a monitored ``onset_horizon_s``). ``model_config`` and ``reference_dir`` are paths relative to
    the working directory (``models/`` of the repository by default).
    """

    enabled: str = "auto"
    model_config: str = "models/embedding.yaml"
    reference_dir: str = "models/reference"
    budget_per_s: float = 20.0
    burst_s: float = 10.0
    batch_size: int = 256
    max_batch_delay_s: float = 2.0
    stratify: tuple[str, ...] | None = None
    max_cells: int = 64
    min_cell_share: float = 0.02
    max_control_ratio: float = 4.0
    rate_half_life_s: float = 60.0
    recompute_s: float = 5.0
    alpha: float = 0.001
    margin: float = 0.25
    min_samples: int = 50
    warmup: int = 256
    onset_step_s: float = 60.0
    onset_window_s: float = 900.0
    onset_horizon_s: float = 14400.0
    pca_components: int = 16
    codebook_size: int = 12
    seed: int = 0


@dataclass(frozen=True, slots=True)
class ShadowSettings:
    """Pairing of shadow (dual-write) events with their live request, and the paired tests.

    ``embed_share`` is the share of the embedding budget spent on shadow pairs while a rollout has them.
    """

    enabled: bool = True
    max_wait_s: float = 30.0
    max_pending: int = 20_000
    embed_share: float = 0.25
    alpha: float = 0.001
    min_pairs: int = 30
    margins: Mapping[str, float] = field(default_factory=lambda: dict(SHADOW_MARGINS))


_POSITIVE: Final = frozenset(
    {"budget_per_s", "burst_s", "batch_size", "max_cells", "max_control_ratio", "rate_half_life_s",
     "recompute_s", "margin", "min_samples", "warmup", "onset_step_s", "onset_window_s", "onset_horizon_s",
     "pca_components", "codebook_size", "max_wait_s", "max_pending", "min_pairs"}
)  # fmt: skip
_PROBABILITIES: Final = frozenset({"alpha", "min_cell_share", "embed_share"})


def _number_checks(defaults: EmbeddingSettings | ShadowSettings, loc: Locator) -> dict[str, Check]:
    """The numbers of a section that must be positive or a probability (any other: at least 0)."""

    def above_zero(integer: bool) -> Check:
        return lambda v, p: positive(v, p, loc, integer=integer)

    checks: dict[str, Check] = {}
    for f in fields(defaults):
        if f.name in _POSITIVE:
            checks[f.name] = above_zero(type(getattr(defaults, f.name)) is int)
        elif f.name in _PROBABILITIES:
            checks[f.name] = lambda v, p: probability(v, p, loc)
    return checks


def parse_embeddings(raw: Any, loc: Locator) -> EmbeddingSettings:
    """The ``embeddings`` section (``None`` or absent: the defaults)."""
    defaults = EmbeddingSettings()
    checks = _number_checks(defaults, loc)
    checks["enabled"] = lambda v, p: choice(str(v).lower() if isinstance(v, bool) else v, p, loc, ENABLED)
    checks["stratify"] = lambda v, p: None if v is None else name_list(v, p, loc, what="segment dimensions")
    out = fill(defaults, mapping(raw, "embeddings", loc), "embeddings", loc, checks)
    if out.warmup < 2 * out.codebook_size:
        raise loc.error(
            "embeddings.warmup", f"must be at least twice codebook_size ({2 * out.codebook_size})"
        )
    return out


def parse_shadow(raw: Any, loc: Locator) -> ShadowSettings:
    """The ``shadow`` section (``None`` or absent: the defaults)."""
    defaults = ShadowSettings()
    checks = _number_checks(defaults, loc)
    checks["margins"] = lambda v, p: _shadow_margins(v, p, loc)
    return fill(defaults, mapping(raw, "shadow", loc), "shadow", loc, checks)


def _shadow_margins(value: Any, path: str, loc: Locator) -> dict[str, float]:
    """The default margins of the paired shadow tests with the given ones replaced."""
    margins = dict(SHADOW_MARGINS)
    for key, margin in mapping(value, path, loc).items():
        only([key], SHADOW_MARGINS, path, loc, what="metric")
        margins[key] = positive(margin, f"{path}.{key}", loc)
    return margins
