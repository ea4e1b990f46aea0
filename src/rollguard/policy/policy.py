"""The policy: verdict changes in, alerts and commands out — the decider the replay and the worker feed.

Pure and deterministic: it never reads the clock (time is the event time it is given), never reads the
environment (the signing key is passed in), and its whole state is plain JSON-compatible data
(:meth:`Policy.to_state` / :meth:`Policy.from_state`), bounded per rollout.

The calls, in the order a driver makes them::

    policy = Policy(config, signing_key=key)
    out = policy.on_changes(engine.process(event))   # verdict changes of one batch
    out += policy.advance(event.ts)                  # time-driven: resolves, repeats, expiries, digests
    out += policy.on_ack(ack)                        # ack v1 from a controller (acks topic)
    out += policy.on_operator(action)                # operator action (command v1, control topic)
    out += policy.readiness_started(rollout_id, ts)  # its first event: pre-flight (rehearsal) begins
    policy.readiness_baselines(…); policy.readiness_eval_gate(…)  # facts only the pipeline has
    out += policy.readiness_changed(rollout_id)      # a readiness record when readiness changed

Each returns an :class:`Output`: alert v1 records (publish each to ``policy.topic_role(alert)``), command v1
records (control topic, key = rollout_id), readiness records (control topic, ``kind: readiness``) and audit
records of what was done with acks and operator actions. ``advance`` is cheap when nothing is due, so it may
be called for every event.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from rollguard.detect.control_history import CohortHistory
from rollguard.domain.cohorts import WHOLE, cohort_key
from rollguard.domain.events import excerpt
from rollguard.policy.alerts.manager import AlertBook, Silence, parse_matchers
from rollguard.policy.alerts.rules import evaluate
from rollguard.policy.commands.planner import Planner, RolloutCommands
from rollguard.policy.commands.signing import verify_command
from rollguard.policy.operators import verify_action
from rollguard.policy.readiness.baselines import BaselineFacts, thin_cohorts
from rollguard.policy.readiness.eval_gate import EvalGateOutcome
from rollguard.policy.readiness.rollout import RolloutReadiness
from rollguard.policy.signals import SignalTable, VerdictOverride, change_fields
from rollguard.settings.alerts import KIND_STATES
from rollguard.settings.config import Config

OPERATOR_ACTIONS: Final = frozenset(
    {
        "acknowledge_alert",
        "silence",
        "unsilence",
        "hold",
        "release",
        "override_verdict",
        "approve",
        "reject",
        "declare_promotion",  # the rollout is at 100%: the pipeline moves its engine to post-rollout
        "rehearse_revert",  # pre-flight: issue a new dry-run rollback (``rollguard preflight --rehearse``)
    }
)
STATE_VERSION: Final = 1
IDLE_ROLLOUT_S: Final = 7 * 86400.0
MAX_SILENCES: Final = 1000


@dataclass(slots=True)
class Output:
    """What one call produced, in the order it should be published."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    readiness: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: Output) -> Output:
        self.alerts.extend(other.alerts)
        self.commands.extend(other.commands)
        self.audit.extend(other.audit)
        self.readiness.extend(other.readiness)
        return self

    def __iadd__(self, other: Output) -> Output:
        return self.extend(other)

    def __bool__(self) -> bool:
        return bool(self.alerts or self.commands or self.audit or self.readiness)


class Policy:
    """Alert rules, alert lifecycle and rollout commands for every rollout."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        signing_key: bytes | None = None,
        instance: str = "rollguard",
        silences: dict[str, Silence] | None = None,
    ) -> None:
        self.config = config or Config()
        self.signing_key = signing_key
        self.instance = instance
        self.book = AlertBook(self.config.alerts)
        # Silences are the operators', not one rollout's: policies of several rollouts may share one
        # dict (each reads a silence at its own event time; the owner of the dict forgets old ones).
        self.shared_silences = silences is not None
        if silences is not None:
            self.book.silences = silences
        self.planner = Planner(self.config.commands, self.config.promotion, signing_key, instance)
        self.tables: dict[str, SignalTable] = {}
        self.readiness: dict[str, RolloutReadiness] = {}
        self.now = -math.inf
        self._next_due = math.inf
        self._seen_actions: list[str] = []
        self._hourly = any(ov.hours is not None for r in self.config.alerts.rules for ov in r.overrides)

    # ------------------------------------------------------------------ inputs
    def on_changes(self, changes: Iterable[Any]) -> Output:
        """Fold verdict changes (objects or their dicts) in and re-evaluate the rollouts they touch."""
        out = Output()
        touched: set[str] = set()
        for change in changes:
            d = change_fields(change)
            rid = str(d.get("rollout_id") or "")
            if not rid:
                continue
            ts = d.get("ts")
            if isinstance(ts, int | float) and math.isfinite(ts) and ts > self.now:
                self.now = float(ts)
            table = self.tables.get(rid)
            if table is None:
                table = self.tables[rid] = SignalTable(rid)
            if table.apply(d) == "reset":
                # The canary changed: its alerts resolve now, its command ladder starts again.
                self.planner.reset(rid, table.generation, table.variant)
                out += self._evaluate(rid, immediate=True)
                out.audit.append(
                    {
                        "type": "rollout_reset",
                        "rollout_id": rid,
                        "at": self.now,
                        "generation": table.generation,
                    }
                )
            touched.add(rid)
        for rid in sorted(touched):
            out += self._evaluate(rid)
        self._refresh_due()
        return out

    def due(self, now: float) -> bool:
        """Move event time forward; True when :meth:`advance` has work (a cheap per-event check)."""
        if now > self.now:
            self.now = now
        return self.now >= self._next_due

    def advance(self, now: float) -> Output:
        """Move event time forward; runs resolves, repeats, expiries, escalations and digests when due."""
        if now > self.now:
            self.now = now
        if self.now < self._next_due:
            return Output()
        out = Output()
        if not self.shared_silences:
            self.book.expire_silences(self.now)
        for rid in sorted(self.tables):
            out += self._evaluate(rid)
        for rid in sorted(self.readiness.keys() - self.tables.keys()):
            out += self._readiness_changed(rid)
        out.alerts.extend(self.book.digests_due(self.now))
        self._evict_idle()
        self._refresh_due()
        return out

    def on_ack(self, ack: Mapping[str, Any]) -> Output:
        """Record a controller's ack v1; progression and unacked-command alerts follow from it."""
        rid = ack.get("rollout_id")
        cid = ack.get("command_id")
        out = Output()
        ready = self.readiness.get(rid) if isinstance(rid, str) else None
        rehearsal = ready is not None and isinstance(cid, str) and cid == ready.rehearsal.command_id
        if rehearsal and ready is not None and isinstance(rid, str):
            result = ready.rehearsal.on_ack(ack, self.now)
            out.audit.append(
                {"type": "ack", "command_id": cid, "rollout_id": rid, "at": self.now,
                 "status": str(ack.get("status")), "result": f"rehearsal: {result}"}
            )  # fmt: skip
            out += self._readiness_changed(rid)
            self._refresh_due()
            return out
        if not isinstance(rid, str) or not isinstance(cid, str) or rid not in self.planner.rollouts:
            out.audit.append(
                {
                    "type": "ack",
                    "command_id": str(cid),
                    "rollout_id": str(rid),
                    "at": self.now,
                    "result": "ignored: unknown rollout or command",
                }
            )
            return out
        result = self.planner.ack(self.planner.rollouts[rid], ack, self.now)
        out.audit.append(
            {
                "type": "ack",
                "command_id": cid,
                "rollout_id": rid,
                "at": self.now,
                "status": str(ack.get("status")),
                "result": result,
            }
        )
        if rid in self.tables:
            out += self._evaluate(rid)
        self._refresh_due()
        return out

    def on_operator(self, action: Mapping[str, Any]) -> Output:
        """Apply an operator action (command v1 with an operator ``action``), recorded in the audit."""
        out = Output()
        kind = action.get("action")
        cid = action.get("command_id")
        rid = action.get("rollout_id")
        by = action.get("issued_by")
        audit: dict[str, Any] = {
            "type": "operator",
            "action": str(kind),
            "command_id": str(cid),
            "rollout_id": str(rid),
            "by": str(by),
            "at": self.now,
        }
        out.audit.append(audit)
        problem = self._check_action(action)
        if problem:
            audit["result"] = f"rejected: {problem}"
            return out
        assert isinstance(rid, str) and isinstance(cid, str) and isinstance(by, str)
        if self.config.operators.keys:  # who acted is the key's holder (verified above)
            audit["key_id"] = str(action.get("key_id"))
        self._seen_actions = [*self._seen_actions[-999:], cid]
        params = action.get("operator") or {}
        if not isinstance(params, Mapping):
            audit["result"] = "rejected: operator must be an object"
            return out
        result = self._apply_operator(str(kind), rid, cid, by, params, out)
        audit["result"] = result
        if result.startswith("ok") and rid in self.tables:
            out += self._evaluate(rid)
        self._refresh_due()
        return out

    def _check_action(self, action: Mapping[str, Any]) -> str:
        kind = action.get("action")
        if not isinstance(kind, str) or kind not in OPERATOR_ACTIONS:
            return f"not an operator action: {excerpt(kind)}"
        for name in ("command_id", "rollout_id", "issued_by"):
            if not isinstance(action.get(name), str) or not action.get(name):
                return f"{name} is required"
        if action["command_id"] in self._seen_actions:
            return "duplicate command_id"
        now = self.now if math.isfinite(self.now) else None
        if self.config.operators.keys:  # operators sign with keys of their own (operators section)
            why = verify_action(action, self.config.operators.keys, now)
            return f"signature check failed: {why}" if why else ""
        if self.signing_key and self.config.commands.verify_operator_actions:
            check = verify_command(action, self.signing_key, self.now if math.isfinite(self.now) else None)
            if not check:
                return f"signature check failed: {check.reason}"
        return ""

    def _apply_operator(
        self, kind: str, rid: str, cid: str, by: str, p: Mapping[str, Any], out: Output
    ) -> str:
        now = self.now
        until = p.get("until")
        until_f = float(until) if isinstance(until, int | float) and math.isfinite(until) else None
        if until_f is None and isinstance(p.get("duration_s"), int | float):
            until_f = now + float(p["duration_s"])
        if kind == "acknowledge_alert":
            st = self.book.find(str(p.get("alert_id", "")))
            if st is None:
                return "rejected: unknown alert"
            st.acknowledged_by = by
            return f"ok: {st.alert_id} acknowledged"
        if kind == "silence":
            matchers = parse_matchers(p.get("matchers"))
            if isinstance(matchers, str):
                return f"rejected: {matchers}"
            if until_f is None or until_f <= now:
                return "rejected: a silence needs until (event time) or duration_s in the future"
            if len(self.book.silences) >= MAX_SILENCES:
                return "rejected: too many silences"
            start = p.get("starts_at")
            start_f = float(start) if isinstance(start, int | float) else now
            comment = str(p.get("comment", ""))[:200]
            self.book.silences[cid] = Silence(cid, matchers, start_f, until_f, by, comment)
            return f"ok: silence {cid} until {until_f:.0f}"
        if kind == "unsilence":
            sid = str(p.get("silence_id", ""))
            if self.book.silences.pop(sid, None) is None:
                return "rejected: unknown silence"
            return f"ok: silence {sid} expired"
        if kind == "rehearse_revert":
            return self._rehearse_again(rid, out)
        rc = self.planner.rollout(rid)
        if kind == "declare_promotion":
            rc.promotion_done = True  # at 100% by the operator's word: no ramp step is left to propose
            return "ok: promotion declared"
        if kind == "hold":
            rc.hold = {"by": by, "at": now, "until": until_f, "comment": str(p.get("comment", ""))[:200]}
            return "ok: automatic commands held"
        if kind == "release":
            rc.hold = None
            return "ok: released"
        if kind == "override_verdict":
            return self._override_verdict(rid, by, p, until_f)
        proposal = str(p.get("command_id", ""))
        if kind == "approve":
            rec = self.planner.approve(rc, proposal, by, now)
            if isinstance(rec, str):
                return f"rejected: {rec}"
            self.book.link_command(rid, rc.commands[rec["command_id"]].fingerprints, rec["command_id"])
            out.commands.append(rec)
            return f"ok: {proposal} approved as {rec['command_id']}"
        problem = self.planner.deny(rc, proposal, by)
        return f"rejected: {problem}" if problem else f"ok: {proposal} denied"

    def _rehearse_again(self, rid: str, out: Output) -> str:
        """A new revert rehearsal asked for by the operator: a fresh dry-run rollback (the next attempt's
        id), the revert check pending again until it is answered."""
        ready = self.readiness.get(rid)
        if ready is None:
            return "rejected: no event of this rollout yet (its first event starts a rehearsal)"
        if self.config.readiness.revert == "off":
            return "rejected: readiness.revert is off"
        if ready.rehearsal.status == "commands_disabled":
            return "rejected: rollout commands are disabled for this rollout: nothing to rehearse"
        attempt = ready.rehearsal.attempt + 1
        record = self.planner.rehearsal(self.planner.rollout(rid), self.now, attempt)
        ready.rehearsal.issue(record["command_id"], self.now, attempt)
        out.commands.append(record)
        out += self._readiness_changed(rid)
        return f"ok: rehearsal {record['command_id']} (attempt {attempt})"

    def _override_verdict(self, rid: str, by: str, p: Mapping[str, Any], until: float | None) -> str:
        table = self.tables.get(rid)
        if table is None:
            return "rejected: unknown rollout"
        scope = p.get("scope")
        cohort = cohort_key(scope) if isinstance(scope, Mapping) else str(p.get("cohort", WHOLE))
        metric, verdict = p.get("metric"), p.get("verdict")
        if not isinstance(metric, str) or verdict not in KIND_STATES["verdict"]:
            return "rejected: override needs metric and verdict (insufficient, non_inferior, regressed)"
        table.overrides[(cohort, metric)] = VerdictOverride(cohort, metric, str(verdict), by, until)
        return f"ok: {metric} in {cohort} overridden to {verdict}"

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, rid: str, *, immediate: bool = False) -> Output:
        now = self.now
        table = self.tables[rid]
        table.expire_overrides(now)
        rc = self.planner.rollout(rid)
        out = Output()
        for p in self.planner.tick(rc, now):
            self.book.escalate(rid, p.fingerprints, "approval_expired")
            out.audit.append(
                {"type": "proposal_expired", "command_id": p.command_id, "rollout_id": rid, "at": now}
            )
        out_now = frozenset(
            (st.rule, st.cohort) for st in self.book.alerts.get(rid, {}).values() if st.status == "firing"
        )
        conds = evaluate(self.config.alerts.rules, table, now, self.config.alerts, firing=out_now)
        ready = self.readiness.get(rid)
        if ready is not None and conds:
            thin = thin_cohorts(self.config.readiness, ready.baselines, now)
            for cond in conds:
                # a cohort holds part of the whole rollout's control: a thin whole means a thin cohort
                cond.thin_baseline = thin.get(cond.cohort) or thin.get(WHOLE, "")
        states = {s.key: table.state_of(s, now) for s in table.live()}
        self.book.reconcile(rid, conds, states, now, immediate=immediate)
        weight = self.config.rollout(rid).canary_weight
        records = self.planner.plan(
            rc, now, self.book.command_triggers(rid), self.book.active(rid), table, weight
        )
        for rec in records:
            self.book.link_command(rid, rc.commands[rec["command_id"]].fingerprints, rec["command_id"])
        # rollguard's own alerts state facts (acked or not): they resolve as soon as the fact changes.
        self.book.reconcile(rid, self._system_conditions(rid, rc), {}, now, system=True, immediate=True)
        out.alerts.extend(self.book.notify(rid, now))
        out.commands.extend(records)
        out.readiness.extend(self._readiness_record(rid))
        return out

    def _system_conditions(self, rid: str, rc: RolloutCommands) -> list[Any]:
        conds = self.planner.system_conditions(rc, self.now)
        ready = self.readiness.get(rid)
        if ready is not None:
            conds += ready.conditions(self.config.readiness, self.now)
        return conds

    # ------------------------------------------------------------------ readiness (pre-flight)
    def readiness_started(self, rid: str, now: float) -> Output:
        """A rollout's first event: its readiness starts, and (revert check on) its revert rehearsal, a
        signed dry-run rollback that never moves the ladder, is issued unless commands are off for it.
        The caller then hands over the facts it has and calls :meth:`readiness_changed`."""
        if now > self.now:
            self.now = now
        if rid in self.readiness:
            return Output()
        ready = self.readiness[rid] = RolloutReadiness(rid, baselines=BaselineFacts(now))
        out = Output()
        if self.config.readiness.revert != "off":
            cfg = self.config.commands
            per = cfg.for_rollout(rid)
            if cfg.enabled if per.enabled is None else per.enabled:
                record = self.planner.rehearsal(self.planner.rollout(rid), self.now)
                ready.rehearsal.issue(record["command_id"], self.now)
                out.commands.append(record)
            else:
                ready.rehearsal.disabled()
        self._refresh_due()
        return out

    def readiness_baselines(self, rid: str, history: list[CohortHistory], *, canary_at: float | None) -> None:
        """The rollout's control history (read after a batch closed, and at the canary's first event with
        ``canary_at``); ignored once the canary started (the baseline is judged as it was then)."""
        ready = self.readiness.get(rid)
        if ready is None or ready.baselines is None or ready.baselines.canary_at is not None:
            return
        ready.baselines.history = history
        ready.baselines.canary_at = canary_at

    def readiness_eval_gate(self, rid: str, outcome: EvalGateOutcome | None) -> None:
        """The outcome of the rollout's eval gate report, as an adapter read it."""
        ready = self.readiness.get(rid)
        if ready is not None:
            ready.eval_gate = outcome

    def readiness_shadow(self, rid: str, ts: float, *, live: bool) -> None:
        """A shadow answer at ``ts`` before live canary traffic, or (``live``) the canary's first live
        event: the shadow verdicts then are what the check judges (kept as they were)."""
        ready = self.readiness.get(rid)
        facts = ready.shadow if ready is not None else None
        if facts is None or facts.at_live is not None:
            return
        if not live:
            facts.shadow_events += 1
            facts.first_at = ts if facts.first_at is None else min(facts.first_at, ts)
            return
        if not facts.shadow_events:
            return
        if facts.first_at is not None and ts - facts.first_at < self.config.engine.max_batch_seconds:
            facts.together = True
        live_at = ts
        at_live: dict[str, dict[str, str]] = {}
        table = self.tables.get(rid)
        if table is not None:
            for sig in table.live():
                if sig.kind == "verdict" and sig.metric.startswith("shadow."):
                    at_live.setdefault(sig.cohort, {})[sig.metric] = table.state_of(sig, self.now)
        facts.at_live, facts.live_at = at_live, live_at

    def readiness_parts(self, rid: str, parts: dict[str, Any] | None) -> None:
        """The canary's variant parts against control's (:mod:`rollguard.domain.variant_parts` view)."""
        ready = self.readiness.get(rid)
        if ready is not None:
            ready.parts = parts

    def readiness_changed(self, rid: str) -> Output:
        """Re-judge a rollout's readiness after its facts changed (see :meth:`_readiness_changed`)."""
        return self._readiness_changed(rid) if rid in self.readiness else Output()

    def _readiness_changed(self, rid: str) -> Output:
        """Re-judge a rollout's readiness: its own alert and, when it changed, a new readiness record."""
        out = Output()
        rc = self.planner.rollout(rid)
        self.book.reconcile(rid, self._system_conditions(rid, rc), {}, self.now, system=True, immediate=True)
        out.alerts.extend(self.book.notify(rid, self.now))
        out.readiness.extend(self._readiness_record(rid))
        return out

    def _readiness_record(self, rid: str) -> list[dict[str, Any]]:
        ready = self.readiness.get(rid)
        if ready is None:
            return []
        key_id = self.config.commands.key_id or None
        settings = self.config.readiness
        record = ready.record_if_changed(settings, self.now, self.signing_key, self.instance, key_id)
        return [] if record is None else [record]

    def refresh_due(self) -> None:
        """Re-read when :meth:`advance` next has work (after a shared silence was added or removed)."""
        self._refresh_due()

    def _refresh_due(self) -> None:
        now = self.now
        due = min(self.book.next_due(now), self.planner.next_due(now))
        for ready in self.readiness.values():
            due = min(due, ready.next_due(self.config.readiness, now))
        for table in self.tables.values():
            for o in table.overrides.values():
                if o.until is not None and o.until > now:
                    due = min(due, o.until)
        if self._hourly and math.isfinite(now):
            due = min(due, (math.floor(now / 3600.0) + 1) * 3600.0)
        self._next_due = due

    def _evict_idle(self) -> None:
        for rid in sorted(self.tables):
            table = self.tables[rid]
            rc = self.planner.rollouts.get(rid)
            if self.now - table.last_ts < IDLE_ROLLOUT_S or self.book.active(rid):
                continue
            if rc is not None and rc.in_flight() is not None:
                continue
            del self.tables[rid]
            self.readiness.pop(rid, None)
            self.book.drop_rollout(rid)
            self.planner.rollouts.pop(rid, None)

    # ------------------------------------------------------------------ views
    def topic_role(self, alert: Mapping[str, Any]) -> str:
        """The topic role (see ``topics/``) an alert record goes to: one topic per severity tier."""
        return self.config.alerts.route(str(alert["severity"])).role

    def status(self, rollout_id: str) -> dict[str, Any]:
        """What an operator wants to see: firing alerts, commands and what controllers applied."""
        rc = self.planner.rollouts.get(rollout_id) or RolloutCommands(rollout_id)
        return {
            "rollout_id": rollout_id,
            "firing": [
                {
                    "alert_id": s.alert_id,
                    "rule": s.rule,
                    "cohort": s.cohort,
                    "severity": s.severity,
                    "suppressed": s.suppressed,
                    "acknowledged_by": s.acknowledged_by,
                }
                for s in sorted(self.book.active(rollout_id), key=lambda s: s.starts_at)
            ],
            "commands": [
                {
                    "command_id": c.command_id,
                    "action": c.action,
                    "cohort": c.cohort,
                    "status": c.status,
                    "issued_at": c.issued_at,
                    "applied_at": c.applied_at,
                    "ack_reason": c.ack_reason,
                    "approved_by": c.approved_by,
                    "expires_at": c.expires_at,
                    # A proposal waits for an operator until then (else it expires unapproved).
                    "approval_expires_at": (
                        c.issued_at + self.config.commands.approval_timeout_s if c.requires_approval else None
                    ),
                    "proposal_id": c.proposal_id,
                    "target_weight": c.target_weight,
                }
                for c in sorted(rc.commands.values(), key=lambda c: c.issued_at)
            ],
            "disabled_scopes": sorted(rc.disabled),
            "level": rc.level,
            "weight": rc.weight,
            "hold": rc.hold,
            "healthy": self.tables[rollout_id].healthy(self.now) if rollout_id in self.tables else True,
            "readiness": (
                self.readiness[rollout_id].view(self.config.readiness, self.now)
                if rollout_id in self.readiness
                else None
            ),
        }

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """Everything this policy decides from, as JSON-compatible data (shared silences left out)."""
        book = self.book.to_state()
        if self.shared_silences:
            book["silences"] = []
        return {
            "version": STATE_VERSION,
            "now": self.now if math.isfinite(self.now) else None,
            "tables": {rid: t.to_state() for rid, t in sorted(self.tables.items())},
            "book": book,
            "planner": {rid: rc.to_state() for rid, rc in sorted(self.planner.rollouts.items())},
            "seen_actions": list(self._seen_actions),
            "readiness": {rid: r.to_state() for rid, r in sorted(self.readiness.items())},
        }

    @classmethod
    def from_state(
        cls,
        config: Config,
        state: Mapping[str, Any],
        *,
        signing_key: bytes | None = None,
        instance: str = "rollguard",
        silences: dict[str, Silence] | None = None,
    ) -> Policy:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported policy state version {state.get('version')!r}")
        p = cls(config, signing_key=signing_key, instance=instance, silences=silences)
        p.now = -math.inf if state["now"] is None else float(state["now"])
        p.tables = {rid: SignalTable.from_state(t) for rid, t in state["tables"].items()}
        p.book = AlertBook.from_state(config.alerts, state["book"])
        if silences is not None:
            p.book.silences = silences
        p.planner.rollouts = {rid: RolloutCommands.from_state(rc) for rid, rc in state["planner"].items()}
        p._seen_actions = list(state["seen_actions"])
        # Checkpoints from before readiness existed have none: those rollouts were seen long ago.
        readiness = state.get("readiness") or {}
        p.readiness = {rid: RolloutReadiness.from_state(r) for rid, r in readiness.items()}
        p._refresh_due()
        return p
