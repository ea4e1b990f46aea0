"""Shadow clean before live: when the new version answered in shadow before any live canary traffic, the
shadow run must have looked clean by the time live traffic started.

The shadow comparison (:mod:`rollguard.embeddings.shadow`) pairs each shadow answer with the live answer
to the same request and decides paired tests (``shadow.latency_ms``, ``shadow.failure_rate``, …, and
``shadow.embedding`` with embeddings on); their verdicts reach the policy like any other. At the canary's
first event the pipeline hands over what they said then (:class:`ShadowFacts`): the check is ``met`` when
no shadow verdict was ``regressed`` in any cohort and every paired test of the whole rollout that had
been decided was ``non_inferior`` (at least one was); ``unmet`` otherwise, naming what diverged or is
still undecided. A rollout without shadow answers before its live canary, or whose shadow started less
than ``max_batch_seconds`` before it (too early for any verdict: they started together), has the check
``off``; while the shadow runs and live traffic has not started it is ``pending``.

>>> facts = ShadowFacts(shadow_events=500, at_live={"*": {"shadow.latency_ms": "non_inferior"}})
>>> shadow_check("block", facts).state
'met'
>>> facts.at_live["input_class=coding"] = {"shadow.failure_rate": "regressed"}
>>> shadow_check("block", facts).evidence
'shadow diverged from live before live traffic: shadow.failure_rate in input_class=coding'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from rollguard.domain.cohorts import WHOLE
from rollguard.policy.readiness.result import CheckResult, off

SATISFY = (
    "a shadow run whose paired comparisons are non-inferior, with no divergence, before live canary traffic"
)


@dataclass(slots=True)
class ShadowFacts:
    """Shadow answers seen before the canary's first live event, and the shadow verdicts at that moment
    (cohort → metric → state; None until live canary traffic starts)."""

    shadow_events: int = 0
    at_live: dict[str, dict[str, str]] | None = None
    live_at: float | None = None
    first_at: float | None = None  # the first shadow answer
    together: bool = False  # shadow and live started within one batch: no shadow run before live to judge

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ShadowFacts:
        return cls(**state)


def shadow_check(mode: str, facts: ShadowFacts | None) -> CheckResult:
    if mode == "off":
        return off("shadow", mode, "switched off (readiness.shadow: off)")
    if facts is None or facts.shadow_events == 0:
        return off("shadow", mode, "no shadow answers before live canary traffic: nothing to judge")
    if facts.together:
        return off("shadow", mode, "shadow and live canary traffic started together: no shadow run to judge")
    if facts.at_live is None:
        return CheckResult(
            "shadow", mode, "pending",
            f"{facts.shadow_events} shadow answer(s) so far; judged when live canary traffic starts",
            SATISFY, summary="shadowing",
        )  # fmt: skip
    diverged = sorted(
        f"{metric} in {'the whole rollout' if cohort == WHOLE else cohort}"
        for cohort, metrics in facts.at_live.items()
        for metric, state in metrics.items()
        if state == "regressed"
    )
    if diverged:
        return CheckResult(
            "shadow", mode, "unmet",
            "shadow diverged from live before live traffic: " + ", ".join(diverged[:5])
            + (f" and {len(diverged) - 5} more" if len(diverged) > 5 else ""),
            SATISFY, summary="diverged " + ",".join(diverged),
        )  # fmt: skip
    whole = facts.at_live.get(WHOLE, {})
    undecided = sorted(m for m, s in whole.items() if s != "non_inferior")
    if not whole or undecided:
        what = ", ".join(f"{m} {whole[m]}" for m in undecided) if undecided else "no paired comparison yet"
        return CheckResult(
            "shadow", mode, "unmet",
            f"shadow not shown clean when live traffic started ({facts.shadow_events} answers): {what}",
            SATISFY, summary="undecided " + ",".join(undecided),
        )  # fmt: skip
    names = ", ".join(sorted(whole))
    return CheckResult(
        "shadow", mode, "met",
        f"{facts.shadow_events} shadow answers before live traffic; non-inferior: {names}", "",
        summary="clean",
    )  # fmt: skip
