"""The ``readiness`` section: what a rollout must have before it counts as ready (:class:`ReadinessSettings`).

Five pre-flight checks, each ``block`` (an unmet check makes the rollout "not ready"), ``warn`` (listed
as a warning, the rollout can still be ready) or ``off`` (not evaluated):

- ``revert`` (default ``block``): at a rollout's first event rollguard issues a signed dry-run
  ``rollback`` (a rehearsal); a controller's ``dry_run_ok`` within ``rehearsal_timeout_s`` of event time
  satisfies it. Blocking by default because a canary whose revert path was never exercised is the
  one that cannot be stopped when it regresses.
- ``baselines`` (default ``warn``): every cohort seen in control traffic has at least ``min_samples``
  control observations per metric family over at least ``min_span_s`` before the canary's first event.
  A warning by default: most deployments start canary and control together, and a thin baseline
  widens intervals rather than making verdicts wrong.
- ``eval_gate`` (default ``block``, only for rollouts that name a report under ``eval_gate_reports``):
  the named ``rollguard gate --out`` report passed. A rollout that names none has the check ``off``.
- ``shadow`` (default ``block``, only for rollouts whose new version answered in shadow before any
  live canary traffic): when live traffic started, no shadow verdict was ``regressed`` and the paired
  comparisons of the whole rollout were non-inferior. Rollouts without such a shadow run have it ``off``.
- ``bundled`` (default ``warn``): the canary differs from control in at most one of the
  ``variant_parts`` its events name (model, prompt, tools, …); a bundled change is listed with its
  parts. A warning by default: shipping several parts together is sometimes deliberate, but the
  alerts of such a rollout cannot say which part regressed. Events without parts leave it ``off``.

Readiness is reported (``/status``, replay outputs, a signed ``readiness`` record on the control topic);
rollguard never acts on it by itself.

Example::

    readiness:
      revert: block
      baselines: warn
      shadow: block
      bundled: warn
      rehearsal_timeout_s: 300
      min_samples: {guardrail: 500, latency: 200}   # or one number for every family
      min_span_s: 900
      eval_gate_reports:
        checkout-v2: {path: reports/checkout-v2.gate.json, required: true}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from rollguard.domain.metrics import FAMILIES
from rollguard.settings.checks import (
    Locator,
    boolean,
    choice,
    fill,
    mapping,
    number,
    only,
    positive,
    required,
    text,
    whole,
)

MODES: Final = ("block", "warn", "off")
CHECKS: Final = ("revert", "baselines", "eval_gate", "shadow", "bundled")


@dataclass(frozen=True, slots=True)
class EvalGateReport:
    """Where a rollout's eval gate report is (a ``rollguard gate --out`` file; relative paths are read
    from the working directory of the replay or worker) and whether its absence makes it not ready."""

    path: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class ReadinessSettings:
    revert: str = "block"
    baselines: str = "warn"
    eval_gate: str = "block"
    shadow: str = "block"
    bundled: str = "warn"
    rehearsal_timeout_s: float = 300.0
    min_samples: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(FAMILIES, 100))
    min_span_s: float = 600.0
    eval_gate_reports: Mapping[str, EvalGateReport] = field(default_factory=dict)

    def mode(self, check: str) -> str:
        """``block``, ``warn`` or ``off`` for one of :data:`CHECKS`."""
        return str(getattr(self, check))

    def report_for(self, rollout_id: str) -> EvalGateReport | None:
        return self.eval_gate_reports.get(rollout_id) or self.eval_gate_reports.get("*")


def parse_readiness(raw: Any, loc: Locator) -> ReadinessSettings:
    """The ``readiness`` section (``None`` or absent: the defaults)."""
    return fill(
        ReadinessSettings(),
        mapping(raw, "readiness", loc),
        "readiness",
        loc,
        {
            **{check: (lambda v, p: _mode(v, p, loc)) for check in CHECKS},
            "rehearsal_timeout_s": lambda v, p: positive(v, p, loc),
            "min_samples": lambda v, p: _min_samples(v, p, loc),
            "min_span_s": lambda v, p: number(v, p, loc),
            "eval_gate_reports": lambda v, p: _reports(v, p, loc),
        },
    )


def _mode(value: Any, path: str, loc: Locator) -> str:
    """``block``, ``warn`` or ``off`` (YAML reads a bare ``off`` as false: taken as ``off``)."""
    return "off" if value is False else choice(value, path, loc, MODES)


def _min_samples(value: Any, path: str, loc: Locator) -> dict[str, int]:
    """One count for every family, or a count per family (families not named keep the default)."""
    if not isinstance(value, dict):
        return dict.fromkeys(FAMILIES, whole(value, path, loc, minimum=1))
    only(value, FAMILIES, path, loc, what="metric family")
    default = ReadinessSettings().min_samples
    return {f: whole(value[f], f"{path}.{f}", loc, minimum=1) if f in value else default[f] for f in FAMILIES}


def _reports(value: Any, path: str, loc: Locator) -> dict[str, EvalGateReport]:
    """Rollout id (or ``*``) → its report: a path, or ``{path, required}``."""
    out: dict[str, EvalGateReport] = {}
    for rollout_id, raw in mapping(value, path, loc).items():
        p = f"{path}.{rollout_id}"
        if isinstance(raw, str):
            out[str(rollout_id)] = EvalGateReport(text(raw, p, loc))
            continue
        data = mapping(raw, p, loc)
        only(data, ("path", "required"), p, loc)
        required(data, ("path",), p, loc)
        out[str(rollout_id)] = EvalGateReport(
            text(data["path"], f"{p}.path", loc),
            boolean(data["required"], f"{p}.required", loc) if "required" in data else True,
        )
    return out
