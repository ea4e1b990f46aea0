"""Read the eval gate reports the config names (``readiness.eval_gate_reports``) for the core.

The core reads no files: replay and the worker call :func:`read_eval_gates` at start and hand each
rollout's :class:`~rollguard.policy.readiness.eval_gate.EvalGateOutcome` to the pipelines (through their
shared state). A report is what ``rollguard gate --out`` writes: a JSON object whose ``result`` is
``pass``, ``regression`` or ``inconclusive``. A missing file is ``missing``; anything else that is not
such a report is ``unreadable``, with why — never an exception: a bad report makes a rollout not ready,
it does not stop rollguard.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from rollguard.detect.eval_gate import EXIT
from rollguard.domain.events import excerpt
from rollguard.policy.readiness.eval_gate import EvalGateOutcome
from rollguard.settings.config import Config


def read_eval_gate(path: str | Path) -> EvalGateOutcome:
    """The outcome of one report file."""
    shown = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return EvalGateOutcome(shown, "missing")
    except OSError as exc:
        return EvalGateOutcome(shown, "unreadable", exc.strerror or str(exc))
    try:
        report = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return EvalGateOutcome(shown, "unreadable", f"not JSON: {excerpt(str(exc), 120, quote=False)}")
    if not isinstance(report, dict) or report.get("result") not in EXIT:
        got = report.get("result") if isinstance(report, dict) else report
        return EvalGateOutcome(
            shown, "unreadable", f"not a `rollguard gate --out` report (result {excerpt(got)})"
        )
    tests = report.get("tests")
    return EvalGateOutcome(shown, str(report["result"]), tests=tests if isinstance(tests, int) else None)


def read_eval_gates(config: Config) -> dict[str, EvalGateOutcome]:
    """Rollout id → outcome, for every rollout that names a report (``*`` included)."""
    return {rid: read_eval_gate(r.path) for rid, r in sorted(config.readiness.eval_gate_reports.items())}
