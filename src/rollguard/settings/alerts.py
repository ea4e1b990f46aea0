"""The ``alerts`` section: alert rules, severity routes and alert lifecycle (:class:`AlertSettings`).

The defaults are the product's behaviour with no config at all (see :func:`default_rules`).

Example::

    alerts:
      resolve_after_s: 300
      rules:
        - name: errors_confirmed            # a short and a long window must agree
          severity: critical
          match:
            - {family: guardrail, state: regressed, windows: [cumulative, recent]}
          overrides:
            - {scope: {tenant: free}, severity: warning}      # segment-specific tier
            - {hours: [22, 6], min_effect_margins: 2}          # quieter at night (UTC + utc_offset_hours)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from rollguard.domain.metrics import FAMILIES
from rollguard.settings.checks import (
    Locator,
    boolean,
    choice,
    fill,
    mapping,
    names,
    number,
    only,
    positive,
    probability,
    required,
    sequence,
    text,
    whole,
)
from rollguard.settings.commands import APPROVALS

SEVERITIES: Final = ("critical", "warning", "info")
DELIVERIES: Final = ("now", "business_hours", "digest")
KIND_STATES: Final[dict[str, tuple[str, ...]]] = {
    "verdict": ("insufficient", "non_inferior", "regressed"),
    "srm": ("unhealthy", "healthy"),
    "drift": ("drifted", "stable"),
    "excess": ("beyond_parent",),
}
ATTRIBUTION: Final = ("non_inferior", "not_regressed", "off")


@dataclass(frozen=True, slots=True)
class Clause:
    """One signal requirement of a rule; a rule fires for a scope when all its clauses hold there.

    ``at``: where the signal must be — ``same`` scope as the alert, the ``whole`` rollout, or ``any``
    cohort. ``windows``: the same metric must match in every listed window (multi-window confirmation).
    ``min_effect_margins``: the effect's point estimate must be at least this many margins (a "critical
    margin" bigger than the detection margin). ``absent``: the clause holds when *no* signal matches
    (e.g. the SRM health gate).
    """

    kind: str = "verdict"
    states: tuple[str, ...] = ("regressed",)
    metrics: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    windows: tuple[str, ...] = ()
    phases: tuple[str, ...] = ()
    at: str = "same"
    min_effect_margins: float = 0.0
    min_relative_effect: float | None = None
    min_metrics: int = 1
    absent: bool = False


@dataclass(frozen=True, slots=True)
class RuleOverride:
    """A rule's segment- or time-of-day-specific thresholds and tier: the first matching override applies.

    ``scope`` matches when the alert's scope has every listed dimension with that value (``"*"`` = any
    value); ``hours`` = [start, end) in local hours (UTC + ``alerts.utc_offset_hours``), may wrap midnight.
    """

    scope: tuple[tuple[str, str], ...] = ()
    hours: tuple[float, float] | None = None
    severity: str | None = None
    min_effect_margins: float | None = None
    command: bool | None = None
    audience: str | None = None


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A (compound) alert rule. ``group_by: rollout`` fires once for the rollout when at least
    ``min_cohorts`` scopes satisfy the clauses (a regression spread over several cohorts)."""

    name: str
    severity: str
    match: tuple[Clause, ...]
    group_by: str = "scope"
    min_cohorts: int = 1
    command: bool | None = None  # None: only critical rules command
    approval: str | None = None  # None: commands.approval
    audience: str | None = None  # None: the tier's route
    delivery: str | None = None
    runbook_url: str | None = None
    overrides: tuple[RuleOverride, ...] = ()
    description: str = ""

    @property
    def commands(self) -> bool:
        """Whether this rule may lead to rollout commands (never for drift-only rules)."""
        if all(c.kind == "drift" or c.absent for c in self.match):
            return False
        return self.severity == "critical" if self.command is None else self.command


@dataclass(frozen=True, slots=True)
class Route:
    """Where a severity tier goes: the topic role, who it is for and how soon."""

    role: str
    audience: str
    delivery: str


def default_routes() -> dict[str, Route]:
    return {
        "critical": Route("alerts.critical", "oncall", "now"),
        "warning": Route("alerts.warning", "engineering", "business_hours"),
        "info": Route("alerts.info", "operations", "business_hours"),
    }


def default_rules() -> tuple[AlertRule, ...]:
    """The behaviour without config: user-facing guardrails page, the rest informs the right team."""
    return (
        AlertRule(
            "guardrail_regression",
            "critical",
            (Clause(families=("guardrail",), min_effect_margins=1.0),),
            audience="oncall",
            delivery="now",
            description="errors, timeouts, refusals or invalid formats beyond their critical margin",
        ),
        AlertRule(
            "latency_regression",
            "warning",
            (Clause(families=("latency",)),),
            audience="engineering",
            delivery="business_hours",
            description="performance degradation",
        ),
        AlertRule(
            "quality_regression",
            "warning",
            (Clause(families=("quality",)),),
            audience="product",
            delivery="digest",
            description="quality concern, also in the periodic digest",
        ),
        AlertRule(
            "cost_regression",
            "info",
            (Clause(families=("cost",)),),
            audience="finance",
            delivery="business_hours",
            description="cost or token anomaly",
        ),
        AlertRule(
            "semantic_drift",
            "warning",
            (Clause(metrics=("semantic_drift*",)),),
            audience="product",
            delivery="business_hours",
            description="the canary's answers changed meaning (embeddings), scalar metrics may be flat",
        ),
        AlertRule(
            "shadow_divergence",
            "warning",
            (Clause(metrics=("shadow.*",)),),
            audience="engineering",
            delivery="business_hours",
            description="the shadow (new version) diverges from live answers on the same requests",
        ),
        AlertRule(
            "sample_ratio_mismatch",
            "warning",
            (Clause(kind="srm", states=("unhealthy",), at="whole"),),
            audience="engineering",
            delivery="now",
            description="traffic split is off: verdicts are unreliable, promotion is held",
        ),
        AlertRule(
            "baseline_drift",
            "info",
            (Clause(kind="drift", states=("drifted",)),),
            audience="operations",
            delivery="business_hours",
            description="the control changed too (both arms): not a canary regression, never a rollback",
        ),
    )


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The rules, where each severity goes, and how alerts resolve, repeat, flap and are attributed."""

    rules: tuple[AlertRule, ...] = field(default_factory=default_rules)
    routing: Mapping[str, Route] = field(default_factory=default_routes)
    resolve_after_s: float = 300.0
    repeat_interval_s: Mapping[str, float] = field(
        default_factory=lambda: {"critical": 3600.0, "warning": 14400.0, "info": 86400.0}
    )
    flap_window: int = 20
    flap_start: float = 0.3
    flap_stop: float = 0.15
    inhibit_targets: tuple[str, ...] = ("warning",)
    attribution: str = "not_regressed"
    attribution_max_share: float = 0.5
    attribution_min_explained: float = 0.7
    grouping: bool = True  # sub-cohorts regressing with their parent are told in its alert (one notification)
    # A new alert of a sub-cohort waits this long (event time) for its parent's before it is told: a
    # regression of the whole rollout shows in a big cohort a little earlier by chance. Pages never wait.
    group_wait_s: Mapping[str, float] = field(
        default_factory=lambda: {"critical": 0.0, "warning": 120.0, "info": 300.0}
    )
    drift_guard_s: float = 600.0
    utc_offset_hours: float = 0.0
    digest_interval_s: float = 86400.0
    digest_audience: str = "product"
    source: str = "rollguard"
    generator_url: str = ""
    runbook_url: str = ""
    max_alerts_per_rollout: int = 256

    def route(self, severity: str) -> Route:
        return self.routing.get(severity) or default_routes()[severity]


def parse_alerts(raw: Any, loc: Locator) -> AlertSettings:
    """The ``alerts`` section (``None`` or absent: the defaults)."""
    data = mapping(raw, "alerts", loc)
    settings = fill(
        AlertSettings(),
        data,
        "alerts",
        loc,
        {
            "routing": lambda v, p: _routing(v, p, loc),
            "repeat_interval_s": lambda v, p: _repeat_intervals(v, p, loc),
            "group_wait_s": lambda v, p: _group_waits(v, p, loc),
            "inhibit_targets": lambda v, p: names(v, p, loc, SEVERITIES),
            "attribution": lambda v, p: choice(v, p, loc, ATTRIBUTION),
            "attribution_max_share": lambda v, p: probability(v, p, loc),
            "attribution_min_explained": lambda v, p: probability(v, p, loc),
            "utc_offset_hours": lambda v, p: _utc_offset(v, p, loc),
            "digest_interval_s": lambda v, p: positive(v, p, loc),
            "max_alerts_per_rollout": lambda v, p: whole(v, p, loc, minimum=8),
        },
        nested=("default_rules", "rules", "flap"),
        internal=("flap_window", "flap_start", "flap_stop"),
    )
    rules = _rules(data, loc)
    flap = mapping(data.get("flap"), "alerts.flap", loc)
    only(flap, ("window", "start", "stop"), "alerts.flap", loc)
    window = whole(flap.get("window", settings.flap_window), "alerts.flap.window", loc, minimum=4)
    if window > 64:
        raise loc.error("alerts.flap.window", "must be at most 64 evaluations")
    start = probability(flap.get("start", settings.flap_start), "alerts.flap.start", loc)
    stop = probability(flap.get("stop", settings.flap_stop), "alerts.flap.stop", loc)
    if stop > start:
        raise loc.error("alerts.flap.stop", "must not exceed alerts.flap.start (hysteresis)")
    return replace(settings, rules=tuple(rules), flap_window=window, flap_start=start, flap_stop=stop)


def _rules(data: Mapping[str, Any], loc: Locator) -> list[AlertRule]:
    """The default rules (unless ``default_rules: false``), each replaced by a given rule of its name,
    then the other given rules in file order."""
    keep_defaults = boolean(data.get("default_rules", True), "alerts.default_rules", loc)
    rules = list(default_rules()) if keep_defaults else []
    given = data.get("rules")
    seen: set[str] = set()
    for i, item in enumerate([] if given is None else sequence(given, "alerts.rules", loc, of="rules")):
        rule = _rule(item, f"alerts.rules[{i}]", loc)
        if rule.name in seen:
            raise loc.error(f"alerts.rules[{i}].name", f"duplicate rule name {rule.name!r}")
        seen.add(rule.name)
        rules = [r for r in rules if r.name != rule.name] + [rule]
    return rules


def _routing(value: Any, path: str, loc: Locator) -> dict[str, Route]:
    """The default routes with the given tiers' fields replaced."""
    routes = default_routes()
    for severity, raw in mapping(value, path, loc).items():
        p = f"{path}.{severity}"
        choice(severity, p, loc, SEVERITIES)
        routes[severity] = fill(
            routes[severity],
            mapping(raw, p, loc),
            p,
            loc,
            {"delivery": lambda v, q: choice(v, q, loc, DELIVERIES)},
        )
    return routes


def _repeat_intervals(value: Any, path: str, loc: Locator) -> dict[str, float]:
    """The default repeat intervals with the given tiers' replaced."""
    repeat = dict(AlertSettings().repeat_interval_s)
    for severity, raw in mapping(value, path, loc).items():
        choice(severity, f"{path}.{severity}", loc, SEVERITIES)
        repeat[severity] = positive(raw, f"{path}.{severity}", loc)
    return repeat


def _group_waits(value: Any, path: str, loc: Locator) -> dict[str, float]:
    """The default group waits with the given tiers' replaced (0: told at once)."""
    wait = dict(AlertSettings().group_wait_s)
    for severity, raw in mapping(value, path, loc).items():
        choice(severity, f"{path}.{severity}", loc, SEVERITIES)
        wait[severity] = number(raw, f"{path}.{severity}", loc)
    return wait


def _utc_offset(value: Any, path: str, loc: Locator) -> float:
    """The local time zone of override ``hours``, as hours from UTC."""
    offset = number(value, path, loc, minimum=-math.inf)
    if not -24.0 <= offset <= 24.0:
        raise loc.error(path, f"must be within [-24, 24] hours, got {value!r}")
    return offset


_CLAUSE_KEYS: Final = (
    "kind", "state", "metric", "family", "window", "windows", "phase", "at", "min_effect_margins",
    "min_relative_effect", "min_metrics", "absent",
)  # fmt: skip


def _clause(raw: Any, path: str, loc: Locator) -> Clause:
    data = mapping(raw, path, loc)
    only(data, _CLAUSE_KEYS, path, loc)
    kind = choice(data.get("kind", "verdict"), f"{path}.kind", loc, KIND_STATES)
    default_state = {"verdict": "regressed", "srm": "unhealthy", "drift": "drifted"}[kind]
    states = names(data.get("state", default_state), f"{path}.state", loc, KIND_STATES[kind])
    if "window" in data and "windows" in data:
        raise loc.error(f"{path}.windows", "give either window or windows")
    windows: tuple[str, ...] = ()
    if "window" in data:
        windows = names(data["window"], f"{path}.window", loc)
        if len(windows) != 1:
            raise loc.error(f"{path}.window", "one window (use windows: [...] to require several)")
    elif "windows" in data:
        windows = names(data["windows"], f"{path}.windows", loc)
    min_rel = data.get("min_relative_effect")
    return Clause(
        kind=kind,
        states=states,
        metrics=names(data["metric"], f"{path}.metric", loc) if "metric" in data else (),
        families=names(data["family"], f"{path}.family", loc, FAMILIES) if "family" in data else (),
        windows=windows,
        phases=names(data["phase"], f"{path}.phase", loc, ("canary", "post_rollout"))
        if "phase" in data
        else (),
        at=choice(data.get("at", "same"), f"{path}.at", loc, ("same", "whole", "any")),
        min_effect_margins=number(data.get("min_effect_margins", 0.0), f"{path}.min_effect_margins", loc),
        min_relative_effect=None
        if min_rel is None
        else number(min_rel, f"{path}.min_relative_effect", loc, minimum=-math.inf),
        min_metrics=whole(data.get("min_metrics", 1), f"{path}.min_metrics", loc, minimum=1),
        absent=boolean(data.get("absent", False), f"{path}.absent", loc),
    )


def _rule_override(raw: Any, path: str, loc: Locator) -> RuleOverride:
    data = mapping(raw, path, loc)
    only(data, ("scope", "hours", "severity", "min_effect_margins", "command", "audience"), path, loc)
    scope = mapping(data.get("scope"), f"{path}.scope", loc)
    for k, v in scope.items():
        text(v, f"{path}.scope.{k}", loc)
    hours = None
    if "hours" in data:
        h = data["hours"]
        if not isinstance(h, list) or len(h) != 2:
            raise loc.error(f"{path}.hours", "must be [start, end] in hours, e.g. [22, 6]")
        a, b = (number(x, f"{path}.hours[{i}]", loc) for i, x in enumerate(h))
        if a >= 24 or b > 24:
            raise loc.error(f"{path}.hours", "hours are within [0, 24]")
        hours = (a, b)
    if not scope and hours is None:
        raise loc.error(path, "an override needs a scope or hours to match")
    return RuleOverride(
        scope=tuple(sorted((str(k), str(v)) for k, v in scope.items())),
        hours=hours,
        severity=choice(data["severity"], f"{path}.severity", loc, SEVERITIES)
        if "severity" in data
        else None,
        min_effect_margins=(
            number(data["min_effect_margins"], f"{path}.min_effect_margins", loc)
            if "min_effect_margins" in data
            else None
        ),
        command=boolean(data["command"], f"{path}.command", loc) if "command" in data else None,
        audience=text(data["audience"], f"{path}.audience", loc) if "audience" in data else None,
    )


_RULE_KEYS: Final = (
    "name", "severity", "match", "group_by", "min_cohorts", "command", "approval", "audience", "delivery",
    "runbook_url", "overrides", "description", "require_healthy",
)  # fmt: skip


def _rule(raw: Any, path: str, loc: Locator) -> AlertRule:
    data = mapping(raw, path, loc)
    only(data, _RULE_KEYS, path, loc)
    required(data, ("name", "severity", "match"), path, loc)
    name = text(data["name"], f"{path}.name", loc)
    if not all(ch.isalnum() or ch in "_-" for ch in name):
        raise loc.error(f"{path}.name", "use letters, digits, _ and - only")
    match = sequence(data["match"], f"{path}.match", loc, of="clauses", non_empty=True)
    clauses = [_clause(c, f"{path}.match[{i}]", loc) for i, c in enumerate(match)]
    if boolean(data.get("require_healthy", False), f"{path}.require_healthy", loc):
        clauses.append(Clause(kind="srm", states=("unhealthy",), at="any", absent=True))
    if all(c.absent for c in clauses):
        raise loc.error(f"{path}.match", "needs at least one clause that is not absent")
    command = boolean(data["command"], f"{path}.command", loc) if "command" in data else None
    if command and all(c.kind == "drift" or c.absent for c in clauses):
        raise loc.error(f"{path}.command", "drift hits both arms: a drift rule never commands a rollback")
    overrides = sequence(data.get("overrides", []), f"{path}.overrides", loc)
    return AlertRule(
        name=name,
        severity=choice(data["severity"], f"{path}.severity", loc, SEVERITIES),
        match=tuple(clauses),
        group_by=choice(data.get("group_by", "scope"), f"{path}.group_by", loc, ("scope", "rollout")),
        min_cohorts=whole(data.get("min_cohorts", 1), f"{path}.min_cohorts", loc, minimum=1),
        command=command,
        approval=choice(data["approval"], f"{path}.approval", loc, APPROVALS) if "approval" in data else None,
        audience=text(data["audience"], f"{path}.audience", loc) if "audience" in data else None,
        delivery=choice(data["delivery"], f"{path}.delivery", loc, DELIVERIES)
        if "delivery" in data
        else None,
        runbook_url=text(data["runbook_url"], f"{path}.runbook_url", loc) if "runbook_url" in data else None,
        overrides=tuple(_rule_override(o, f"{path}.overrides[{i}]", loc) for i, o in enumerate(overrides)),
        description=str(data.get("description", "")),
    )
