"""What one pre-flight check says: its state, the evidence, and what would satisfy it.

States: ``met``; ``unmet`` (it failed and stays failed until what would satisfy it happens);
``pending`` (not decided yet, e.g. a rehearsal waiting for its ack); ``off`` (not evaluated: switched
off, or nothing to check). Only ``met`` and ``off`` count as satisfied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

SATISFIED: Final = frozenset({"met", "off"})


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check at one moment. ``summary`` is what a change of readiness is judged on (counts that
    grow with every batch are evidence, not a change)."""

    check: str  # revert | baselines | eval_gate
    mode: str  # block | warn | off
    state: str  # met | unmet | pending | off
    evidence: str
    to_satisfy: str
    summary: str = ""
    details: tuple[dict[str, Any], ...] = ()

    @property
    def satisfied(self) -> bool:
        return self.state in SATISFIED

    @property
    def blocks(self) -> bool:
        return self.mode == "block" and not self.satisfied

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.check,
            "mode": self.mode,
            "state": self.state,
            "evidence": self.evidence,
            "to_satisfy": self.to_satisfy,
        }
        if self.details:
            out["details"] = [dict(d) for d in self.details]
        return out

    def change_key(self) -> tuple[str, str, str, str]:
        return (self.check, self.mode, self.state, self.summary or self.evidence)


def off(check: str, mode: str, why: str) -> CheckResult:
    return CheckResult(check, mode, "off", why, "")
