"""Rules: which combinations of signals make an alert, for which scope, at which severity.

A rule's clauses must all hold for one scope (``at: same``), the whole rollout (``at: whole``) or anywhere
in the rollout (``at: any``); ``windows`` asks a metric to agree across windows, ``min_metrics`` for
several metrics, ``group_by: rollout`` + ``min_cohorts`` for several cohorts, ``absent`` for gates such
as "the rollout is healthy". Overrides change thresholds and tier by segment or local time of day.

**Attribution**: when a scope looks regressed only because some of its sub-cohorts are — along one
dimension, those sub-cohorts are regressed and every other one is non-inferior — the condition moves to
those sub-cohorts. So an error spike in ``input_class=coding`` alerts (and acts) on coding, never on the
whole rollout, and billing keeps its canary. The same holds for baseline drift (an outage in one
tenant drifts the whole rollout and every input class through that tenant's traffic: one alert, on the
tenant). Effects are compared in the window that decided each check (recent windows against recent
windows), so a regression found early in a cohort and late in the rollout is still pinned on it.

**Grouping** (one incident, one notification): when a parent scope's condition holds (the whole
rollout, or a dimension of a cross) and so do its sub-cohorts', the sub-cohorts are *grouped* into the
parent: the parent's alert lists them (and names the most affected), theirs exist — commands keep their
scopes — but are not notified while the parent fires. A sub-cohort stands on its own only when the
core found it regressed beyond the whole rollout's regression (an ``excess`` check, see
:mod:`rollguard.detect.excess`: its effect exceeds the whole's by more than the margin, on the
verdicts' own confidence sequences).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from rollguard.domain.cohorts import WHOLE, cohort_key, parse_cohort_key
from rollguard.policy.signals import Signal, SignalTable
from rollguard.settings.alerts import AlertRule, AlertSettings, Clause, RuleOverride

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(slots=True)
class Condition:
    """A rule holding for one scope of one rollout at one evaluation."""

    rule: AlertRule
    rollout_id: str
    cohort: str
    scope: dict[str, str]
    severity: str
    signals: list[Signal]
    starts_at: float
    command: bool
    audience: str
    delivery: str
    attributed_from: list[str] = field(default_factory=list)
    grouped_into: str = ""  # the parent cohort whose alert tells this one's news
    affected: list[Condition] = field(default_factory=list)  # the sub-cohorts grouped into this one
    confounded: list[str] = field(default_factory=list)  # metrics whose control drifted too
    detail: dict[str, str] = field(default_factory=dict)  # system conditions: summary and description
    thin_baseline: str = ""  # what the cohort's control history lacked when the canary started (pre-flight)

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule.name, self.cohort)


def system_rule(name: str, severity: str, description: str) -> AlertRule:
    """A rule rollguard raises about its own machinery (a command not acknowledged, a revert path not
    rehearsed), not about the canary: it never commands, and goes to on-call at once."""
    return AlertRule(
        name, severity, (), command=False, audience="oncall", delivery="now", description=description
    )


def system_condition(
    rule: AlertRule, rollout_id: str, cohort: str, starts_at: float, text: str, description: str
) -> Condition:
    """A :func:`system_rule` holding for ``cohort``: no signals behind it, so its summary (``text``,
    after the rollout id) and ``description`` are written by the caller."""
    return Condition(
        rule=rule,
        rollout_id=rollout_id,
        cohort=cohort,
        scope=parse_cohort_key(cohort),
        severity=rule.severity,
        signals=[],
        starts_at=starts_at,
        command=False,
        audience=rule.audience or "oncall",
        delivery=rule.delivery or "now",
        detail={"summary": f"[{rollout_id}] {text}", "description": description},
    )


def local_hour(ts: float, utc_offset_hours: float) -> float:
    """Hour of the day (0 ≤ h < 24) of an event time, in the configured local offset.

    >>> local_hour(1767225600.0 + 5400, 0.0), local_hour(1767225600.0, -2.0)
    (1.5, 22.0)
    """
    return (ts / 3600.0 + utc_offset_hours) % 24.0


def _hours_match(hours: tuple[float, float], h: float) -> bool:
    start, end = hours
    return start <= h < end if start <= end else (h >= start or h < end)


def override_for(rule: AlertRule, scope: dict[str, str], hour: float) -> RuleOverride | None:
    for ov in rule.overrides:
        if ov.hours is not None and not _hours_match(ov.hours, hour):
            continue
        if all(dim in scope and (val == "*" or scope[dim] == val) for dim, val in ov.scope):
            return ov
    return None


def _matches(clause: Clause, sig: Signal, state: str, min_margins: float) -> bool:
    if sig.kind != clause.kind or state not in clause.states:
        return False
    if clause.metrics and not any(fnmatchcase(sig.metric, p) for p in clause.metrics):
        return False
    if clause.families and sig.family not in clause.families:
        return False
    if clause.phases and sig.phase not in clause.phases:
        return False
    if clause.windows and sig.window not in clause.windows:
        return False
    if min_margins > 0:
        em = sig.effect_margins()
        if em is not None and em < min_margins:  # unknown effect: the detector already applied the margin
            return False
    if clause.min_relative_effect is not None:
        rel = sig.relative_effect()
        if rel is not None and rel < clause.min_relative_effect:
            return False
    return True


class _Context:
    """One rollout's signals with their effective states, indexed for the rules."""

    def __init__(self, table: SignalTable, now: float) -> None:
        self.signals = sorted(table.live(), key=lambda s: s.key)
        self.state = {s.key: table.state_of(s, now) for s in self.signals}
        self.by_cohort: dict[str, list[Signal]] = {}
        self.by_metric: dict[tuple[str, str, str], list[Signal]] = {}  # (kind, cohort, metric)
        self.cohorts_of_metric: dict[tuple[str, str], list[str]] = {}  # (kind, metric)
        self.scope_of: dict[str, dict[str, str]] = {}
        self.beyond: set[tuple[str, str]] = set()  # (cohort, metric) regressed beyond the whole rollout
        for s in self.signals:
            self.by_cohort.setdefault(s.cohort, []).append(s)
            self.scope_of[s.cohort] = s.scope
            if s.kind in ("verdict", "drift"):
                if (s.kind, s.cohort, s.metric) not in self.by_metric:
                    self.cohorts_of_metric.setdefault((s.kind, s.metric), []).append(s.cohort)
                self.by_metric.setdefault((s.kind, s.cohort, s.metric), []).append(s)
            elif s.kind == "excess" and self.state[s.key] == "beyond_parent":
                self.beyond.add((s.cohort, s.metric))


def _clause_at(clause: Clause, cohort: str, ctx: _Context, min_margins: float) -> tuple[bool, list[Signal]]:
    if clause.at == "same":
        pool = ctx.by_cohort.get(cohort, [])
    elif clause.at == "whole":
        pool = ctx.by_cohort.get(WHOLE, [])
    else:
        pool = ctx.signals
    cands = [s for s in pool if _matches(clause, s, ctx.state[s.key], min_margins)]
    if clause.absent:
        return (not cands, [])
    by_metric: dict[str, list[Signal]] = {}
    for s in cands:
        by_metric.setdefault(s.metric, []).append(s)
    if clause.windows:
        need = set(clause.windows)
        by_metric = {m: ss for m, ss in by_metric.items() if need <= {s.window for s in ss}}
    picked = [s for m in sorted(by_metric) for s in by_metric[m]]
    return (len(by_metric) >= clause.min_metrics, picked)


def _holds(rule: AlertRule, cohort: str, ctx: _Context, min_margins: float | None) -> list[Signal] | None:
    found: list[Signal] = []
    for clause in rule.match:
        ok, sigs = _clause_at(
            clause, cohort, ctx, clause.min_effect_margins if min_margins is None else min_margins
        )
        if not ok:
            return None
        found.extend(s for s in sigs if s not in found)
    return found


def evaluate(
    rules: tuple[AlertRule, ...],
    table: SignalTable,
    now: float,
    settings: AlertSettings,
    command_default: bool = True,
    firing: frozenset[tuple[str, str]] = frozenset(),
) -> list[Condition]:
    """Every rule condition that holds for the rollout at ``now`` (after attribution).

    ``firing`` names the (rule, cohort) alerts already out: attribution never moves those, so a later
    signal cannot make an alert resolve and fire again elsewhere."""
    ctx = _Context(table, now)
    hour = local_hour(now, settings.utc_offset_hours)
    out: list[Condition] = []
    for rule in rules:
        same = [c for c in rule.match if c.at == "same" and not c.absent]
        candidates = (
            sorted(
                {s.cohort for s in ctx.signals if any(_matches(c, s, ctx.state[s.key], 0.0) for c in same)}
            )
            if same
            else [WHOLE]
        )
        holding: list[Condition] = []
        for cohort in candidates:
            scope = dict(ctx.by_cohort[cohort][0].scope) if cohort in ctx.by_cohort else {}
            ov = override_for(rule, scope, hour) if rule.group_by == "scope" else override_for(rule, {}, hour)
            sigs = _holds(rule, cohort, ctx, ov.min_effect_margins if ov else None)
            if sigs is None:
                continue
            holding.append(
                _condition(rule, table.rollout_id, cohort, scope, sigs, ov, settings, command_default)
            )
        if rule.group_by == "rollout":
            if len(holding) >= rule.min_cohorts:
                sigs = [s for c in holding for s in c.signals]
                ov = override_for(rule, {}, hour)
                cond = _condition(
                    rule, table.rollout_id, WHOLE, {}, _unique(sigs), ov, settings, command_default
                )
                out.append(cond)
            continue
        if settings.attribution != "off":
            holding = attribute(
                holding,
                ctx,
                settings.attribution,
                settings.attribution_max_share,
                settings.attribution_min_explained,
                frozenset(c for r, c in firing if r == rule.name),
            )
        if settings.grouping:
            group(holding, ctx)
        out.extend(holding)
    for cond in out:
        _guard_drift(cond, table, ctx, settings.drift_guard_s)
    return out


def _guard_drift(cond: Condition, table: SignalTable, ctx: _Context, guard_s: float) -> None:
    """Both arms moved: keep the alert, at most a warning, and never command on it."""
    regressed = [s for s in cond.signals if s.kind == "verdict" and ctx.state[s.key] == "regressed"]
    if not regressed or not all(table.confounded(s, guard_s) for s in regressed):
        return
    cond.confounded = sorted({s.metric for s in regressed})
    cond.command = False
    if SEVERITY_RANK[cond.severity] > SEVERITY_RANK["warning"]:
        cond.severity = "warning"


def _unique(sigs: list[Signal]) -> list[Signal]:
    seen: set[tuple[str, str, str, str]] = set()
    out = []
    for s in sigs:
        if s.key not in seen:
            seen.add(s.key)
            out.append(s)
    return out


def _condition(
    rule: AlertRule,
    rollout_id: str,
    cohort: str,
    scope: dict[str, str],
    sigs: list[Signal],
    ov: RuleOverride | None,
    settings: AlertSettings,
    command_default: bool,
) -> Condition:
    severity = (ov.severity if ov and ov.severity else None) or rule.severity
    route = settings.route(severity)
    command = rule.commands if ov is None or ov.command is None else ov.command
    if all(c.kind == "drift" or c.absent for c in rule.match):
        command = False
    starts = min((s.ts for s in sigs), default=0.0)
    return Condition(
        rule=rule,
        rollout_id=rollout_id,
        cohort=cohort,
        scope=scope,
        severity=severity,
        signals=sigs,
        starts_at=starts,
        command=command and command_default,
        audience=(ov.audience if ov and ov.audience else None) or rule.audience or route.audience,
        delivery=rule.delivery or route.delivery,
    )


def attribute(
    conds: list[Condition],
    ctx: _Context,
    mode: str,
    max_share: float = 0.5,
    min_explained: float = 0.7,
    keep: frozenset[str] = frozenset(),
) -> list[Condition]:
    """Move conditions that only hold because of some cohorts to those cohorts.

    A condition moves when each of its regressed metrics is explained (a) by its own sub-cohorts one
    dimension deeper, or (b) for a segment, by the rollout-level explanation along *another* dimension:
    if only ``input_class=coding`` is regressed among the input classes, a regressed ``tenant=t1`` is
    coding traffic misbehaving inside t1, not a second problem."""
    by_cohort = {c.cohort: c for c in conds}
    root: dict[tuple[str, str], tuple[str, list[Signal]] | None] = {}
    queue = sorted(conds, key=lambda c: (len(c.scope), c.cohort))
    while queue:
        cond = queue.pop(0)
        if by_cohort.get(cond.cohort) is not cond or cond.cohort in keep:
            continue
        regressed = [s for s in cond.signals if s.cohort == cond.cohort and _bad(s, ctx)]
        if not regressed:
            continue
        targets: dict[str, list[Signal]] = {}
        for sig in regressed:
            found = _explain(cond.scope, sig.kind, sig.metric, ctx, mode, max_share, min_explained)
            if found is None and cond.scope:
                if (sig.kind, sig.metric) not in root:
                    root[(sig.kind, sig.metric)] = _explain(
                        {}, sig.kind, sig.metric, ctx, mode, max_share, min_explained
                    )
                found = root[(sig.kind, sig.metric)]
                if found is not None and found[0] in cond.scope:
                    found = None  # the explanation runs along this cohort's own dimension: it is part of it
            if found is None:
                break
            for kid in found[1]:
                targets.setdefault(kid.cohort, []).append(kid)
        else:
            del by_cohort[cond.cohort]
            for child, kid_sigs in sorted(targets.items()):
                existing = by_cohort.get(child)
                if existing is None:
                    existing = Condition(
                        rule=cond.rule,
                        rollout_id=cond.rollout_id,
                        cohort=child,
                        scope=dict(kid_sigs[0].scope),
                        severity=cond.severity,
                        signals=list(kid_sigs),
                        starts_at=min(s.ts for s in kid_sigs),
                        command=cond.command,
                        audience=cond.audience,
                        delivery=cond.delivery,
                    )
                    by_cohort[child] = existing
                    queue.append(existing)
                    queue.sort(key=lambda c: (len(c.scope), c.cohort))
                existing.signals = _unique(existing.signals + kid_sigs + regressed)
                existing.attributed_from = sorted(
                    {*existing.attributed_from, *cond.attributed_from, cond.cohort}
                )
    return [by_cohort[k] for k in sorted(by_cohort)]


def _bad(sig: Signal, ctx: _Context) -> bool:
    """A signal that makes a condition: a regressed verdict, or a control that drifted."""
    state = ctx.state[sig.key]
    return (sig.kind == "verdict" and state == "regressed") or (sig.kind == "drift" and state == "drifted")


def group(conds: list[Condition], ctx: _Context) -> None:
    """Group each sub-cohort's condition into its broadest parent's condition of the same rule (the
    whole rollout, else a dimension of a cross), unless the core found it regressed beyond the whole
    rollout's regression on one of its metrics (see the module)."""
    by_cohort = {c.cohort: c for c in conds}
    for cond in sorted(conds, key=lambda c: (len(c.scope), c.cohort)):
        if not cond.scope:
            continue
        parents = [p for p in by_cohort.values() if len(p.scope) < len(cond.scope)
                   and all(cond.scope.get(k) == v for k, v in p.scope.items())]  # fmt: skip
        if not parents:
            continue
        parent = min(parents, key=lambda p: (len(p.scope), p.cohort))
        while parent.grouped_into:
            parent = by_cohort[parent.grouped_into]
        bad = {s.metric for s in cond.signals if s.cohort == cond.cohort and _bad(s, ctx)}
        if any((cond.cohort, metric) in ctx.beyond for metric in bad):
            continue
        cond.grouped_into = parent.cohort
        parent.affected.append(cond)


def _metric_state(
    ctx: _Context, kind: str, cohort: str, metric: str
) -> tuple[str, Signal | None, float | None]:
    """A cohort's view of one metric over its windows: "regressed" if any window says so (with that
    signal), else its cumulative state; plus its canary count when the evidence has it. For drift:
    "regressed" when its control drifted, "non_inferior" when it is stable or was never seen to move."""
    sigs = ctx.by_metric.get((kind, cohort, metric), [])
    if kind == "drift":
        moved = [s for s in sigs if ctx.state[s.key] == "drifted"]
        return ("regressed", moved[0], None) if moved else ("non_inferior", sigs[0] if sigs else None, None)
    bad = [s for s in sigs if ctx.state[s.key] == "regressed"]
    n = max(
        (float(v) for s in sigs if isinstance(v := s.evidence.get("n_canary"), int | float)), default=None
    )
    if bad:
        return "regressed", bad[0], n
    cumulative = [s for s in sigs if s.window == "cumulative"]
    pick = cumulative[0] if cumulative else (sigs[0] if sigs else None)
    if pick is None:
        return "insufficient", None, n
    state = ctx.state[pick.key]
    bounds = pick.effect_bounds()
    if state == "insufficient" and bounds is not None and bounds[0] > 0:
        state = "leaning_regressed"  # undecided about the margin, but certainly worse than control: not fine
    return state, pick, n


def _excess(sig: Signal) -> float | None:
    """canary − control oriented so that worse is positive, of the window that decided the check (the
    recent window's estimates for a recent-window decision, else the cumulative arm means)."""
    if sig.recent() is not None:
        return sig.effect()
    c, t = sig.evidence.get("control"), sig.evidence.get("canary")
    if not isinstance(c, int | float) or not isinstance(t, int | float):
        return None
    return float(c - t) if sig.family == "quality" else float(t - c)


def _explain(parent: dict[str, str], kind: str, metric: str, ctx: _Context, mode: str, max_share: float,
             min_explained: float) -> tuple[str, list[Signal]] | None:  # fmt: skip
    """Along one dimension below ``parent``: the regressed sub-cohorts when every other one is fine
    (non-inferior, or merely not regressed in the lenient mode), they carry at most ``max_share`` of the
    parent's canary traffic and, when the parent itself is regressed, account for at least
    ``min_explained`` of its excess (Σ share × excess of the culprits / excess of the parent: a shift
    everywhere is not pinned on the first cohort big enough to show it). The most specific such
    dimension (smallest share); None otherwise."""
    allowed = {"non_inferior"} if mode == "non_inferior" else {"non_inferior", "insufficient"}
    by_dim: dict[str, list[str]] = {}
    # Drift is said only when the control moves: every cohort known is a sibling, quiet or not.
    candidates = list(ctx.scope_of) if kind == "drift" else ctx.cohorts_of_metric.get((kind, metric), [])
    for cohort in candidates:
        scope = ctx.scope_of[cohort]
        if len(scope) != len(parent) + 1 or any(scope.get(k) != v for k, v in parent.items()):
            continue
        (dim,) = set(scope) - set(parent)
        by_dim.setdefault(dim, []).append(cohort)
    p_state, p_sig, n_parent = _metric_state(ctx, kind, cohort_key(parent), metric)
    p_excess = _excess(p_sig) if p_state == "regressed" and p_sig is not None else None
    best: tuple[float, str, list[Signal]] | None = None
    for dim, cohorts in sorted(by_dim.items()):
        views = {c: _metric_state(ctx, kind, c, metric) for c in cohorts}
        bad = [c for c in cohorts if views[c][0] == "regressed"]
        rest = [c for c in cohorts if views[c][0] != "regressed"]
        if not bad or not rest or any(views[c][0] not in allowed for c in rest):
            continue
        counts = [views[c][2] for c in bad]
        known = n_parent and all(n is not None for n in counts)
        share = (
            sum(n for n in counts if n is not None) / n_parent
            if known and n_parent
            else len(bad) / len(cohorts)
        )
        if share > max_share:
            continue
        kids = [sig for c in sorted(bad) if (sig := views[c][1]) is not None]
        if p_excess is not None and p_excess > 0 and known and n_parent:
            parts = [(n, _excess(k)) for n, k in zip(counts, kids, strict=True)]
            if all(e is not None for _, e in parts):
                explained = sum((n or 0.0) / n_parent * (e or 0.0) for n, e in parts) / p_excess
                if explained < min_explained:
                    continue
        if best is None or (share, dim) < (best[0], best[1]):
            best = (share, dim, kids)
    return None if best is None else (best[1], best[2])
