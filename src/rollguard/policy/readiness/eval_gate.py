"""Eval gate attached: the rollout's named ``rollguard gate --out`` report passed.

The core reads no files: an adapter (replay, worker) reads the report named under
``readiness.eval_gate_reports`` and hands over its outcome (:class:`EvalGateOutcome`). A report that is
missing makes the rollout not ready when the config says it is required; one that cannot be read, or
whose result is ``regression`` or ``inconclusive``, always does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from rollguard.policy.readiness.result import CheckResult, off
from rollguard.settings.readiness import EvalGateReport

RESULTS: Final = ("pass", "regression", "inconclusive", "missing", "unreadable")


@dataclass(frozen=True, slots=True)
class EvalGateOutcome:
    """What the adapter found at the report's path: the gate's ``result`` (pass, regression,
    inconclusive), ``missing`` (no file) or ``unreadable`` (with why in ``detail``)."""

    path: str
    result: str
    detail: str = ""
    tests: int | None = None

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> EvalGateOutcome:
        return cls(**state)


def eval_gate_check(mode: str, report: EvalGateReport | None, outcome: EvalGateOutcome | None) -> CheckResult:
    if mode == "off":
        return off("eval_gate", mode, "switched off (readiness.eval_gate: off)")
    if report is None:
        return off(
            "eval_gate", mode, "no eval gate report named for this rollout (readiness.eval_gate_reports)"
        )
    satisfy = f"a passing report at {report.path} (`rollguard gate … --out {report.path}`)"
    if outcome is None:
        return CheckResult("eval_gate", mode, "pending", f"report {report.path} not read yet", satisfy)
    tests = f", {outcome.tests} tests" if outcome.tests is not None else ""
    if outcome.result == "pass":
        return CheckResult("eval_gate", mode, "met", f"eval gate passed ({outcome.path}{tests})", "",
                           summary="pass")  # fmt: skip
    if outcome.result == "missing":
        if not report.required:
            return CheckResult("eval_gate", mode, "met", f"no report at {outcome.path} (not required)", "",
                               summary="missing, not required")  # fmt: skip
        return CheckResult("eval_gate", mode, "unmet", f"eval gate report missing: no file at {outcome.path}",
                           satisfy, summary="missing")  # fmt: skip
    if outcome.result == "unreadable":
        return CheckResult("eval_gate", mode, "unmet",
                           f"eval gate report {outcome.path} cannot be read: {outcome.detail}", satisfy,
                           summary="unreadable")  # fmt: skip
    return CheckResult("eval_gate", mode, "unmet",
                       f"eval gate failed: result {outcome.result} ({outcome.path}{tests})", satisfy,
                       summary=outcome.result)  # fmt: skip
