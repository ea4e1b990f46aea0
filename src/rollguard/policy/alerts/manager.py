"""The alert lifecycle: one firing per condition, repeats, resolves, inhibition, silences, flapping, digest.

What Alertmanager users complain about, done the other way round:

- a resolve always reaches whoever got the firing, even if the alert was silenced or inhibited meanwhile;
- one record is one status (firing *or* resolved), never a mix;
- flapping is detected (share of state changes over the last ``flap_window`` evaluations above
  ``flap_start``, cleared below ``flap_stop``): a flapping alert notifies once, holds its resolve, and
  does not drive commands until it settles;
- ``resolve_after_s`` of calm is needed before a resolve (hysteresis), so a blip does not page twice;
- one incident, one notification: a sub-cohort grouped into its parent's alert (see
  :func:`rollguard.policy.alerts.rules.group`) is not notified while the parent fires — the parent's
  record lists the affected cohorts (``affected``) and the most affected one (``most_affected``); it
  still drives its scoped commands. A new sub-cohort alert below critical waits ``group_wait_s`` for
  its parent before it is told (Alertmanager's group_wait, in event time).

Everything is event time; nothing reads the clock. State is plain data (:meth:`AlertBook.to_state`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rollguard.domain.cohorts import WHOLE
from rollguard.domain.variant_parts import changed_parts_text
from rollguard.policy.alerts.records import (
    PAGERDUTY_SEVERITY,
    alertname,
    digest,
    fingerprint,
    label_name,
    primary,
    scope_text,
    signal_record,
    signal_sentence,
)
from rollguard.policy.alerts.rules import SEVERITY_RANK, Condition
from rollguard.policy.signals import Signal
from rollguard.settings.alerts import AlertSettings

DIGEST_RULE = "quality_digest"


def affected_entry(cond: Condition, states: Mapping[tuple[str, str, str, str], str]) -> dict[str, Any]:
    """One sub-cohort grouped into a parent's alert: its cohort, scope, metric and effect (in the
    metric's units and relative, of the window that decided), and the effect in margins."""
    main: Signal | None = primary(cond.signals, states, cond.cohort)
    entry: dict[str, Any] = {"cohort": cond.cohort, "scope": dict(cond.scope)}
    if main is not None:
        entry["metric"] = main.metric or main.kind
        for key, value in (("effect", main.effect()), ("relative_effect", main.relative_effect()),
                           ("effect_margins", main.effect_margins())):  # fmt: skip
            if value is not None and math.isfinite(value):
                entry[key] = round(value, 6)
    return entry


def most_affected(affected: list[dict[str, Any]]) -> dict[str, Any]:
    """The grouped cohort with the largest effect in margins (then relative effect, then name)."""

    def rank(a: dict[str, Any]) -> tuple[float, float, str]:
        return (a.get("effect_margins", -math.inf), a.get("relative_effect", -math.inf), a["cohort"])

    return max(affected, key=rank)


def affected_text(affected: list[dict[str, Any]]) -> str:
    """ "also in 9 cohorts, most affected input_class=coding (+62%)"."""
    top = most_affected(affected)
    n = len(affected)
    rel = top.get("relative_effect")
    size = f" ({rel * 100:+.0f}%)" if isinstance(rel, int | float) and top.get("metric", "").endswith(
        (".mean", ".p95", ".p99")) else ""  # fmt: skip
    if not size and isinstance(top.get("effect"), int | float) and top.get("metric", "").endswith("_rate"):
        size = f" ({top['effect'] * 100:+.2f} pp)"
    names = ", ".join(a["cohort"] for a in affected[:6]) + (", …" if n > 6 else "")
    return f"also in {n} cohort{'s' if n != 1 else ''} ({names}), most affected {top['cohort']}{size}"


def changed_parts(sigs: list[Signal], main: Signal | None) -> list[str]:
    """The variant parts the canary changes, as the checks' evidence names them (the deciding one's
    first), or ``[]`` when the events did not name their parts."""
    for sig in ([main] if main is not None else []) + list(sigs):
        names = sig.evidence.get("changed_parts")
        if isinstance(names, list) and names:
            return [str(n) for n in names]
    return []


MATCH_OPS = ("=", "!=", "=~", "!~")


@dataclass(slots=True)
class AlertState:
    """One fingerprint's lifecycle (the current or last firing)."""

    fingerprint: str
    rule: str
    rollout_id: str
    cohort: str
    scope: dict[str, str]
    severity: str
    audience: str
    delivery: str
    alert_id: str
    starts_at: float
    status: str = "firing"  # firing | resolved
    ends_at: float | None = None
    active: bool = True
    cleared_at: float | None = None
    resolve_now: bool = False
    notified: bool = False
    last_sent: float | None = None
    sends: int = 0
    firings: int = 1
    history: int = 0
    history_len: int = 0
    flapping: bool = False
    acknowledged_by: str | None = None
    escalated: bool = False
    pending_reason: str | None = None
    suppressed: str = ""
    command: bool = False
    approval: str | None = None
    system: bool = False
    signals: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""
    description: str = ""
    attributed_from: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    runbook_url: str = ""
    grouped_into: str = ""  # the parent cohort whose alert tells this one's news
    affected: list[dict[str, Any]] = field(default_factory=list)  # sub-cohorts grouped into this alert

    def to_state(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> AlertState:
        return cls(**dict(state))


@dataclass(slots=True)
class Silence:
    """An operator's silence: alerts whose labels match every matcher are not notified until ``ends_at``."""

    silence_id: str
    matchers: list[list[str]]  # [label, op, value]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str = ""

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        for name, op, value in self.matchers:
            have = labels.get(name, "")
            if op == "=":
                ok = have == value
            elif op == "!=":
                ok = have != value
            elif op == "=~":
                ok = re.fullmatch(value, have) is not None
            else:
                ok = re.fullmatch(value, have) is None
            if not ok:
                return False
        return True

    def to_state(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_matchers(raw: Any) -> list[list[str]] | str:
    """Matchers from ``{label: value}`` or ``[{name, op, value}]`` / ``["label=value"]``; a reason when bad.

    >>> parse_matchers({"rollout": "r1"}), parse_matchers(["severity!=info"])
    ([['rollout', '=', 'r1']], [['severity', '!=', 'info']])
    """
    out: list[list[str]] = []
    if isinstance(raw, Mapping):
        out = [[str(k), "=", str(v)] for k, v in sorted(raw.items())]
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping):
                name, op, value = item.get("name"), item.get("op", "="), item.get("value")
            elif isinstance(item, str):
                m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(=~|!~|!=|=)(.*)", item)
                if m is None:
                    return f"bad matcher {item!r}"
                name, op, value = m.groups()
            else:
                return "matchers must be objects or strings"
            if not isinstance(name, str) or op not in MATCH_OPS or not isinstance(value, str):
                return f"bad matcher {item!r}"
            out.append([name, str(op), value])
    else:
        return "matchers must be a mapping or a list"
    if not out:
        return "a silence needs at least one matcher"
    for _, op, value in out:
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                return f"bad regular expression {value!r}: {exc}"
    return out


@dataclass(slots=True)
class DigestBuffer:
    """Digest-delivered alerts (quality concerns) of one rollout within the current period."""

    period_start: float
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)


class AlertBook:
    """Alert states of every rollout, the silences, and the digest buffers."""

    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings
        self.alerts: dict[str, dict[str, AlertState]] = {}
        self.silences: dict[str, Silence] = {}
        self.digests: dict[str, DigestBuffer] = {}

    # ------------------------------------------------------------------ conditions → states
    def reconcile(
        self,
        rollout_id: str,
        conds: list[Condition],
        states: Mapping[tuple[str, str, str, str], str],
        now: float,
        *,
        system: bool = False,
        immediate: bool = False,
    ) -> None:
        """Fold one evaluation in: new firings, still-active ones, cleared ones (not yet resolved).

        ``system`` reconciles only rollguard's own alerts (unacked commands …) and leaves the flap
        history alone; ``immediate`` resolves cleared alerts without hysteresis (rollout reset)."""
        book = self.alerts.setdefault(rollout_id, {})
        seen: set[str] = set()
        for cond in conds:
            fp = fingerprint(cond.rule.name, rollout_id, cond.cohort)
            seen.add(fp)
            st = book.get(fp)
            if st is None or st.status == "resolved":
                firings = st.firings + 1 if st else 1
                start = cond.starts_at
                if st is not None and st.ends_at is not None:
                    start = max(start, st.ends_at)
                new = AlertState(
                    fingerprint=fp,
                    rule=cond.rule.name,
                    rollout_id=rollout_id,
                    cohort=cond.cohort,
                    scope=dict(cond.scope),
                    severity=cond.severity,
                    audience=cond.audience,
                    delivery=cond.delivery,
                    alert_id="al-" + digest(fp, firings, start),
                    starts_at=start,
                    firings=firings,
                    system=system,
                )
                if st is not None:
                    new.history, new.history_len, new.flapping = st.history, st.history_len, st.flapping
                book[fp] = st = new
            else:
                st.active = True
                st.cleared_at = None
                st.resolve_now = False
                if SEVERITY_RANK[cond.severity] > SEVERITY_RANK[st.severity]:
                    st.severity = cond.severity
                    st.audience = cond.audience
                    st.pending_reason = "severity_raised"
            st.command = cond.command
            st.approval = cond.rule.approval
            st.delivery = cond.delivery
            st.attributed_from = list(cond.attributed_from)
            st.grouped_into = cond.grouped_into
            st.affected = [affected_entry(c, states) for c in cond.affected]
            st.runbook_url = cond.rule.runbook_url or (
                f"{self.settings.runbook_url}#{cond.rule.name}" if self.settings.runbook_url else ""
            )
            self._describe(st, cond, states)
        for fp, st in book.items():
            if st.system != system:
                continue
            if fp not in seen and st.status == "firing" and st.active:
                st.active = False
                st.cleared_at = now
            if st.status == "firing" and not st.active and immediate:
                st.resolve_now = True
            if not system:
                self._push_history(st)
        self._trim(book)

    def _describe(
        self, st: AlertState, cond: Condition, states: Mapping[tuple[str, str, str, str], str]
    ) -> None:
        if cond.detail:
            st.summary = cond.detail.get("summary", st.rule)
            st.description = cond.detail.get("description", st.summary)
            return
        sigs = cond.signals
        st.signals = [signal_record(s, states.get(s.key, s.state)) for s in sigs]
        main = primary(sigs, states, cond.cohort)
        head = signal_sentence(main) if main is not None else cond.rule.description or cond.rule.name
        others = len(sigs) - 1
        summary = f"[{cond.rollout_id}] {head}"
        if main is not None and main.cohort != cond.cohort:
            summary += f" (explained by {scope_text(main.cohort)})"
        if others > 0:
            summary += f"; {others} more signal{'s' if others > 1 else ''}"
        if st.affected:
            summary += "; " + affected_text(st.affected)
        if cond.confounded:
            summary += (f" (the control drifted on {', '.join(cond.confounded)} too: both arms moved, "
                        "so no automatic command)")  # fmt: skip
        if cond.attributed_from:
            parents = ", ".join(scope_text(c) for c in cond.attributed_from)
            summary += f" (explains the regression of {parents}: other cohorts are non-inferior)"
        parts = changed_parts(sigs, main)
        if parts:
            summary += f" ({changed_parts_text(parts)})"
        st.summary = summary
        lines = [cond.rule.description] if cond.rule.description else []
        lines += [signal_sentence(s) for s in sigs[:10]]
        if len(parts) > 1:
            lines.append(f"{changed_parts_text(parts)}, so this regression cannot be pinned on one of them")
        if cond.thin_baseline:
            lines.append(
                f"it compares against a thin baseline: the control history of {scope_text(cond.cohort)} "
                f"had {cond.thin_baseline} when the canary started (pre-flight), so the comparison leans "
                "on control gathered alongside the canary"
            )
        st.description = ". ".join(line[:1].upper() + line[1:] for line in lines) + "."

    def _push_history(self, st: AlertState) -> None:
        window = self.settings.flap_window
        st.history = ((st.history << 1) | int(st.active)) & ((1 << window) - 1)
        st.history_len = min(st.history_len + 1, window)
        bits = st.history
        changes = bin((bits ^ (bits >> 1)) & ((1 << max(st.history_len - 1, 0)) - 1)).count("1")
        ratio = changes / (window - 1)
        if not st.flapping and ratio > self.settings.flap_start:
            st.flapping = True
        elif st.flapping and ratio < self.settings.flap_stop:
            st.flapping = False

    def _trim(self, book: dict[str, AlertState]) -> None:
        cap = self.settings.max_alerts_per_rollout
        if len(book) <= cap:
            return
        resolved = sorted(
            (s for s in book.values() if s.status == "resolved"),
            key=lambda s: (s.ends_at or 0.0, s.fingerprint),
        )
        for s in resolved[: len(book) - cap]:
            del book[s.fingerprint]

    # ------------------------------------------------------------------ operator and policy hooks
    def find(self, alert_id: str) -> AlertState | None:
        for book in self.alerts.values():
            for st in book.values():
                if alert_id in (st.alert_id, st.fingerprint):
                    return st
        return None

    def escalate(self, rollout_id: str, fingerprints: list[str], reason: str) -> None:
        """Raise an alert one tier (an unapproved proposal expired) and notify again."""
        for fp in fingerprints:
            st = self.alerts.get(rollout_id, {}).get(fp)
            if st is None or st.status != "firing":
                continue
            up = {"info": "warning", "warning": "critical"}.get(st.severity, st.severity)
            if up != st.severity:
                st.severity = up
                st.audience = self.settings.route(up).audience
            st.escalated = True
            st.pending_reason = reason

    def link_command(self, rollout_id: str, fingerprints: list[str], command_id: str) -> None:
        for fp in fingerprints:
            st = self.alerts.get(rollout_id, {}).get(fp)
            if st is not None and command_id not in st.commands:
                st.commands = [*st.commands[-7:], command_id]

    def command_triggers(self, rollout_id: str) -> list[AlertState]:
        """Firing, active, settled alerts whose rule may command."""
        return sorted(
            (
                s
                for s in self.alerts.get(rollout_id, {}).values()
                if s.status == "firing" and s.active and s.command and not s.flapping and not s.system
            ),
            key=lambda s: (s.starts_at, s.fingerprint),
        )

    def active(self, rollout_id: str) -> list[AlertState]:
        return [s for s in self.alerts.get(rollout_id, {}).values() if s.status == "firing" and s.active]

    def drop_rollout(self, rollout_id: str) -> None:
        self.alerts.pop(rollout_id, None)
        self.digests.pop(rollout_id, None)

    # ------------------------------------------------------------------ notifications
    def labels(self, st: AlertState) -> dict[str, str]:
        labels = {
            "alertname": alertname(st.rule),
            "severity": st.severity,
            "rollout": st.rollout_id,
            "cohort": st.cohort,
            "rule": st.rule,
            "audience": st.audience,
            "delivery": st.delivery,
        }
        for dim, value in sorted(st.scope.items()):
            labels[label_name(dim)] = value
        return labels

    def _suppression(self, st: AlertState, book: Mapping[str, AlertState], now: float) -> str:
        labels = self.labels(st)
        for sid in sorted(self.silences):
            s = self.silences[sid]
            if s.active(now) and s.matches(labels):
                return f"silenced:{sid}"
        if (
            st.severity in self.settings.inhibit_targets and not st.system
        ):  # rollguard's own news is never inhibited
            for other in sorted(book.values(), key=lambda o: o.fingerprint):
                if (
                    other is not st
                    and other.status == "firing"
                    and other.severity == "critical"
                    and all(st.scope.get(k) == v for k, v in other.scope.items())
                ):
                    return f"inhibited:{other.alert_id}"
        if st.grouped_into:
            parent = book.get(fingerprint(st.rule, st.rollout_id, st.grouped_into))
            if parent is not None and parent.status == "firing" and parent.active:
                return f"grouped:{parent.alert_id}"
        return "flapping" if st.flapping else ""

    def notify(self, rollout_id: str, now: float) -> list[dict[str, Any]]:
        """Emit what is due for one rollout: resolves first, then new firings, escalations and repeats."""
        book = self.alerts.get(rollout_id, {})
        out: list[dict[str, Any]] = []
        ordered = sorted(book.values(), key=lambda s: (s.starts_at, s.fingerprint))
        for st in ordered:
            if st.status != "firing" or st.active:
                continue
            assert st.cleared_at is not None
            due = st.cleared_at if st.resolve_now else st.cleared_at + self.settings.resolve_after_s
            if now >= due and (not st.flapping or st.resolve_now):
                st.status = "resolved"
                st.ends_at = st.cleared_at
                st.suppressed = ""
                if st.notified:  # whoever got the firing gets the resolve, silenced or not
                    out.append(self._record(st, "resolved", "resolved", now))
                self._to_digest(st)
        for st in ordered:
            if st.status != "firing" or not st.active:
                continue
            sup = self._suppression(st, book, now)
            if not sup and not st.notified and now < self._told_after(st):
                sup = "group_wait"
            st.suppressed = sup
            if not st.notified:
                if sup == "":
                    out.append(
                        self._emit(st, st.pending_reason or ("new" if st.sends == 0 else "unsuppressed"), now)
                    )
                elif sup == "flapping" and st.sends == 0:
                    out.append(self._emit(st, "flapping", now))
            elif sup == "":
                repeat = self.settings.repeat_interval_s.get(st.severity, math.inf)
                if st.pending_reason is not None:
                    out.append(self._emit(st, st.pending_reason, now))
                elif st.acknowledged_by is None and st.last_sent is not None and now - st.last_sent >= repeat:
                    out.append(self._emit(st, "repeat", now))
        return out

    def _told_after(self, st: AlertState) -> float:
        """When a new alert may first be told: at once for the whole rollout, rollguard's own alerts
        and pages; after the tier's group wait for a sub-cohort (its parent may be about to fire)."""
        if not st.scope or st.system or st.sends:
            return -math.inf
        return st.starts_at + self.settings.group_wait_s.get(st.severity, 0.0)

    def _emit(self, st: AlertState, reason: str, now: float) -> dict[str, Any]:
        st.notified = True
        st.last_sent = now
        st.sends += 1
        st.pending_reason = None
        self._to_digest(st)
        return self._record(st, "firing", reason, now)

    def _record(self, st: AlertState, status: str, reason: str, now: float) -> dict[str, Any]:
        s = self.settings
        labels = self.labels(st)
        annotations = {"summary": st.summary, "description": st.description}
        if st.runbook_url:
            annotations["runbook_url"] = st.runbook_url
        if st.flapping:
            annotations["flapping"] = "true: notifications held until the condition settles"
        if st.escalated:
            annotations["escalated"] = "true"
        if st.acknowledged_by:
            annotations["acknowledged_by"] = st.acknowledged_by
        if st.commands:
            annotations["commands"] = ", ".join(st.commands)
        if st.attributed_from:
            annotations["attributed_from"] = ", ".join(st.attributed_from)
        if st.affected:
            annotations["affected_cohorts"] = affected_text(st.affected)
        if st.grouped_into:
            annotations["grouped_into"] = st.grouped_into
        record: dict[str, Any] = {
            "schema_version": 1,
            "alert_id": st.alert_id,
            "fingerprint": st.fingerprint,
            "status": status,
            "severity": st.severity,
            "audience": st.audience,
            "rollout_id": st.rollout_id,
            "scope": dict(st.scope),
            "rule": st.rule,
            "summary": st.summary,
            "signals": list(st.signals),
            "starts_at": st.starts_at,
            "ends_at": st.ends_at if status == "resolved" else None,
            "labels": labels,
            "annotations": annotations,
            "source": s.source,
            "notification": {"reason": reason, "seq": st.sends, "at": now},
            "affected": [dict(a) for a in st.affected],
            "pagerduty": {
                "event_action": "trigger" if status == "firing" else "resolve",
                "dedup_key": st.fingerprint,
                "payload": {
                    "summary": st.summary[:1024],
                    "severity": PAGERDUTY_SEVERITY[st.severity],
                    "source": s.source,
                    "component": st.cohort,
                    "group": st.rollout_id,
                    "class": st.rule,
                    "custom_details": {
                        "alert_id": st.alert_id,
                        "audience": st.audience,
                        "delivery": st.delivery,
                    },
                },
            },
        }
        if st.affected:
            record["most_affected"] = dict(most_affected(st.affected))
        if st.grouped_into:
            record["grouped_into"] = st.grouped_into
        if s.generator_url:
            record["generator_url"] = s.generator_url.format(
                rollout=st.rollout_id, cohort=st.cohort, rule=st.rule
            )
        return record

    # ------------------------------------------------------------------ digest
    def _period(self, ts: float) -> float:
        interval = self.settings.digest_interval_s
        off = self.settings.utc_offset_hours * 3600.0
        return math.floor((ts + off) / interval) * interval - off

    def _to_digest(self, st: AlertState) -> None:
        if st.delivery != "digest" or st.system:
            return
        buf = self.digests.get(st.rollout_id)
        if buf is None:
            buf = self.digests[st.rollout_id] = DigestBuffer(self._period(st.last_sent or st.starts_at))
        if len(buf.entries) >= 100 and st.alert_id not in buf.entries:
            return
        buf.entries[st.alert_id] = {
            "alert_id": st.alert_id,
            "fingerprint": st.fingerprint,
            "rule": st.rule,
            "cohort": st.cohort,
            "severity": st.severity,
            "status": st.status,
            "starts_at": st.starts_at,
            "ends_at": st.ends_at,
            "summary": st.summary,
            "signals": list(st.signals),
        }

    def digests_due(self, now: float) -> list[dict[str, Any]]:
        """One digest per rollout whose period ended: what fired, resolved or is still open in it."""
        out: list[dict[str, Any]] = []
        interval = self.settings.digest_interval_s
        for rid in sorted(self.digests):
            buf = self.digests[rid]
            end = buf.period_start + interval
            if now < end:
                continue
            entries = [
                buf.entries[k] for k in sorted(buf.entries, key=lambda k: (buf.entries[k]["starts_at"], k))
            ]
            if entries:
                out.append(self._digest_record(rid, buf.period_start, end, entries))
            open_now = {k: v for k, v in buf.entries.items() if v["status"] == "firing"}
            for st in self.alerts.get(rid, {}).values():
                if st.alert_id in open_now and st.status == "resolved":
                    del open_now[st.alert_id]
            if open_now:
                self.digests[rid] = DigestBuffer(self._period(now), open_now)
            else:
                del self.digests[rid]
        return out

    def _digest_record(
        self, rollout_id: str, start: float, end: float, entries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        s = self.settings
        fp = fingerprint(DIGEST_RULE, rollout_id, WHOLE)
        firing = sum(1 for e in entries if e["status"] == "firing")
        heads = "; ".join(str(e["summary"]).removeprefix(f"[{rollout_id}] ") for e in entries[:5])
        summary = (
            f"[{rollout_id}] quality digest: {len(entries)} concern{'s' if len(entries) != 1 else ''} "
            f"({firing} still open): {heads}"
        )
        labels = {
            "alertname": alertname(DIGEST_RULE),
            "severity": "info",
            "rollout": rollout_id,
            "cohort": WHOLE,
            "rule": DIGEST_RULE,
            "audience": s.digest_audience,
            "delivery": "digest",
        }
        return {
            "schema_version": 1,
            "alert_id": "dg-" + digest(fp, start),
            "fingerprint": fp,
            "status": "firing",
            "severity": "info",
            "audience": s.digest_audience,
            "rollout_id": rollout_id,
            "scope": {},
            "rule": DIGEST_RULE,
            "summary": summary,
            "signals": [sig for e in entries for sig in e["signals"]][:50],
            "starts_at": start,
            "ends_at": end,
            "labels": labels,
            "annotations": {
                "summary": summary,
                "description": "Periodic digest of quality concerns; one-shot: "
                "starts_at and ends_at bound its period.",
            },
            "source": s.source,
            "notification": {"reason": "digest", "seq": 1, "at": end},
            "digest": {"period_start": start, "period_end": end, "entries": entries},
        }

    # ------------------------------------------------------------------ timers and state
    def next_due(self, now: float) -> float:
        """The next event time after ``now`` at which a resolve, repeat, silence end or digest is due."""
        s = self.settings
        times: list[float] = []
        for book in self.alerts.values():
            for st in book.values():
                if st.status != "firing":
                    continue
                if not st.active and st.cleared_at is not None:
                    times.append(st.cleared_at + (0.0 if st.resolve_now else s.resolve_after_s))
                elif not st.notified:
                    times.append(self._told_after(st))
                elif st.notified and st.acknowledged_by is None and st.last_sent is not None:
                    times.append(st.last_sent + s.repeat_interval_s.get(st.severity, math.inf))
        times += [sil.ends_at for sil in self.silences.values()]
        times += [sil.starts_at for sil in self.silences.values()]
        times += [buf.period_start + s.digest_interval_s for buf in self.digests.values()]
        return min((t for t in times if t > now), default=math.inf)

    def expire_silences(self, now: float) -> None:
        for sid in [k for k, v in self.silences.items() if now >= v.ends_at]:
            del self.silences[sid]

    def to_state(self) -> dict[str, Any]:
        return {
            "alerts": {rid: [st.to_state() for st in book.values()] for rid, book in self.alerts.items()},
            "silences": [s.to_state() for s in self.silences.values()],
            "digests": {
                rid: {"period_start": b.period_start, "entries": b.entries} for rid, b in self.digests.items()
            },
        }

    @classmethod
    def from_state(cls, settings: AlertSettings, state: Mapping[str, Any]) -> AlertBook:
        book = cls(settings)
        for rid, items in state["alerts"].items():
            book.alerts[rid] = {raw["fingerprint"]: AlertState.from_state(raw) for raw in items}
        for raw in state["silences"]:
            s = Silence(**raw)
            book.silences[s.silence_id] = s
        for rid, raw in state["digests"].items():
            book.digests[rid] = DigestBuffer(float(raw["period_start"]), dict(raw["entries"]))
        return book
