"""One rollout's readiness: its checks together, ``ready`` or ``not ready``, and the signed record.

``ready`` is true when no check in ``block`` mode is unsatisfied; an unsatisfied check in ``warn`` mode
is listed under ``warnings``. Whenever the readiness changes (ready, or a check's mode, state or what it
lists), the policy publishes a readiness record on the control topic::

    {"schema_version": 1, "kind": "readiness", "readiness_id": "rdy-…", "rollout_id": "checkout-v2",
     "sequence": 2, "at": 1767225700.0, "ready": false, "blocking": ["revert"], "warnings": [],
     "checks": [{"check": "revert", "mode": "block", "state": "unmet", "evidence": "…",
                 "to_satisfy": "…"}, …], "issued_by": "rollguard", "signature": "…"}

It is signed like a command (HMAC over its canonical JSON) so that a ramp tool can trust it, and it is
never an action: rollguard itself does nothing on it, controllers skip it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from rollguard.domain.cohorts import WHOLE
from rollguard.policy.alerts.records import digest
from rollguard.policy.alerts.rules import Condition, system_condition, system_rule
from rollguard.policy.commands.signing import signed
from rollguard.policy.readiness.baselines import BaselineFacts, baselines_check
from rollguard.policy.readiness.bundled import bundled_check
from rollguard.policy.readiness.eval_gate import EvalGateOutcome, eval_gate_check
from rollguard.policy.readiness.rehearsal import Rehearsal
from rollguard.policy.readiness.result import CheckResult
from rollguard.policy.readiness.shadow import ShadowFacts, shadow_check
from rollguard.settings.readiness import ReadinessSettings

RECORD_KIND: Final = "readiness"
REVERT_NOT_REHEARSED: Final = system_rule(
    "revert_not_rehearsed",
    "warning",
    "a rollout's dry-run rollback was not answered dry_run_ok: its revert path is not rehearsed",
)


@dataclass(slots=True)
class RolloutReadiness:
    """The pre-flight facts of one rollout and the readiness last published for it."""

    rollout_id: str
    rehearsal: Rehearsal = field(default_factory=Rehearsal)
    baselines: BaselineFacts | None = None
    eval_gate: EvalGateOutcome | None = None
    sequence: int = 0  # readiness records published
    published: list[list[str]] | None = None  # change key of the last record
    parts: dict[str, Any] | None = None  # the canary's variant parts against control's (None: not named)
    shadow: ShadowFacts = field(default_factory=ShadowFacts)

    # ------------------------------------------------------------------ the checks
    def checks(self, settings: ReadinessSettings, now: float) -> list[CheckResult]:
        return [
            self.rehearsal.check(settings.revert, now, settings.rehearsal_timeout_s),
            baselines_check(settings, self.baselines, now),
            eval_gate_check(settings.eval_gate, settings.report_for(self.rollout_id), self.eval_gate),
            shadow_check(settings.shadow, self.shadow),
            bundled_check(settings.bundled, self.parts),
        ]

    def view(self, settings: ReadinessSettings, now: float) -> dict[str, Any]:
        """What ``/status`` and the replay summary show: ready, blocking and warning checks, all checks."""
        checks = self.checks(settings, now)
        return {
            "ready": not any(c.blocks for c in checks),
            "blocking": [c.check for c in checks if c.blocks],
            "warnings": [c.check for c in checks if c.mode == "warn" and not c.satisfied],
            "checks": [c.to_dict() for c in checks],
        }

    # ------------------------------------------------------------------ outputs
    def record_if_changed(
        self, settings: ReadinessSettings, now: float, key: bytes | None, instance: str, key_id: str | None
    ) -> dict[str, Any] | None:
        """A signed readiness record when the readiness changed since the last one, else None."""
        checks = self.checks(settings, now)
        change = [list(c.change_key()) for c in checks]
        if change == self.published:
            return None
        self.published = change
        self.sequence += 1
        view = self.view(settings, now)
        record: dict[str, Any] = {
            "schema_version": 1,
            "kind": RECORD_KIND,
            "readiness_id": "rdy-" + digest(self.rollout_id, self.sequence, change, n=24),
            "rollout_id": self.rollout_id,
            "sequence": self.sequence,
            "at": now if math.isfinite(now) else None,
            **view,
            "issued_by": instance,
        }
        if key_id:
            record["key_id"] = key_id
        return signed(record, key)

    def conditions(self, settings: ReadinessSettings, now: float) -> list[Condition]:
        """rollguard's own alert while the rehearsal has failed (any mode but off; commands switched off
        for the rollout are a setting, not a failure, and raise none)."""
        if settings.revert == "off":
            return []
        since = self.rehearsal.failed_at(now, settings.rehearsal_timeout_s)
        if since is None:
            return []
        check = self.rehearsal.check(settings.revert, now, settings.rehearsal_timeout_s)
        r = REVERT_NOT_REHEARSED
        description = f"{r.description}. {check.evidence}."
        return [system_condition(r, self.rollout_id, WHOLE, since, check.evidence, description)]

    def next_due(self, settings: ReadinessSettings, now: float) -> float:
        if settings.revert == "off":
            return math.inf
        return self.rehearsal.next_due(now, settings.rehearsal_timeout_s)

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        return {
            "rollout_id": self.rollout_id,
            "rehearsal": self.rehearsal.to_state(),
            "baselines": None if self.baselines is None else self.baselines.to_state(),
            "eval_gate": None if self.eval_gate is None else self.eval_gate.to_state(),
            "sequence": self.sequence,
            "published": self.published,
            **({"parts": self.parts} if self.parts is not None else {}),
            **({"shadow": self.shadow.to_state()} if self.shadow.shadow_events else {}),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RolloutReadiness:
        baselines, gate = state["baselines"], state["eval_gate"]
        return cls(
            str(state["rollout_id"]),
            Rehearsal.from_state(state["rehearsal"]),
            None if baselines is None else BaselineFacts.from_state(baselines),
            None if gate is None else EvalGateOutcome.from_state(gate),
            int(state["sequence"]),
            state["published"],
            state.get("parts"),
            ShadowFacts.from_state(state["shadow"]) if "shadow" in state else ShadowFacts(),
        )
