"""The view model: :class:`~rollguard.report.records.RolloutRecords` → plain data the template shows.

Everything a page says is decided here (states, texts, charts), so the template only lays it out and
the report file and the live dashboard cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from rollguard.domain.cohorts import WHOLE, parse_cohort_key
from rollguard.report.charts import interval_chart
from rollguard.report.records import STATES, ChartPoint, RolloutRecords, combined_state
from rollguard.report.words import (
    explain,
    fmt_effect,
    fmt_interval,
    fmt_span,
    fmt_time,
    fmt_value,
    metric_label,
)

STATE_LABELS: Final = {
    "regressed": "regressed",
    "non_inferior": "non-inferior",
    "insufficient": "insufficient",
}
# Newest first, at most this many rows of each table (a live dashboard of a long rollout stays small).
MAX_ROWS: Final = 200


def scope_text(scope: Mapping[str, Any] | str | None) -> str:
    if isinstance(scope, str):
        return "the whole rollout" if scope == WHOLE else scope
    if not scope:
        return "the whole rollout"
    return ",".join(f"{k}={scope[k]}" for k in sorted(scope))


def _anchor(*parts: str) -> str:
    raw = "-".join(parts)
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in raw)


def _cohort_order(key: str) -> tuple[int, str]:
    return (0 if key == WHOLE else key.count(",") + 1, key)


def rollout_view(r: RolloutRecords) -> dict[str, Any]:
    """One rollout, ready for the template."""
    latest = r.latest or {}
    snapshot: Mapping[str, Any] = latest.get("snapshot") or {}
    policy: Mapping[str, Any] = latest.get("policy") or {}
    signals: Mapping[str, Any] = latest.get("signals") or {}
    clock = latest.get("clock") if isinstance(latest.get("clock"), int | float) else snapshot.get("ts")
    now = float(clock) if isinstance(clock, int | float) and math.isfinite(clock) else None
    cohorts = _cohorts(r.rollout_id, snapshot, signals, r.points)
    readiness = _readiness(policy.get("readiness"))
    thin = _thin_baselines(policy.get("readiness"))
    for c in cohorts:  # a thin whole rollout makes every cohort's baseline thin
        c["thin"] = thin.get(c["key"]) or thin.get(WHOLE)
    first = snapshot.get("cohorts") or []
    metrics = [str(m["metric"]) for m in (first[0].get("metrics") or [] if first else [])]
    whole = next((c for c in cohorts if c["key"] == WHOLE), None)
    n_control = whole["n_control"] if whole else 0
    n_canary = whole["n_canary"] if whole else 0
    regressed = [c["key"] for c in cohorts if c["worst"] == "regressed"]
    disabled = list(policy.get("disabled_scopes") or [])
    segments = [c["key"] for c in cohorts if c["key"] != WHOLE and "," not in c["key"]]
    srm = snapshot.get("srm") or {}
    return {
        "id": r.rollout_id,
        "anchor": _anchor("r", r.rollout_id),
        "phase": snapshot.get("phase") or "–",
        "health": snapshot.get("health") or ("healthy" if policy.get("healthy", True) else "unhealthy"),
        "srm": {
            "units": srm.get("units"),
            "observed": srm.get("observed_canary"),
            "expected": srm.get("expected_canary"),
            "p_value": srm.get("p_value"),
            "alpha": srm.get("alpha"),
        },
        "clock": fmt_time(now),
        "events": (r.counters or {}).get("events"),
        "n_control": n_control,
        "n_canary": n_canary,
        "canary_share": (n_canary / (n_control + n_canary)) if n_control + n_canary else None,
        "regressed": regressed,
        "disabled": disabled,
        "kept": [s for s in segments if not any(_within(s, d) for d in disabled)] if disabled else [],
        "hold": policy.get("hold"),
        "readiness": readiness,
        "level": policy.get("level", 0),
        "weight": policy.get("weight"),
        "approvals": _approvals(r, policy, now),
        "firing": [dict(a, since=None) for a in policy.get("firing") or []],
        "metrics": [{"name": m, "label": metric_label(m)} for m in metrics],
        "cohorts": cohorts,
        "details": sorted(cohorts, key=lambda c: c["worst"] != "regressed"),  # what is wrong first
        "alerts": _alerts(r.alerts),
        "commands": _commands(r, policy),
        "operators": _operators(r.audit),
        "has_snapshot": bool(snapshot),
    }


def _within(cohort: str, disabled: str) -> bool:
    """Whether ``cohort`` lies inside the disabled scope ``disabled``."""
    scope, ds = parse_cohort_key(cohort), parse_cohort_key(disabled)
    return all(scope.get(k) == v for k, v in ds.items())


def _cohorts(
    rollout_id: str, snapshot: Mapping[str, Any], signals: Mapping[str, Any], points: Sequence[ChartPoint]
) -> list[dict[str, Any]]:
    times = [p.at for p in points]
    out = []
    for cohort in sorted(snapshot.get("cohorts") or [], key=lambda c: _cohort_order(str(c["cohort"]))):
        key = str(cohort["cohort"])
        rows = []
        for m in cohort.get("metrics") or []:
            metric = str(m["metric"])
            state, window = combined_state(str(m.get("state")), (signals.get(key) or {}).get(metric))
            relative = bool(m.get("margin_relative"))
            margin = float(m.get("margin") or 0.0)
            series = [p.metrics.get(key, {}).get(metric) for p in points]
            title = f"{metric} in {scope_text(key)}: effect and interval over event time"
            lo, hi = m.get("effect_lo"), m.get("effect_hi")
            rows.append(
                {
                    "metric": metric,
                    "label": metric_label(metric),
                    "anchor": _anchor("m", rollout_id, key, metric),
                    "state": state,
                    "state_label": STATE_LABELS.get(state, state)
                    + (" (recent window)" if window == "recent" else ""),
                    "window": window,
                    "control": fmt_value(metric, m.get("control")),
                    "canary": fmt_value(metric, m.get("canary")),
                    "effect": fmt_effect(m.get("effect"), relative=relative, metric=metric),
                    "interval": fmt_interval(lo, hi, relative=relative, metric=metric) or "–",
                    "margin": fmt_effect(margin, relative=relative, metric=metric),
                    "drift": m.get("drift"),
                    "explanation": explain(m, state, window),
                    "chart": interval_chart(
                        times, series, margin=margin, relative=relative, metric=metric, title=title
                    )
                    if any(s is not None for s in series)
                    else "",
                }
            )
        worst = max((r["state"] for r in rows), key=STATES.index, default="insufficient")
        out.append(
            {
                "key": key,
                "text": scope_text(key),
                "anchor": _anchor("c", rollout_id, key),
                "n_control": int(cohort.get("n_control") or 0),
                "n_canary": int(cohort.get("n_canary") or 0),
                "worst": worst,
                "metrics": rows,  # in the grid's column order
                "cards": sorted(rows, key=lambda r: r["state"] != "regressed"),  # what is wrong first
            }
        )
    return out


def _readiness(view: Any) -> dict[str, Any] | None:
    """The rollout's pre-flight readiness (:mod:`rollguard.policy.readiness`) for the page: ready or not,
    and each check with its state, evidence and what would satisfy it."""
    if not isinstance(view, Mapping):
        return None
    checks = [
        {
            "check": str(c.get("check")),
            "mode": str(c.get("mode")),
            "state": str(c.get("state")),
            "evidence": str(c.get("evidence", "")),
            "to_satisfy": "" if c.get("state") in ("met", "off") else str(c.get("to_satisfy", "")),
        }
        for c in view.get("checks") or []
        if isinstance(c, Mapping)
    ]
    return {"ready": bool(view.get("ready")), "blocking": list(view.get("blocking") or []), "checks": checks}


def _thin_baselines(view: Any) -> dict[str, str]:
    """Cohort → its control history when the canary started, for the cohorts whose baseline was thin
    (the readiness ``baselines`` check, once unmet): their verdicts compare against it."""
    if not isinstance(view, Mapping):
        return {}
    for c in view.get("checks") or []:
        if isinstance(c, Mapping) and c.get("check") == "baselines" and c.get("state") == "unmet":
            details = [d for d in c.get("details") or [] if isinstance(d, Mapping)]
            return {str(d.get("cohort")): f"when the canary started: {d.get('lacking')}" for d in details}
    return {}


def _approvals(r: RolloutRecords, policy: Mapping[str, Any], now: float | None) -> list[dict[str, Any]]:
    """Proposals waiting for an operator: what, why, until when, and the command that approves one."""
    records = {c.get("command_id"): c for c in r.commands}
    out = []
    for c in policy.get("commands") or []:
        if c.get("status") != "proposed":
            continue
        record = records.get(c["command_id"], {})
        expires = c.get("approval_expires_at")
        left = (expires - now) if isinstance(expires, int | float) and now is not None else None
        out.append(
            {
                "command_id": c["command_id"],
                "action": c.get("action"),
                "scope": scope_text(c.get("cohort")),
                "reason": (record.get("evidence") or {}).get("reason", ""),
                "issued": fmt_time(c.get("issued_at")),
                "expires": fmt_time(expires),
                "left": (f"in {fmt_span(left)}" if left > 0 else "expired") if left is not None else "",
                "approve": f"rollguard operator approve {r.rollout_id} {c['command_id']}",
                "reject": f"rollguard operator reject {r.rollout_id} {c['command_id']}",
            }
        )
    return out


def _alerts(alerts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for a in alerts:
        note = a.get("notification") or {}
        labels = a.get("labels") or {}
        rows.append(
            {
                "at": fmt_time(note.get("at") or a.get("starts_at")),
                "status": a.get("status", ""),
                "reason": note.get("reason", ""),
                "severity": a.get("severity") or labels.get("severity", ""),
                "audience": a.get("audience") or labels.get("audience", ""),
                "rule": a.get("rule") or labels.get("rule", ""),
                "cohort": labels.get("cohort", ""),
                "summary": a.get("summary") or (a.get("annotations") or {}).get("summary", ""),
                "alert_id": a.get("alert_id", ""),
            }
        )
    return rows[::-1][:MAX_ROWS]


def _commands(r: RolloutRecords, policy: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every command with what became of it: the policy's status, the acks (audit) and approvals."""
    status = {c["command_id"]: c for c in policy.get("commands") or []}
    acks: dict[str, list[Mapping[str, Any]]] = {}
    for a in r.audit:
        if a.get("type") == "ack":
            acks.setdefault(str(a.get("command_id")), []).append(a)
    rows = []
    for c in r.commands:
        cid = str(c.get("command_id"))
        st: Mapping[str, Any] = status.get(cid, {})
        ack_texts = []
        for ack in acks.get(cid, []):
            result = ack.get("result")
            extra = f" ({result})" if result not in (ack.get("status"), None) else ""
            ack_texts.append(f"{ack.get('status')} at {fmt_time(ack.get('at'))}{extra}")
        rows.append(
            {
                "command_id": cid,
                "issued": fmt_time(c.get("issued_at")),
                # The revert rehearsal (pre-flight) is not a decision about the canary: said, with its answer.
                "action": c.get("action", "") + (" (revert rehearsal)" if c.get("rehearsal") else ""),
                "scope": scope_text(c.get("scope")),
                "target_weight": c.get("target_weight"),
                "status": st.get("status")
                or (str(acks[cid][-1].get("status")) if c.get("rehearsal") and acks.get(cid) else None)
                or ("proposed" if c.get("requires_approval") else "issued"),
                "acks": ack_texts,
                "ack_reason": st.get("ack_reason"),
                "approved_by": c.get("approved_by") or st.get("approved_by"),
                "proposal_id": c.get("proposal_id"),
                "requires_approval": bool(c.get("requires_approval")),
                "dry_run": bool(c.get("dry_run")),
                "signed": bool(c.get("signature")),
                "reason": (c.get("evidence") or {}).get("reason", ""),
                "expires": fmt_time(c.get("expires_at")),
            }
        )
    return rows[::-1][:MAX_ROWS]


def _operators(audit: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = [
        {
            "at": fmt_time(a.get("at")),
            "by": a.get("by", ""),
            "key_id": a.get("key_id", ""),
            "action": a.get("action", ""),
            "result": a.get("result", ""),
            "command_id": a.get("command_id", ""),
        }
        for a in audit
        if a.get("type") == "operator"
    ]
    return rows[::-1][:MAX_ROWS]


def page_view(rollouts: Iterable[RolloutRecords], *, title: str, subtitle: str, live: bool) -> dict[str, Any]:
    """The whole page: every rollout, a line about where the data comes from."""
    views = [rollout_view(r) for r in rollouts]
    return {
        "title": title,
        "subtitle": subtitle,
        "live": live,
        "rollouts": views,
        "states": STATE_LABELS,
        "regressed": sum(len(v["regressed"]) for v in views),
        "approvals": sum(len(v["approvals"]) for v in views),
        "firing": sum(len(v["firing"]) for v in views),
    }
