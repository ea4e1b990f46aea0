"""Typed settings of the config sections ``embeddings`` and ``shadow``.

The defaults are the product's behaviour with no config at all: semantic drift is on whenever events
carry ``response_text`` and the model is installed (``enabled: auto``), with a budget that a 2-core
worker can afford next to the rest of the detector. Parsing reports ``file:line: field: message``
like the rest of the config: the loader hands each section over with its line table (any object
with ``error(path, message) -> Exception``).

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

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

from rollguard.settings.checks import Locator, boolean, mapping, number, only, text

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


def parse_embeddings(raw: Any, loc: Locator) -> EmbeddingSettings:
    """The ``embeddings`` section (``None`` or absent: the defaults)."""
    data = mapping(raw, "embeddings", loc)
    values = _scalars(data, EmbeddingSettings(), "embeddings", loc, special={"enabled", "stratify"})
    if "enabled" in data:
        value = data["enabled"]
        text = str(value).lower() if isinstance(value, bool) else value
        if text not in ENABLED:
            raise loc.error("embeddings.enabled", f"must be one of auto, true, false; got {value!r}")
        values["enabled"] = text
    if "stratify" in data:
        value = data["stratify"]
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) and v for v in value)
        ):
            raise loc.error("embeddings.stratify", "must be a list of segment dimensions")
        values["stratify"] = None if value is None else tuple(value)
    out = replace(EmbeddingSettings(), **values)
    if out.warmup < 2 * out.codebook_size:
        raise loc.error(
            "embeddings.warmup", f"must be at least twice codebook_size ({2 * out.codebook_size})"
        )
    return out


def parse_shadow(raw: Any, loc: Locator) -> ShadowSettings:
    """The ``shadow`` section (``None`` or absent: the defaults)."""
    data = mapping(raw, "shadow", loc)
    values = _scalars(data, ShadowSettings(), "shadow", loc, special={"margins"})
    if "margins" in data:
        margins = dict(SHADOW_MARGINS)
        for key, value in mapping(data["margins"], "shadow.margins", loc).items():
            path = f"shadow.margins.{key}"
            if key not in SHADOW_MARGINS:
                raise loc.error(path, f"unknown metric (expected one of: {', '.join(SHADOW_MARGINS)})")
            margins[key] = number(value, path, loc, minimum=-math.inf)
            if margins[key] <= 0:
                raise loc.error(path, "must be positive")
        values["margins"] = margins
    return replace(ShadowSettings(), **values)


def _scalars(
    data: Mapping[str, Any], defaults: Any, section: str, loc: Locator, special: set[str]
) -> dict[str, Any]:
    """Check every plain setting against the type of its default."""
    names = {f.name for f in fields(defaults)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{section}.{key}"
        only([key], names, section, loc)  # key by key: a bad value before an unknown key is reported first
        if key in special:
            continue
        default = getattr(defaults, key)
        if isinstance(default, bool):
            values[key] = boolean(value, path, loc)
        elif isinstance(default, str):
            values[key] = text(value, path, loc)
        else:
            setting = number(value, path, loc, minimum=-math.inf)
            if isinstance(default, int) and not setting.is_integer():
                raise loc.error(path, f"must be a whole number, got {value!r}")
            if key in _PROBABILITIES and not 0.0 < setting < 1.0:
                raise loc.error(path, f"must be strictly between 0 and 1, got {value!r}")
            if key in _POSITIVE and setting <= 0:
                raise loc.error(path, f"must be positive, got {value!r}")
            if setting < 0:
                raise loc.error(path, f"must be at least 0, got {value!r}")
            values[key] = int(setting) if isinstance(default, int) else setting
    return values
