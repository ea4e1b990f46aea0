"""Typed settings of the config sections ``alerts``, ``commands``, ``promotion`` and ``gate``.

They turn verdicts into what people and rollout controllers act on, so their defaults are the product's
behaviour with no config at all (see :func:`default_rules`). Parsing reports ``file:line: field: message``
like the rest of the config: the loader hands each section over with its line table (any object with
``error(path, message) -> Exception``), so this module needs nothing from :mod:`rollguard.settings.config`.

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
    commands:
      dry_run: true
      signing_key_env: ROLLGUARD_SIGNING_KEY
    promotion:
      rollouts:
        checkout-v2: {enabled: true, ramp: [0.05, 0.25, 0.5, 1.0]}
      tradeoffs:
        - {metric: quality.eval_score.mean, max_relative_drop: 0.02,
           when: cost_usd.mean, min_relative_saving: 0.2}
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final, TypeVar

from rollguard.settings.checks import Locator
from rollguard.settings.checks import boolean as _bool
from rollguard.settings.checks import mapping as _mapping
from rollguard.settings.checks import number as _num
from rollguard.settings.checks import only as _only
from rollguard.settings.checks import text as _str

SEVERITIES: Final = ("critical", "warning", "info")
FAMILIES: Final = ("guardrail", "latency", "quality", "cost")
DELIVERIES: Final = ("now", "business_hours", "digest")
KIND_STATES: Final[dict[str, tuple[str, ...]]] = {
    "verdict": ("insufficient", "non_inferior", "regressed"),
    "srm": ("unhealthy", "healthy"),
    "drift": ("drifted", "stable"),
}
ROLLOUT_ACTIONS: Final = ("disable_scope", "reduce_weight", "rollback")
APPROVALS: Final = ("auto", "required")
ON_SRM: Final = ("auto", "approve", "block")
ATTRIBUTION: Final = ("non_inferior", "not_regressed", "off")


# ---------------------------------------------------------------------------------------------- alerts


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
class Override:
    """Segment- or time-of-day-specific thresholds and tier: the first matching override applies.

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
    overrides: tuple[Override, ...] = ()
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


# -------------------------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class RolloutCommandSettings:
    enabled: bool | None = None
    dry_run: bool | None = None
    approval: str | None = None


@dataclass(frozen=True, slots=True)
class CommandSettings:
    """Safety rails of rollout commands; see :mod:`rollguard.policy.commands`."""

    enabled: bool = True
    dry_run: bool = False
    signing_key: str | None = None
    signing_key_env: str = "ROLLGUARD_SIGNING_KEY"
    key_id: str | None = None
    ttl_s: float = 900.0
    ack_timeout_s: float = 120.0
    cooldown_s: float = 300.0
    max_per_hour: int = 6
    max_attempts: int = 3
    progression: tuple[str, ...] = ROLLOUT_ACTIONS
    reduce_weight_to: float = 0.01
    escalate_at_scopes: int = 2
    persist_s: float = 300.0
    approval: str = "auto"
    approval_timeout_s: float = 900.0
    on_srm: str = "approve"
    pause_on_srm: bool = False
    verify_operator_actions: bool = True
    rollouts: Mapping[str, RolloutCommandSettings] = field(default_factory=dict)

    def for_rollout(self, rollout_id: str) -> RolloutCommandSettings:
        return self.rollouts.get(rollout_id) or self.rollouts.get("*") or RolloutCommandSettings()


# ------------------------------------------------------------------------------------------- promotion


@dataclass(frozen=True, slots=True)
class Tradeoff:
    """``metric`` may be worse by up to ``max_relative_drop`` (upper confidence bound, relative to
    control) when ``when`` is certainly better by at least ``min_relative_saving``."""

    metric: str
    max_relative_drop: float
    when: str
    min_relative_saving: float


@dataclass(frozen=True, slots=True)
class RolloutPromotion:
    enabled: bool | None = None
    ramp: tuple[float, ...] | None = None
    min_step_s: float | None = None


@dataclass(frozen=True, slots=True)
class PromotionSettings:
    enabled: bool = False
    ramp: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 1.0)
    min_step_s: float = 900.0
    families: tuple[str, ...] = ("guardrail", "quality")
    metrics: tuple[str, ...] = ("*",)
    cohorts: str = "all"
    approval: str = "auto"
    tradeoffs: tuple[Tradeoff, ...] = ()
    rollouts: Mapping[str, RolloutPromotion] = field(default_factory=dict)

    def for_rollout(self, rollout_id: str) -> tuple[bool, tuple[float, ...], float]:
        """(enabled, ramp, min_step_s) for one rollout."""
        r = self.rollouts.get(rollout_id) or self.rollouts.get("*") or RolloutPromotion()
        enabled = self.enabled if r.enabled is None else r.enabled
        return enabled, r.ramp or self.ramp, self.min_step_s if r.min_step_s is None else r.min_step_s


# ------------------------------------------------------------------------------------------------ gate


@dataclass(frozen=True, slots=True)
class GateSettings:
    alpha: float = 0.05
    method: str = "fixed"
    families: tuple[str, ...] = FAMILIES
    dimensions: tuple[str, ...] | None = None
    max_dimensions: int = 8
    min_samples: int = 30
    paired: str = "auto"


# ============================================================================================= parsing
T = TypeVar("T")


def _choice(value: Any, choices: tuple[str, ...], path: str, loc: Locator) -> str:
    if value not in choices:
        raise loc.error(path, f"must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _names(value: Any, path: str, loc: Locator, choices: tuple[str, ...] | None = None) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
        raise loc.error(path, "must be a name or a list of names")
    if choices is not None:
        for i, v in enumerate(items):
            _choice(v, choices, f"{path}[{i}]" if isinstance(value, list) else path, loc)
    return tuple(items)


def _prob(value: Any, path: str, loc: Locator) -> float:
    v = _num(value, path, loc)
    if not 0.0 < v < 1.0:
        raise loc.error(path, f"must be strictly between 0 and 1, got {value!r}")
    return v


def _weight(value: Any, path: str, loc: Locator) -> float:
    v = _num(value, path, loc)
    if v > 1.0:
        raise loc.error(path, f"must be in [0, 1], got {value!r}")
    return v


def _fill(
    cls: type[T],
    data: Mapping[str, Any],
    path: str,
    loc: Locator,
    special: Mapping[str, Callable[[Any, str], Any]],
    nested: frozenset[str] = frozenset(),
) -> T:
    """Scalar settings of a flat dataclass: numbers, booleans and strings checked by the default's type.

    ``nested`` names the section's keys parsed by the caller (listed in errors, skipped here)."""
    defaults = cls()
    values: dict[str, Any] = {}
    hidden = {
        "rules",
        "routing",
        "repeat_interval_s",
        "flap_window",
        "flap_start",
        "flap_stop",
        "tradeoffs",
        "rollouts",
    }
    names = {f.name for f in fields(cls)} - hidden  # type: ignore[arg-type]
    _only(data, names | nested, path, loc)
    data = {k: v for k, v in data.items() if k not in nested}
    for key, value in data.items():
        p = f"{path}.{key}"
        if key in special:
            values[key] = special[key](value, p)
            continue
        default = getattr(defaults, key)
        if isinstance(default, bool):
            values[key] = _bool(value, p, loc)
        elif isinstance(default, int):
            values[key] = int(_num(value, p, loc, integer=True))
        elif isinstance(default, float):
            values[key] = _num(value, p, loc)
        else:
            values[key] = _str(value, p, loc)
    return replace(defaults, **values)  # type: ignore[type-var]


def parse_alerts(raw: Any, loc: Locator) -> AlertSettings:
    data = _mapping(raw, "alerts", loc)
    settings = _fill(
        AlertSettings,
        data,
        "alerts",
        loc,
        {
            "inhibit_targets": lambda v, p: _names(v, p, loc, SEVERITIES),
            "attribution": lambda v, p: _choice(v, ATTRIBUTION, p, loc),
            "attribution_max_share": lambda v, p: _prob(v, p, loc),
            "attribution_min_explained": lambda v, p: _prob(v, p, loc),
            "utc_offset_hours": lambda v, p: _offset(v, p, loc),
            "digest_interval_s": lambda v, p: _positive(v, p, loc),
            "max_alerts_per_rollout": lambda v, p: int(_num(v, p, loc, minimum=8, integer=True)),
        },
        frozenset({"default_rules", "rules", "routing", "repeat_interval_s", "flap"}),
    )
    keep_defaults = _bool(data.get("default_rules", True), "alerts.default_rules", loc)
    rules_raw = data.get("rules")
    routing_raw = data.get("routing")
    repeat_raw = data.get("repeat_interval_s")
    flap_raw = data.get("flap")
    rules = list(default_rules()) if keep_defaults else []
    if rules_raw is not None:
        if not isinstance(rules_raw, list):
            raise loc.error("alerts.rules", "must be a list of rules")
        seen: set[str] = set()
        for i, item in enumerate(rules_raw):
            rule = _rule(item, f"alerts.rules[{i}]", loc)
            if rule.name in seen:
                raise loc.error(f"alerts.rules[{i}].name", f"duplicate rule name {rule.name!r}")
            seen.add(rule.name)
            rules = [r for r in rules if r.name != rule.name] + [rule]
    routes = default_routes()
    for sev, route_raw in _mapping(routing_raw, "alerts.routing", loc).items():
        p = f"alerts.routing.{sev}"
        _choice(sev, SEVERITIES, p, loc)
        r = _mapping(route_raw, p, loc)
        _only(r, {"role", "audience", "delivery"}, p, loc)
        base = routes[sev]
        routes[sev] = Route(
            _str(r["role"], f"{p}.role", loc) if "role" in r else base.role,
            _str(r["audience"], f"{p}.audience", loc) if "audience" in r else base.audience,
            _choice(r["delivery"], DELIVERIES, f"{p}.delivery", loc) if "delivery" in r else base.delivery,
        )
    repeat = dict(settings.repeat_interval_s)
    for sev, v in _mapping(repeat_raw, "alerts.repeat_interval_s", loc).items():
        _choice(sev, SEVERITIES, f"alerts.repeat_interval_s.{sev}", loc)
        repeat[sev] = _positive(v, f"alerts.repeat_interval_s.{sev}", loc)
    flap = _mapping(flap_raw, "alerts.flap", loc)
    _only(flap, {"window", "start", "stop"}, "alerts.flap", loc)
    window = int(
        _num(flap.get("window", settings.flap_window), "alerts.flap.window", loc, minimum=4, integer=True)
    )
    if window > 64:
        raise loc.error("alerts.flap.window", "must be at most 64 evaluations")
    start = _prob(flap.get("start", settings.flap_start), "alerts.flap.start", loc)
    stop = _prob(flap.get("stop", settings.flap_stop), "alerts.flap.stop", loc)
    if stop > start:
        raise loc.error("alerts.flap.stop", "must not exceed alerts.flap.start (hysteresis)")
    return replace(
        settings,
        rules=tuple(rules),
        routing=routes,
        repeat_interval_s=repeat,
        flap_window=window,
        flap_start=start,
        flap_stop=stop,
    )


def _positive(value: Any, path: str, loc: Locator) -> float:
    v = _num(value, path, loc)
    if v <= 0:
        raise loc.error(path, "must be positive")
    return v


def _offset(value: Any, path: str, loc: Locator) -> float:
    v = _num(value, path, loc, minimum=-24.0)
    if v > 24.0:
        raise loc.error(path, "must be within [-24, 24] hours")
    return v


_CLAUSE_KEYS: Final = {
    "kind",
    "state",
    "metric",
    "family",
    "window",
    "windows",
    "phase",
    "at",
    "min_effect_margins",
    "min_relative_effect",
    "min_metrics",
    "absent",
}


def _clause(raw: Any, path: str, loc: Locator) -> Clause:
    data = _mapping(raw, path, loc)
    _only(data, _CLAUSE_KEYS, path, loc)
    kind = _choice(data.get("kind", "verdict"), tuple(KIND_STATES), f"{path}.kind", loc)
    default_state = {"verdict": "regressed", "srm": "unhealthy", "drift": "drifted"}[kind]
    states = _names(data.get("state", default_state), f"{path}.state", loc, KIND_STATES[kind])
    if "window" in data and "windows" in data:
        raise loc.error(f"{path}.windows", "give either window or windows")
    windows: tuple[str, ...] = ()
    if "window" in data:
        windows = _names(data["window"], f"{path}.window", loc)
        if len(windows) != 1:
            raise loc.error(f"{path}.window", "one window (use windows: [...] to require several)")
    elif "windows" in data:
        windows = _names(data["windows"], f"{path}.windows", loc)
    min_rel = data.get("min_relative_effect")
    return Clause(
        kind=kind,
        states=states,
        metrics=_names(data["metric"], f"{path}.metric", loc) if "metric" in data else (),
        families=_names(data["family"], f"{path}.family", loc, FAMILIES) if "family" in data else (),
        windows=windows,
        phases=_names(data["phase"], f"{path}.phase", loc, ("canary", "post_rollout"))
        if "phase" in data
        else (),
        at=_choice(data.get("at", "same"), ("same", "whole", "any"), f"{path}.at", loc),
        min_effect_margins=_num(data.get("min_effect_margins", 0.0), f"{path}.min_effect_margins", loc),
        min_relative_effect=None
        if min_rel is None
        else _num(min_rel, f"{path}.min_relative_effect", loc, minimum=-math.inf),
        min_metrics=int(
            _num(data.get("min_metrics", 1), f"{path}.min_metrics", loc, minimum=1, integer=True)
        ),
        absent=_bool(data.get("absent", False), f"{path}.absent", loc),
    )


def _override(raw: Any, path: str, loc: Locator) -> Override:
    data = _mapping(raw, path, loc)
    _only(data, {"scope", "hours", "severity", "min_effect_margins", "command", "audience"}, path, loc)
    scope = _mapping(data.get("scope"), f"{path}.scope", loc)
    for k, v in scope.items():
        _str(v, f"{path}.scope.{k}", loc)
    hours = None
    if "hours" in data:
        h = data["hours"]
        if not isinstance(h, list) or len(h) != 2:
            raise loc.error(f"{path}.hours", "must be [start, end] in hours, e.g. [22, 6]")
        a, b = (_num(x, f"{path}.hours[{i}]", loc) for i, x in enumerate(h))
        if a >= 24 or b > 24:
            raise loc.error(f"{path}.hours", "hours are within [0, 24]")
        hours = (a, b)
    if not scope and hours is None:
        raise loc.error(path, "an override needs a scope or hours to match")
    return Override(
        scope=tuple(sorted((str(k), str(v)) for k, v in scope.items())),
        hours=hours,
        severity=_choice(data["severity"], SEVERITIES, f"{path}.severity", loc)
        if "severity" in data
        else None,
        min_effect_margins=(
            _num(data["min_effect_margins"], f"{path}.min_effect_margins", loc)
            if "min_effect_margins" in data
            else None
        ),
        command=_bool(data["command"], f"{path}.command", loc) if "command" in data else None,
        audience=_str(data["audience"], f"{path}.audience", loc) if "audience" in data else None,
    )


_RULE_KEYS: Final = {
    "name",
    "severity",
    "match",
    "group_by",
    "min_cohorts",
    "command",
    "approval",
    "audience",
    "delivery",
    "runbook_url",
    "overrides",
    "description",
    "require_healthy",
}


def _rule(raw: Any, path: str, loc: Locator) -> AlertRule:
    data = _mapping(raw, path, loc)
    _only(data, _RULE_KEYS, path, loc)
    for required in ("name", "severity", "match"):
        if required not in data:
            raise loc.error(f"{path}.{required}", "required setting is missing")
    name = _str(data["name"], f"{path}.name", loc)
    if not all(ch.isalnum() or ch in "_-" for ch in name):
        raise loc.error(f"{path}.name", "use letters, digits, _ and - only")
    match_raw = data["match"]
    if not isinstance(match_raw, list) or not match_raw:
        raise loc.error(f"{path}.match", "must be a non-empty list of clauses")
    clauses = [_clause(c, f"{path}.match[{i}]", loc) for i, c in enumerate(match_raw)]
    if _bool(data.get("require_healthy", False), f"{path}.require_healthy", loc):
        clauses.append(Clause(kind="srm", states=("unhealthy",), at="any", absent=True))
    if all(c.absent for c in clauses):
        raise loc.error(f"{path}.match", "needs at least one clause that is not absent")
    command = _bool(data["command"], f"{path}.command", loc) if "command" in data else None
    if command and all(c.kind == "drift" or c.absent for c in clauses):
        raise loc.error(f"{path}.command", "drift hits both arms: a drift rule never commands a rollback")
    overrides_raw = data.get("overrides", [])
    if not isinstance(overrides_raw, list):
        raise loc.error(f"{path}.overrides", "must be a list")
    return AlertRule(
        name=name,
        severity=_choice(data["severity"], SEVERITIES, f"{path}.severity", loc),
        match=tuple(clauses),
        group_by=_choice(data.get("group_by", "scope"), ("scope", "rollout"), f"{path}.group_by", loc),
        min_cohorts=int(
            _num(data.get("min_cohorts", 1), f"{path}.min_cohorts", loc, minimum=1, integer=True)
        ),
        command=command,
        approval=_choice(data["approval"], APPROVALS, f"{path}.approval", loc)
        if "approval" in data
        else None,
        audience=_str(data["audience"], f"{path}.audience", loc) if "audience" in data else None,
        delivery=_choice(data["delivery"], DELIVERIES, f"{path}.delivery", loc)
        if "delivery" in data
        else None,
        runbook_url=_str(data["runbook_url"], f"{path}.runbook_url", loc) if "runbook_url" in data else None,
        overrides=tuple(_override(o, f"{path}.overrides[{i}]", loc) for i, o in enumerate(overrides_raw)),
        description=str(data.get("description", "")),
    )


def parse_commands(raw: Any, loc: Locator) -> CommandSettings:
    data = _mapping(raw, "commands", loc)
    rollouts_raw = data.get("rollouts")
    settings = _fill(
        CommandSettings,
        data,
        "commands",
        loc,
        {
            "signing_key": lambda v, p: _str(v, p, loc),
            "key_id": lambda v, p: _str(v, p, loc),
            "progression": lambda v, p: _progression(v, p, loc),
            "reduce_weight_to": lambda v, p: _weight(v, p, loc),
            "approval": lambda v, p: _choice(v, APPROVALS, p, loc),
            "on_srm": lambda v, p: _choice(v, ON_SRM, p, loc),
            "ttl_s": lambda v, p: _positive(v, p, loc),
            "max_per_hour": lambda v, p: int(_num(v, p, loc, minimum=1, integer=True)),
            "max_attempts": lambda v, p: int(_num(v, p, loc, minimum=1, integer=True)),
            "escalate_at_scopes": lambda v, p: int(_num(v, p, loc, minimum=1, integer=True)),
        },
        frozenset({"rollouts"}),
    )
    if settings.ack_timeout_s > settings.ttl_s:
        raise loc.error("commands.ack_timeout_s", "must not exceed commands.ttl_s")
    rollouts: dict[str, RolloutCommandSettings] = {}
    for rid, r_raw in _mapping(rollouts_raw, "commands.rollouts", loc).items():
        p = f"commands.rollouts.{rid}"
        r = _mapping(r_raw, p, loc)
        _only(r, {"enabled", "dry_run", "approval"}, p, loc)
        rollouts[str(rid)] = RolloutCommandSettings(
            _bool(r["enabled"], f"{p}.enabled", loc) if "enabled" in r else None,
            _bool(r["dry_run"], f"{p}.dry_run", loc) if "dry_run" in r else None,
            _choice(r["approval"], APPROVALS, f"{p}.approval", loc) if "approval" in r else None,
        )
    return replace(settings, rollouts=rollouts)


def _progression(value: Any, path: str, loc: Locator) -> tuple[str, ...]:
    steps = _names(value, path, loc, ROLLOUT_ACTIONS)
    order = [ROLLOUT_ACTIONS.index(s) for s in steps]
    if not steps or order != sorted(set(order)):
        raise loc.error(path, f"must be distinct steps in the order {', '.join(ROLLOUT_ACTIONS)}")
    return steps


def _ramp(value: Any, path: str, loc: Locator) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise loc.error(path, "must be a non-empty list of weights")
    ramp = tuple(_weight(v, f"{path}[{i}]", loc) for i, v in enumerate(value))
    if any(b <= a for a, b in itertools.pairwise(ramp)) or ramp[0] <= 0:
        raise loc.error(path, "weights must be positive and strictly increasing")
    return ramp


def parse_promotion(raw: Any, loc: Locator) -> PromotionSettings:
    data = _mapping(raw, "promotion", loc)
    rollouts_raw = data.get("rollouts")
    tradeoffs_raw = data.get("tradeoffs")
    settings = _fill(
        PromotionSettings,
        data,
        "promotion",
        loc,
        {
            "ramp": lambda v, p: _ramp(v, p, loc),
            "families": lambda v, p: _names(v, p, loc, FAMILIES),
            "metrics": lambda v, p: _names(v, p, loc),
            "cohorts": lambda v, p: _choice(v, ("all", "whole"), p, loc),
            "approval": lambda v, p: _choice(v, APPROVALS, p, loc),
        },
        frozenset({"rollouts", "tradeoffs"}),
    )
    tradeoffs: list[Tradeoff] = []
    if tradeoffs_raw is not None:
        if not isinstance(tradeoffs_raw, list):
            raise loc.error("promotion.tradeoffs", "must be a list")
        tradeoffs = [_tradeoff(t, f"promotion.tradeoffs[{i}]", loc) for i, t in enumerate(tradeoffs_raw)]
    rollouts: dict[str, RolloutPromotion] = {}
    for rid, r_raw in _mapping(rollouts_raw, "promotion.rollouts", loc).items():
        p = f"promotion.rollouts.{rid}"
        r = _mapping(r_raw, p, loc)
        _only(r, {"enabled", "ramp", "min_step_s"}, p, loc)
        rollouts[str(rid)] = RolloutPromotion(
            _bool(r["enabled"], f"{p}.enabled", loc) if "enabled" in r else None,
            _ramp(r["ramp"], f"{p}.ramp", loc) if "ramp" in r else None,
            _num(r["min_step_s"], f"{p}.min_step_s", loc) if "min_step_s" in r else None,
        )
    return replace(settings, tradeoffs=tuple(tradeoffs), rollouts=rollouts)


def _tradeoff(raw: Any, path: str, loc: Locator) -> Tradeoff:
    data = _mapping(raw, path, loc)
    keys = {"metric", "max_relative_drop", "when", "min_relative_saving"}
    _only(data, keys, path, loc)
    for k in sorted(keys):
        if k not in data:
            raise loc.error(f"{path}.{k}", "required setting is missing")
    return Tradeoff(
        _str(data["metric"], f"{path}.metric", loc),
        _num(data["max_relative_drop"], f"{path}.max_relative_drop", loc),
        _str(data["when"], f"{path}.when", loc),
        _prob(data["min_relative_saving"], f"{path}.min_relative_saving", loc),
    )


def parse_gate(raw: Any, loc: Locator) -> GateSettings:
    data = _mapping(raw, "gate", loc)
    return _fill(
        GateSettings,
        data,
        "gate",
        loc,
        {
            "alpha": lambda v, p: _prob(v, p, loc),
            "method": lambda v, p: _choice(v, ("fixed", "sequential"), p, loc),
            "families": lambda v, p: _names(v, p, loc, FAMILIES),
            "dimensions": lambda v, p: _names(v, p, loc) if isinstance(v, list) else _bad_list(p, loc),
            "paired": lambda v, p: _choice(v, ("auto", "never"), p, loc),
            "min_samples": lambda v, p: int(_num(v, p, loc, minimum=2, integer=True)),
        },
    )


def _bad_list(path: str, loc: Locator) -> tuple[str, ...]:
    raise loc.error(path, "must be a list of dimension names")
