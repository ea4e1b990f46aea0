"""The ``engine`` section: how the detector batches, bounds and budgets its work (:class:`EngineSettings`).

Example::

    engine:
      batch_seconds: 5          # verdicts are re-read at most this often (event time) ...
      max_batch_seconds: 30     # ... and at least this often
      cusum_step_s: 30          # change detectors fold evidence at most this often (event time)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollguard.settings.checks import Check, Locator, fill, mapping, positive, probability


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """How the engine batches, bounds and budgets its work.

    ``cusum_step_s`` is the event-time grid of the change detectors (the paired onset CUSUMs of the
    canary phase, the control's drift CUSUMs and the post-rollout CUSUMs): each folds its evidence
    at most once per grid cell, so its false-alarm threshold log(K·H/α) counts H = ⌊horizon /
    step⌋ + 1 updates (``canary_horizon_s``, ``drift_horizon_s``, ``post_rollout_period_s``) instead
    of one per possible batch. A coarser grid lowers the threshold by log(step ratio) and delays an
    alarm by at most one step; the default equals ``max_batch_seconds``, the batch pace at moderate
    traffic, so there it delays nothing. Cells are at least ``batch_seconds`` wide.

    ``promotion_silence_s``: in the ``auto`` phase a rollout counts as promoted (the new version at
    100%) when its events say so (``canary_weight`` 1) or when the arms present say so: no control
    request for this long in event time while at least ``min_samples`` canary requests arrived. At a
    split w, that many canary requests in a row happen by chance with probability w^min_samples
    (below 3e-5 up to w = 0.9 at the defaults).

    ``dedup_window_s`` / ``dedup_max_ids``: an event whose ``event_id`` was already seen in the last
    ``dedup_window_s`` of its rollout's event time is a duplicate (an at-least-once producer's retry)
    and is not counted again; at most ``dedup_max_ids`` ids are kept per rollout (the oldest go first).
    """

    batch_seconds: float = 5.0
    min_batch_events: int = 2000
    max_batch_seconds: float = 30.0
    min_samples: int = 100
    cohort_ttl_s: float = 3600.0
    max_cohorts_per_rollout: int = 32
    max_quality_keys: int = 4
    whole_rollout_alpha_share: float = 0.5
    baseline_window_s: float = 600.0
    drift_horizon_s: float = 86400.0
    canary_horizon_s: float = 14400.0
    post_rollout_period_s: float = 86400.0
    unit_filter_bits: int = 1 << 20
    cusum_step_s: float = 30.0
    promotion_silence_s: float = 300.0
    dedup_window_s: float = 60.0
    dedup_max_ids: int = 200_000

    @property
    def cusum_grid_s(self) -> float:
        """The change detectors' update grid: ``cusum_step_s``, at least ``batch_seconds``."""
        return max(self.cusum_step_s, self.batch_seconds)


def parse_engine(raw: Any, loc: Locator) -> EngineSettings:
    """The ``engine`` section (``None`` or absent: the defaults); numbers must be at least 0, and above 0
    where zero would stall batching, empty every cohort or make the change grid degenerate."""
    checks: dict[str, Check] = {
        "batch_seconds": lambda v, p: positive(v, p, loc),
        "min_samples": lambda v, p: positive(v, p, loc, integer=True),
        "max_cohorts_per_rollout": lambda v, p: positive(v, p, loc, integer=True),
        "cusum_step_s": lambda v, p: positive(v, p, loc),
        "promotion_silence_s": lambda v, p: positive(v, p, loc),
        "whole_rollout_alpha_share": lambda v, p: probability(v, p, loc),
        "dedup_max_ids": lambda v, p: positive(v, p, loc, integer=True),
    }
    return fill(EngineSettings(), mapping(raw, "engine", loc), "engine", loc, checks)
