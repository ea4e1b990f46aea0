"""Rollout commands: scoped first, escalated step by step, and safe by construction.

The ladder of one rollout, in config order (``commands.progression``):

1. ``disable_scope`` — a regression confined to a cohort turns the canary off *for that cohort only*;
2. ``reduce_weight`` — when ``escalate_at_scopes`` cohorts (or the whole rollout, unattributed) regress;
3. ``rollback`` — when the regression persists after the weight was reduced.

A step is issued only after the previous one was acked ``applied`` (``dry_run_ok`` in a rehearsal) and the
regression is still there ``persist_s`` later. Safety rails: one command in flight per rollout;
deterministic ids (a replay or a restarted worker yields the same ``command_id``); no command for a scope
already disabled or a rollout already rolled back; ``cooldown_s`` per scope; ``max_per_hour`` per rollout;
``expires_at``; ``max_attempts`` re-issues of a failed or expired step (then only the alert remains);
operator hold; approval where configured (and by default while the traffic split is unhealthy).

Promotion (opt-in) walks the configured ramp one step at a time: only when every guardrail and quality
check is non-inferior (or excused by a trade-off), the split is healthy, nothing of warning or above is
firing, and the previous step was applied ``min_step_s`` ago.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from rollguard.domain.cohorts import WHOLE, parse_cohort_key
from rollguard.domain.events import excerpt
from rollguard.policy.alerts.manager import AlertState
from rollguard.policy.alerts.records import digest, scope_text
from rollguard.policy.alerts.rules import SEVERITY_RANK, Condition, system_condition, system_rule
from rollguard.policy.commands.promotion import promotion_readiness
from rollguard.policy.commands.signing import signed
from rollguard.policy.signals import SignalTable
from rollguard.settings.commands import CommandSettings
from rollguard.settings.promotion import PromotionSettings

IN_FLIGHT: Final = frozenset({"proposed", "issued", "accepted"})
APPLIED: Final = frozenset({"applied", "dry_run_ok"})
FAILED: Final = frozenset({"rejected", "failed", "expired", "approval_expired"})
RETRYABLE: Final = frozenset({"failed", "expired", "approval_expired"})
ACK_STATUSES: Final = frozenset({"accepted", "applied", "rejected", "failed", "dry_run_ok"})

SYSTEM_RULES: Final = {
    rule.name: rule
    for rule in (
        system_rule("command_unacked", "critical", "no controller acknowledged a rollout command in time"),
        system_rule("command_failed", "critical", "a controller rejected or failed a rollout command"),
        system_rule("command_cap_reached", "warning", "commands per rollout per hour capped"),
        system_rule("command_awaiting_approval", "warning", "a proposed command waits for an operator"),
    )
}


@dataclass(slots=True)
class CommandState:
    """One issued command (or proposal) and what became of it."""

    command_id: str
    action: str
    cohort: str
    target_weight: float | None
    issued_at: float
    expires_at: float
    status: str
    attempt: int
    purpose: str  # rollback | promote | pause
    fingerprints: list[str]
    requires_approval: bool
    record: dict[str, Any]
    approved_by: str | None = None
    proposal_id: str | None = None
    acked_at: float | None = None
    applied_at: float | None = None
    ack_status: str | None = None
    ack_reason: str | None = None

    @property
    def decision(self) -> str:
        return f"{self.action}|{self.cohort}|{self.target_weight}"

    def to_state(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class RolloutCommands:
    """Command state of one rollout (one generation: a new canary variant starts afresh)."""

    rollout_id: str
    generation: int = 0
    variant: str | None = None
    sequence: int = 0
    started_at: float | None = None
    commands: dict[str, CommandState] = field(default_factory=dict)
    disabled: dict[str, str] = field(default_factory=dict)  # cohort -> applied disable_scope command
    level: int = 0  # 1: weight reduced, 2: rolled back (applied)
    weight: float | None = None
    promotion_done: bool = False
    issued_times: list[float] = field(default_factory=list)
    cap_hit_at: float | None = None
    hold: dict[str, Any] | None = None
    denied: dict[str, list[str]] = field(default_factory=dict)  # decision -> alert fingerprints

    def to_state(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "commands"}
        out["commands"] = [c.to_state() for c in self.commands.values()]
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RolloutCommands:
        raw = dict(state)
        cmds = raw.pop("commands")
        rc = cls(**raw)
        rc.commands = {c["command_id"]: CommandState(**c) for c in cmds}
        return rc

    def latest(self, purpose: str | None = None) -> CommandState | None:
        cands = [c for c in self.commands.values() if purpose is None or c.purpose == purpose]
        return max(cands, key=lambda c: (c.issued_at, c.record.get("sequence", 0))) if cands else None

    def in_flight(self) -> CommandState | None:
        return next((c for c in self.commands.values() if c.status in IN_FLIGHT), None)


def _covered(cohort: str, disabled: Mapping[str, str]) -> bool:
    scope = parse_cohort_key(cohort)
    for d in disabled:
        ds = parse_cohort_key(d)
        if all(scope.get(k) == v for k, v in ds.items()):
            return True
    return False


class Planner:
    """Decides rollout commands from firing alerts and records what controllers did with them."""

    def __init__(
        self,
        commands: CommandSettings,
        promotion: PromotionSettings,
        signing_key: bytes | None,
        instance: str = "rollguard",
    ) -> None:
        self.cfg = commands
        self.promo = promotion
        self.key = signing_key
        self.instance = instance
        self.rollouts: dict[str, RolloutCommands] = {}

    def rollout(self, rollout_id: str) -> RolloutCommands:
        rc = self.rollouts.get(rollout_id)
        if rc is None:
            rc = self.rollouts[rollout_id] = RolloutCommands(rollout_id)
        return rc

    def reset(self, rollout_id: str, generation: int, variant: str | None) -> None:
        """A new canary variant: earlier commands are history, the ladder starts again.

        The per-rollout ``sequence`` keeps counting: controllers reject a command whose sequence is
        not above the last one they applied, and the flag is the same flag for the new variant."""
        before = self.rollouts.get(rollout_id)
        rc = self.rollouts[rollout_id] = RolloutCommands(rollout_id, generation=generation, variant=variant)
        if before is not None:
            rc.sequence = before.sequence

    # ------------------------------------------------------------------ time
    def tick(self, rc: RolloutCommands, now: float) -> list[CommandState]:
        """Expire commands and proposals; returns proposals that expired unapproved (to escalate)."""
        expired: list[CommandState] = []
        for c in rc.commands.values():
            if c.status == "proposed" and now >= c.issued_at + self.cfg.approval_timeout_s:
                c.status = "approval_expired"
                expired.append(c)
            elif c.status in ("issued", "accepted") and now >= c.expires_at:
                c.status = "expired"
        if rc.hold is not None and rc.hold.get("until") is not None and now >= float(rc.hold["until"]):
            rc.hold = None
        rc.issued_times = [t for t in rc.issued_times if now - t < 3600.0]
        if rc.cap_hit_at is not None and now - rc.cap_hit_at >= 3600.0:
            rc.cap_hit_at = None
        return expired

    def next_due(self, now: float) -> float:
        """The next event time at which something here changes by itself (after ``now``)."""
        cfg = self.cfg
        times: list[float] = []
        for rc in self.rollouts.values():
            enabled, _, min_step = self.promo.for_rollout(rc.rollout_id)
            for c in rc.commands.values():
                if c.status == "proposed":
                    times.append(c.issued_at + cfg.approval_timeout_s)
                elif c.status in ("issued", "accepted"):
                    times += [c.expires_at, c.issued_at + cfg.ack_timeout_s]
                elif c.status in APPLIED and c.applied_at is not None:
                    times.append(c.applied_at + (min_step if c.purpose == "promote" else cfg.persist_s))
                times.append(c.issued_at + cfg.cooldown_s)
            times += [t + 3600.0 for t in rc.issued_times[:1]]
            if rc.hold is not None and rc.hold.get("until") is not None:
                times.append(float(rc.hold["until"]))
            if enabled and rc.started_at is not None and not rc.promotion_done:
                times.append(rc.started_at + min_step)
        return min((t for t in times if t > now), default=math.inf)

    def _min_step(self, rc: RolloutCommands) -> float:
        return self.promo.for_rollout(rc.rollout_id)[2]

    # ------------------------------------------------------------------ decisions
    def plan(
        self,
        rc: RolloutCommands,
        now: float,
        triggers: list[AlertState],
        active: list[AlertState],
        table: SignalTable,
        canary_weight: float | None,
    ) -> list[dict[str, Any]]:
        """At most one new command (or proposal) for the rollout, as a signed record."""
        per = self.cfg.for_rollout(rc.rollout_id)
        if rc.started_at is None:
            rc.started_at = now
        if not (self.cfg.enabled if per.enabled is None else per.enabled):
            return []
        if rc.hold is not None or rc.in_flight() is not None or rc.level >= 2:
            return []
        healthy = table.healthy(now)
        firing = {t.fingerprint for t in triggers}
        rc.denied = {d: fps for d, fps in rc.denied.items() if set(fps) & firing}
        if not healthy and self.cfg.pause_on_srm and rc.latest("pause") is None:
            return self._issue(
                rc,
                now,
                "pause",
                WHOLE,
                None,
                [],
                "sample ratio mismatch: pause progression",
                "pause",
                approval=False,
            )
        if triggers:
            return self._plan_rollback(rc, now, triggers, healthy)
        enabled, ramp, min_step = self.promo.for_rollout(rc.rollout_id)
        if enabled and not rc.promotion_done:
            return self._plan_promotion(rc, now, active, table, healthy, ramp, min_step, canary_weight)
        return []

    def _plan_rollback(
        self, rc: RolloutCommands, now: float, triggers: list[AlertState], healthy: bool
    ) -> list[dict[str, Any]]:
        cfg = self.cfg
        by_cohort: dict[str, list[AlertState]] = {}
        for t in triggers:
            by_cohort.setdefault(t.cohort, []).append(t)
        uncovered = [
            c
            for c in sorted(by_cohort, key=lambda c: (by_cohort[c][0].starts_at, c))
            if not _covered(c, rc.disabled)
        ]
        if not uncovered:
            return []
        whole_steps = [a for a in cfg.progression if a != "disable_scope"]
        spread = len(set(rc.disabled) | set(uncovered)) >= cfg.escalate_at_scopes
        escalate = WHOLE in uncovered or spread or rc.level >= 1 or "disable_scope" not in cfg.progression
        if escalate and whole_steps:
            action = "reduce_weight" if rc.level == 0 and "reduce_weight" in whole_steps else "rollback"
            if action == "rollback" and "rollback" not in whole_steps:
                return []
            cohort = WHOLE
            weight = cfg.reduce_weight_to if action == "reduce_weight" else None
            reasons = [t for c in uncovered for t in by_cohort[c]]
        else:
            cohort = uncovered[0]
            action, weight = "disable_scope", None
            reasons = by_cohort[cohort]
        last = rc.latest("rollback")
        if last is not None:
            if last.status in FAILED:
                # The previous step never took effect. A failed or expired one is re-issued (new attempt);
                # anything else — a refusal, or a different step — is for a person (command_failed alert).
                if last.decision != f"{action}|{cohort}|{weight}" or last.status not in RETRYABLE:
                    return []
            elif last.status in APPLIED:
                is_escalation = action != "disable_scope"
                if is_escalation and (last.applied_at is None or now < last.applied_at + cfg.persist_s):
                    return []  # wait: the regression must persist after the previous step
        decision = f"{action}|{cohort}|{weight}"
        if decision in rc.denied:
            return []
        approval = any(
            (t.approval or cfg.for_rollout(rc.rollout_id).approval or cfg.approval) == "required"
            for t in reasons
        )
        if not healthy:
            if cfg.on_srm == "block":
                return []
            approval = approval or cfg.on_srm == "approve"
        step = ["disable_scope", "reduce_weight", "rollback"].index(action) + 1
        reason = f"{action} ({scope_text(cohort)}), step {step} of the ladder: " + "; ".join(
            t.summary.removeprefix(f"[{rc.rollout_id}] ") for t in reasons[:3]
        )
        return self._issue(rc, now, action, cohort, weight, reasons, reason, "rollback", approval=approval)

    def _plan_promotion(
        self,
        rc: RolloutCommands,
        now: float,
        active: list[AlertState],
        table: SignalTable,
        healthy: bool,
        ramp: tuple[float, ...],
        min_step: float,
        canary_weight: float | None,
    ) -> list[dict[str, Any]]:
        if rc.latest("rollback") is not None or not healthy:
            return []
        promo = self.promo
        ready = promotion_readiness(table, now, promo.families, promo.cohorts, promo.tradeoffs, promo.metrics)
        excused = {(t["cohort"], t["metric"]) for t in ready.tradeoffs}
        for a in active:  # anything of warning or above holds the ramp, unless a trade-off accepts all of it
            if SEVERITY_RANK[a.severity] >= SEVERITY_RANK["warning"] and (
                not a.signals or any((s["cohort"], s["metric"]) not in excused for s in a.signals)
            ):
                return []
        last = rc.latest("promote")
        if last is not None:
            if last.status in APPLIED:
                if last.applied_at is None or now < last.applied_at + min_step:
                    return []
            elif last.status not in FAILED:
                return []
        elif rc.started_at is None or now < rc.started_at + min_step:
            return []
        if not ready.ready:
            return []
        current = (
            rc.weight if rc.weight is not None else canary_weight if canary_weight is not None else ramp[0]
        )
        nxt = next((w for w in ramp if w > current + 1e-12), None)
        if nxt is None:
            rc.promotion_done = True
            return []
        if last is not None and last.status in FAILED and last.target_weight != nxt:
            return []
        reason = f"promote to {nxt:g}: {ready.checks} guardrail/quality checks non-inferior" + (
            f", {len(ready.tradeoffs)} accepted by trade-off" if ready.tradeoffs else ""
        )
        extra = {
            "from_weight": current,
            "ramp": list(ramp),
            "tradeoffs": ready.tradeoffs,
            "checks": ready.checks,
        }
        approval = self.promo.approval == "required"
        return self._issue(
            rc, now, "promote", WHOLE, nxt, [], reason, "promote", approval=approval, extra=extra
        )

    # ------------------------------------------------------------------ issuing
    def _issue(
        self,
        rc: RolloutCommands,
        now: float,
        action: str,
        cohort: str,
        weight: float | None,
        reasons: list[AlertState],
        reason: str,
        purpose: str,
        *,
        approval: bool,
        extra: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        cfg = self.cfg
        decision = f"{action}|{cohort}|{weight}"
        earlier = [c for c in rc.commands.values() if c.decision == decision and c.status != "approved"]
        last_here = max(
            (c.issued_at for c in rc.commands.values() if c.cohort == cohort and c.purpose == purpose),
            default=-math.inf,
        )  # a rollback never waits for the cooldown of a promotion
        if now < last_here + cfg.cooldown_s:
            return []
        if len(earlier) >= cfg.max_attempts:
            return []
        if len(rc.issued_times) >= cfg.max_per_hour:
            if rc.cap_hit_at is None:
                rc.cap_hit_at = now
            return []
        attempt = len(earlier) + 1
        command_id = "cmd-" + digest(
            rc.rollout_id, rc.generation, rc.variant, action, cohort, weight, attempt, n=24
        )
        per = cfg.for_rollout(rc.rollout_id)
        dry_run = cfg.dry_run if per.dry_run is None else per.dry_run
        record = self._record(
            rc,
            now,
            command_id,
            action,
            cohort,
            weight,
            attempt,
            reasons,
            reason,
            dry_run,
            approval,
            extra or {},
        )
        state = CommandState(
            command_id=command_id,
            action=action,
            cohort=cohort,
            target_weight=weight,
            issued_at=now,
            expires_at=record["expires_at"],
            status="proposed" if approval else "issued",
            attempt=attempt,
            purpose=purpose,
            fingerprints=[t.fingerprint for t in reasons],
            requires_approval=approval,
            record=record,
        )
        self._remember(rc, state)
        if not approval:  # the cap protects controllers: a proposal executes nothing (its approval counts)
            rc.issued_times.append(now)
        return [record]

    def _record(
        self,
        rc: RolloutCommands,
        now: float,
        command_id: str,
        action: str,
        cohort: str,
        weight: float | None,
        attempt: int,
        reasons: list[AlertState],
        reason: str,
        dry_run: bool,
        approval: bool,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        rc.sequence += 1
        signals = [s for t in reasons for s in t.signals][:8]
        evidence: dict[str, Any] = {
            "reason": reason,
            "rules": sorted({t.rule for t in reasons}),
            "cohorts": sorted({t.cohort for t in reasons}),
            "signals": [{k: v for k, v in s.items() if k in _EVIDENCE_KEYS} for s in signals],
            "disabled_scopes": sorted(rc.disabled),
            "level": rc.level,
            **extra,
        }
        record: dict[str, Any] = {
            "schema_version": 1,
            "command_id": command_id,
            "rollout_id": rc.rollout_id,
            "scope": parse_cohort_key(cohort),
            "action": action,
            "issued_at": now,
            "expires_at": now + self.cfg.ttl_s,
            "sequence": rc.sequence,
            "attempt": attempt,
            "alert_ids": [t.alert_id for t in reasons],
            "evidence": evidence,
            "dry_run": dry_run,
            "requires_approval": approval,
            "approved_by": None,
            "issued_by": self.instance,
        }
        if weight is not None:
            record["target_weight"] = weight
        if self.cfg.key_id:
            record["key_id"] = self.cfg.key_id
        return signed(record, self.key)

    def rehearsal(self, rc: RolloutCommands, now: float, attempt: int = 1) -> dict[str, Any]:
        """A signed dry-run ``rollback`` of the whole rollout marked ``rehearsal: true`` (pre-flight).

        It takes the rollout's next ``sequence`` (controllers see sequences grow) and nothing else of the
        ladder: it is not remembered among the rollout's commands, is not in flight, does not count
        towards ``max_per_hour``; its ack is the readiness check's (:mod:`rollguard.policy.readiness`)."""
        command_id = "cmd-" + digest(rc.rollout_id, "rehearsal", attempt, n=24)
        reason = "revert rehearsal: a dry-run rollback, answered dry_run_ok without changing anything"
        extra = {"rehearsal": True}
        dry_run, approval = True, False
        record = self._record(
            rc, now, command_id, "rollback", WHOLE, None, attempt, [], reason, dry_run, approval, extra
        )
        del record["signature"]
        record["rehearsal"] = True
        return signed(record, self.key)

    def _remember(self, rc: RolloutCommands, state: CommandState) -> None:
        rc.commands[state.command_id] = state
        if len(rc.commands) > 64:
            done = sorted(
                (c for c in rc.commands.values() if c.status not in IN_FLIGHT),
                key=lambda c: (c.issued_at, c.command_id),
            )
            for c in done[: len(rc.commands) - 64]:
                del rc.commands[c.command_id]

    def approve(self, rc: RolloutCommands, proposal_id: str, by: str, now: float) -> dict[str, Any] | str:
        """Issue an approved proposal as an executable command (new id); a reason string when refused."""
        p = rc.commands.get(proposal_id)
        if p is None:
            return "unknown proposal"
        if p.status != "proposed":
            return f"proposal is {p.status}"
        p.status = "approved"
        p.approved_by = by
        command_id = "cmd-" + digest(proposal_id, "approved", n=24)
        rc.sequence += 1
        record = {k: v for k, v in p.record.items() if k != "signature"}
        record.update(
            command_id=command_id,
            issued_at=now,
            expires_at=now + self.cfg.ttl_s,
            sequence=rc.sequence,
            requires_approval=False,
            approved_by=by,
            proposal_id=proposal_id,
        )
        record = signed(record, self.key)
        state = CommandState(
            command_id=command_id,
            action=p.action,
            cohort=p.cohort,
            target_weight=p.target_weight,
            issued_at=now,
            expires_at=record["expires_at"],
            status="issued",
            attempt=p.attempt,
            purpose=p.purpose,
            fingerprints=list(p.fingerprints),
            requires_approval=False,
            record=record,
            approved_by=by,
            proposal_id=proposal_id,
        )
        self._remember(rc, state)
        rc.issued_times.append(now)
        return record

    def deny(self, rc: RolloutCommands, proposal_id: str, by: str) -> str | None:
        p = rc.commands.get(proposal_id)
        if p is None or p.status != "proposed":
            return "unknown proposal" if p is None else f"proposal is {p.status}"
        p.status = "denied"
        p.approved_by = None
        p.ack_reason = f"denied by {by}"
        rc.denied[p.decision] = list(p.fingerprints)
        return None

    # ------------------------------------------------------------------ acks
    def ack(self, rc: RolloutCommands, ack: Mapping[str, Any], now: float) -> str:
        """Record a controller's ack; returns what happened ("applied", "ignored: …")."""
        c = rc.commands.get(str(ack.get("command_id")))
        status = ack.get("status")
        if c is None:
            return "ignored: unknown command"
        if not isinstance(status, str) or status not in ACK_STATUSES:
            return f"ignored: bad status {excerpt(status)}"
        if c.ack_status == status:
            return "ignored: duplicate"
        if c.status in APPLIED and status in ("accepted", "rejected", "failed"):
            return f"ignored: already {c.status}"
        at = ack.get("at")
        at_f = float(at) if isinstance(at, int | float) and math.isfinite(at) else now
        c.ack_status = str(status)
        c.acked_at = at_f
        reason = ack.get("reason")
        c.ack_reason = str(reason)[:200] if isinstance(reason, str) else None
        if status == "accepted":
            if c.status == "issued":
                c.status = "accepted"
            return "accepted"
        c.status = str(status)
        if status in APPLIED:
            # The controller's clock, bounded: never before the command, never beyond its lifetime ahead.
            c.applied_at = max(c.issued_at, min(at_f, max(now, c.issued_at) + self.cfg.ttl_s))
            if c.action == "disable_scope":
                rc.disabled[c.cohort] = c.command_id
            elif c.action == "reduce_weight":
                rc.level = max(rc.level, 1)
            elif c.action == "rollback":
                rc.level = 2
            elif c.action == "promote" and c.target_weight is not None:
                rc.weight = c.target_weight
                rc.promotion_done = c.target_weight >= 1.0
        return str(status)

    # ------------------------------------------------------------------ rollguard's own alerts
    def system_conditions(self, rc: RolloutCommands, now: float) -> list[Condition]:
        out: list[Condition] = []
        latest: dict[str, CommandState] = {}
        for c in sorted(rc.commands.values(), key=lambda c: (c.issued_at, c.record.get("sequence", 0))):
            if c.status not in ("approved", "denied"):
                latest[f"{c.purpose}|{c.cohort}"] = c
        for c in latest.values():
            what = f"{c.action} for {scope_text(c.cohort)} ({c.command_id})"
            if c.ack_status is None and (
                (c.status == "issued" and now >= c.issued_at + self.cfg.ack_timeout_s)
                or c.status == "expired"
            ):
                out.append(
                    self._sys(
                        rc,
                        "command_unacked",
                        c.cohort,
                        c.issued_at + self.cfg.ack_timeout_s,
                        f"{what} not acknowledged by any controller within "
                        f"{self.cfg.ack_timeout_s:g} s{' and expired' if c.status == 'expired' else ''}",
                    )
                )
            elif c.status in ("rejected", "failed"):
                out.append(
                    self._sys(
                        rc,
                        "command_failed",
                        c.cohort,
                        c.acked_at or now,
                        f"{what} {c.status} by the controller: {c.ack_reason or 'no reason given'}",
                    )
                )
            elif c.status == "proposed":
                out.append(
                    self._sys(
                        rc,
                        "command_awaiting_approval",
                        c.cohort,
                        c.issued_at,
                        f"{what} proposed and held for approval until "
                        f"{c.issued_at + self.cfg.approval_timeout_s:.0f}",
                    )
                )
        if rc.cap_hit_at is not None:
            out.append(
                self._sys(
                    rc,
                    "command_cap_reached",
                    WHOLE,
                    rc.cap_hit_at,
                    f"{self.cfg.max_per_hour} commands in the last hour: further commands wait",
                )
            )
        return out

    def _sys(self, rc: RolloutCommands, rule: str, cohort: str, start: float, text: str) -> Condition:
        r = SYSTEM_RULES[rule]
        return system_condition(r, rc.rollout_id, cohort, start, text, f"{r.description}: {text}.")


_EVIDENCE_KEYS: Final = frozenset(
    {
        "metric",
        "cohort",
        "window",
        "state",
        "verdict",
        "effect",
        "relative_effect",
        "ci_low",
        "ci_high",
        "margin",
        "n_control",
        "n_canary",
        "confidence",
        "method",
        "phase",
        "ts",
    }
)
