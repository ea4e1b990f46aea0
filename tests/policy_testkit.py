"""Builders for the policy tests: verdict changes as the core emits them, acks and operator actions."""

from __future__ import annotations

from typing import Any

import yaml

from rollguard.domain.cohorts import cohort_key, parse_cohort_key
from rollguard.policy.commands.signing import signed
from rollguard.policy.policy import Output, Policy
from rollguard.settings.config import parse_config

T0 = 1767225600.0  # 2026-01-01T00:00:00Z
ROLLOUT = "r1"

# (control, canary, margin, relative) per metric for a "regressed" verdict: a clear effect.
_BAD: dict[str, tuple[float, float, float, bool]] = {
    "error_rate": (0.01, 0.03, 0.005, False),
    "timeout_rate": (0.01, 0.03, 0.005, False),
    "refusal_rate": (0.03, 0.08, 0.01, False),
    "format_invalid_rate": (0.015, 0.06, 0.01, False),
    "latency_ms.p95": (2000.0, 2800.0, 0.10, True),
    "latency_ms.mean": (800.0, 1000.0, 0.10, True),
    "quality.eval_score.mean": (0.82, 0.76, 0.03, True),
    "cost_usd.mean": (0.002, 0.0025, 0.10, True),
    "tokens_out.mean": (200.0, 300.0, 0.15, True),
}


def verdict(
    metric: str,
    cohort: str = "*",
    state: str = "regressed",
    ts: float = T0,
    rollout: str = ROLLOUT,
    *,
    window: str | None = None,
    phase: str = "canary",
    previous: str | None = "insufficient",
    n_canary: int | None = None,
    scale: float | None = None,
    **evidence: Any,
) -> dict[str, Any]:
    """A verdict change with plausible evidence for ``state`` (worse, equal, or undecided)."""
    if n_canary is None:  # the whole rollout carries more traffic than any of its cohorts
        n_canary = 4000 if cohort == "*" else 1000 // cohort.count("=")
    control, bad, margin, relative = _BAD.get(metric, (1.0, 1.3, 0.1, True))
    if scale is None:  # a whole rollout regressed through one cohort shows a diluted effect
        scale = 0.3 if cohort == "*" else 1.0
    bad = control + (bad - control) * scale
    canary = {"regressed": bad, "non_inferior": control, "insufficient": control + (bad - control) / 10}[
        state
    ]
    higher_better = metric.startswith("quality.")
    effect = (control - canary) if higher_better else (canary - control)
    shift = margin * abs(control) if relative else margin
    half = {"regressed": 0.3, "non_inferior": 0.3, "insufficient": 2.0}[state] * abs(effect or shift)
    lo = effect - shift - half if state != "non_inferior" else -shift - half
    hi = effect - shift + half if state != "non_inferior" else -shift / 2
    ev: dict[str, Any] = {
        "n_control": n_canary * 9,
        "n_canary": n_canary,
        "control": control,
        "canary": canary,
        "effect": effect,
        "relative_effect": effect / abs(control),
        "interval": [lo, hi],
        "margin": margin,
        "margin_relative": relative,
        "statistic": 12.0,
        "threshold": 9.2,
        "alpha": 1e-4,
        "method": "mixture-sprt-cs",
    }
    if window is not None:
        ev["window"] = window
    ev.update(evidence)
    return {
        "kind": "verdict",
        "ts": ts,
        "rollout_id": rollout,
        "cohort": cohort,
        "scope": parse_cohort_key(cohort),
        "metric": metric,
        "phase": phase,
        "state": state,
        "previous": previous,
        "evidence": ev,
    }


def srm(ts: float = T0, rollout: str = ROLLOUT) -> dict[str, Any]:
    ev = {
        "units": 20000,
        "observed_canary": 1700,
        "expected_canary": 2000,
        "p_value": 1e-6,
        "alpha": 0.001,
        "method": "sequential-srm-mixture",
    }
    return {
        "kind": "srm",
        "ts": ts,
        "rollout_id": rollout,
        "cohort": "*",
        "scope": {},
        "metric": "sample_ratio",
        "phase": "canary",
        "state": "unhealthy",
        "previous": "healthy",
        "evidence": ev,
    }


def drift(
    metric: str, cohort: str, state: str = "drifted", ts: float = T0, rollout: str = ROLLOUT
) -> dict[str, Any]:
    ev = {
        "method": "cusum-bernoulli",
        "reference": 0.01,
        "statistic": 15.0,
        "threshold": 14.0,
        "arm": "control",
    }
    return {
        "kind": "drift",
        "ts": ts,
        "rollout_id": rollout,
        "cohort": cohort,
        "scope": parse_cohort_key(cohort),
        "metric": metric,
        "phase": "canary",
        "state": state,
        "previous": "stable" if state == "drifted" else "drifted",
        "evidence": ev,
    }


def reset(ts: float, rollout: str = ROLLOUT, to: str = "v3") -> dict[str, Any]:
    return {
        "kind": "rollout",
        "ts": ts,
        "rollout_id": rollout,
        "cohort": "*",
        "scope": {},
        "metric": "",
        "phase": "canary",
        "state": "reset",
        "previous": None,
        "evidence": {"reason": "canary variant changed", "from": "v2", "to": to},
    }


def policy(yaml_text: str = "", key: bytes | None = None, *, group_wait: bool = False) -> Policy:
    """A policy from YAML; sub-cohort alerts are told at once unless ``group_wait`` (the product's
    default waits a little for a parent alert, see ``alerts.group_wait_s``) or the YAML sets it."""
    data = yaml.safe_load(yaml_text) or {}
    alerts = data.setdefault("alerts", {}) if not group_wait else {}
    if not group_wait and "group_wait_s" not in alerts:
        alerts["group_wait_s"] = {"warning": 0, "info": 0}
    return Policy(parse_config(yaml.safe_dump(data) if data else ""), signing_key=key)


def ack(
    command: dict[str, Any], status: str = "applied", at: float | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "command_id": command["command_id"],
        "rollout_id": command["rollout_id"],
        "status": status,
        "at": command["issued_at"] + 5 if at is None else at,
        **extra,
    }


_OP_SEQ = [0]


def operator(
    action: str,
    key: bytes | None = None,
    *,
    by: str = "alice",
    rollout: str = ROLLOUT,
    issued_at: float = T0,
    **params: Any,
) -> dict[str, Any]:
    """An operator action as a command v1 on the control topic (signed when ``key`` is given)."""
    _OP_SEQ[0] += 1
    cmd: dict[str, Any] = {
        "schema_version": 1,
        "command_id": f"op-{action}-{_OP_SEQ[0]}",
        "rollout_id": rollout,
        "scope": {},
        "action": action,
        "issued_at": issued_at,
        "expires_at": issued_at + 3600,
        "dry_run": False,
        "issued_by": by,
        "operator": params,
    }
    return signed(cmd, key) if key else {**cmd, "signature": ""}


def firing(out: Output) -> list[dict[str, Any]]:
    return [a for a in out.alerts if a["status"] == "firing"]


def resolved(out: Output) -> list[dict[str, Any]]:
    return [a for a in out.alerts if a["status"] == "resolved"]


def scopes(records: list[dict[str, Any]]) -> list[str]:
    return [cohort_key(r["scope"]) for r in records]
