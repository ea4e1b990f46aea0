"""How a rollout's false-alarm budget α is spent across cohorts and metrics.

Every verdict test of a rollout may be read after every batch, and a rollout has many: up to
``max_cohorts_per_rollout`` cohorts × every metric. The budget is split so that the chance of *any*
false "regressed" in the rollout stays ≤ α (Bonferroni over anytime-valid tests, which stay valid at
all times together):

- ``whole_rollout_alpha_share`` of α goes to the whole-rollout cohort, the rest is split evenly over
  the other cohort slots (slots are fixed in number and never reused, so cohorts that appear online
  never overspend);
- within a cohort, α is split over metric *families* by weight — guardrails (errors, timeouts,
  refusals, format) 40%, latency 30%, quality 20%, cost 10% — then evenly within the family, so the
  checks that page people get the most power; quality reserves ``max_quality_keys`` slots.

>>> from rollguard.settings import Config
>>> budget = AlphaBudget(Config())
>>> whole, segment = budget.of(Config().metrics[0])   # error_rate
>>> round(whole, 6), round(segment / whole, 4)        # 1% x 50% x 40% / 4 guardrail tests; / 31 slots
(0.0005, 0.0323)
"""

from __future__ import annotations

from typing import Final

from rollguard.domain.metrics import Family, MetricSpec
from rollguard.settings.config import Config

FAMILY_WEIGHTS: Final[dict[Family, float]] = {"guardrail": 0.4, "latency": 0.3, "quality": 0.2, "cost": 0.1}


class AlphaBudget:
    """α per test: ``of(spec) -> (alpha for the whole rollout, alpha for one segment cohort)``."""

    def __init__(self, config: Config) -> None:
        eng = config.engine
        counts: dict[Family, int] = dict.fromkeys(FAMILY_WEIGHTS, 0)
        for spec in config.metrics:
            if spec.enabled:
                counts[spec.family] += 1
        counts["quality"] += eng.max_quality_keys
        active = {f: w for f, w in FAMILY_WEIGHTS.items() if counts[f] > 0}
        total = sum(active.values())
        self._per_test = {f: config.alpha * w / total / counts[f] for f, w in active.items()}
        self._whole = eng.whole_rollout_alpha_share
        self._segments = max(eng.max_cohorts_per_rollout - 1, 1)

    def of(self, spec: MetricSpec) -> tuple[float, float]:
        per_test = self._per_test[spec.family]
        return per_test * self._whole, per_test * (1.0 - self._whole) / self._segments
