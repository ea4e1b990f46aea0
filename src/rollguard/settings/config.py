"""rollguard's configuration file (YAML): typed settings, and errors that name the line and field.

A bad config must fail at start, before any event is read, with ``file:line: field: what is wrong``.
Every section is optional; an empty file (or no file) gives the documented defaults.

Example::

    alpha: 0.01                 # false-alarm budget per rollout, over all cohorts and metrics
    engine:
      batch_seconds: 5          # verdicts are re-read at most this often (event time) ...
      max_batch_seconds: 30     # ... and at least this often
      cusum_step_s: 30          # change detectors fold evidence at most this often (event time)
    segments:
      dimensions: [input_class, tenant]
      groupings: [[input_class, tenant]]
    metrics:
      latency_ms.p95: {margin: 0.2}
      quality.eval_score.mean: {margin: 0.02, relative: false}
    rollouts:
      checkout-v2: {canary_weight: 0.1}
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

import yaml

from rollguard.domain.metrics import BUILTIN_METRICS, QUALITY_DEFAULT_MARGIN, MetricSpec, quality_metric
from rollguard.settings.checks import mapping, number, only
from rollguard.settings.embeddings import EmbeddingSettings, ShadowSettings, parse_embeddings, parse_shadow
from rollguard.settings.policy import (
    AlertSettings,
    CommandSettings,
    GateSettings,
    PromotionSettings,
    parse_alerts,
    parse_commands,
    parse_gate,
    parse_promotion,
)

PHASES: Final = ("auto", "canary", "post_rollout")


class ConfigError(ValueError):
    """A config problem located at ``source:line`` in ``field`` (a dotted path)."""

    def __init__(self, message: str, field: str = "", line: int | None = None, source: str = "<config>"):
        self.message = message
        self.field = field
        self.line = line
        self.source = source
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """How the engine batches, bounds and budgets its work.

    ``cusum_step_s`` is the event-time grid of the change detectors (the paired onset CUSUMs of the
    canary phase, the control's drift CUSUMs and the post-rollout CUSUMs): each folds its evidence
    at most once per grid cell, so its false-alarm threshold log(K·H/α) counts H = ⌊horizon /
    step⌋ + 1 updates (``canary_horizon_s``, ``drift_horizon_s``, ``post_rollout_period_s``) instead
    of one per possible batch. A coarser grid lowers the threshold by log(step ratio) and delays an
    alarm by at most one step; the default equals ``max_batch_seconds``, the batch pace at moderate
    traffic, so there it delays nothing. Cells are at least ``batch_seconds`` wide.

    ``promotion_silence_s``: in the ``auto`` phase a rollout counts as promoted (the new version at
    100%) when its events say so (``canary_weight`` 1) or when the arms present say so: no control
    request for this long in event time while at least ``min_samples`` canary requests arrived. At a
    split w, that many canary requests in a row happen by chance with probability w^min_samples
    (below 3e-5 up to w = 0.9 at the defaults).

    ``dedup_window_s`` / ``dedup_max_ids``: an event whose ``event_id`` was already seen in the last
    ``dedup_window_s`` of its rollout's event time is a duplicate (an at-least-once producer's retry)
    and is not counted again; at most ``dedup_max_ids`` ids are kept per rollout (the oldest go first).
    """

    batch_seconds: float = 5.0
    min_batch_events: int = 2000
    max_batch_seconds: float = 30.0
    min_samples: int = 100
    cohort_ttl_s: float = 3600.0
    max_cohorts_per_rollout: int = 32
    max_quality_keys: int = 4
    whole_rollout_alpha_share: float = 0.5
    baseline_window_s: float = 600.0
    drift_horizon_s: float = 86400.0
    canary_horizon_s: float = 14400.0
    post_rollout_period_s: float = 86400.0
    unit_filter_bits: int = 1 << 20
    cusum_step_s: float = 30.0
    promotion_silence_s: float = 300.0
    dedup_window_s: float = 60.0
    dedup_max_ids: int = 200_000

    @property
    def cusum_grid_s(self) -> float:
        """The change detectors' update grid: ``cusum_step_s``, at least ``batch_seconds``."""
        return max(self.cusum_step_s, self.batch_seconds)


@dataclass(frozen=True, slots=True)
class SegmentSettings:
    """Which segment dimensions become cohorts: each listed dimension alone, plus the groupings."""

    dimensions: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    groupings: tuple[tuple[str, ...], ...] = ()
    max_dimensions: int = 8


@dataclass(frozen=True, slots=True)
class RolloutSettings:
    canary_weight: float | None = None
    phase: str = "auto"


@dataclass(frozen=True, slots=True)
class Config:
    alpha: float = 0.01
    srm_alpha: float = 0.001
    engine: EngineSettings = field(default_factory=EngineSettings)
    segments: SegmentSettings = field(default_factory=SegmentSettings)
    metrics: tuple[MetricSpec, ...] = BUILTIN_METRICS
    quality_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    rollouts: dict[str, RolloutSettings] = field(default_factory=dict)
    extra_sections: dict[str, Any] = field(default_factory=dict)
    embeddings: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    shadow: ShadowSettings = field(default_factory=ShadowSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    commands: CommandSettings = field(default_factory=CommandSettings)
    promotion: PromotionSettings = field(default_factory=PromotionSettings)
    gate: GateSettings = field(default_factory=GateSettings)

    def rollout(self, rollout_id: str) -> RolloutSettings:
        return self.rollouts.get(rollout_id) or self.rollouts.get("*") or RolloutSettings()

    def quality_spec(self, key: str) -> MetricSpec:
        override = self.quality_overrides.get(key, {})
        spec = quality_metric(
            key,
            margin=float(override.get("margin", QUALITY_DEFAULT_MARGIN)),
            relative=bool(override.get("relative", True)),
        )
        if "enabled" in override:
            spec = spec.with_overrides(enabled=bool(override["enabled"]))
        return spec


# Sections other issues own (alerts, commands, embeddings…) are parsed by their modules; the loader
# keeps them verbatim with their line table so those modules can report precise errors too.
OPEN_SECTIONS: Final = frozenset(
    {"alerts", "commands", "promotion", "embeddings", "shadow", "gate", "worker"}
)


class _Located:
    """Plain data built from YAML nodes, with the line of every dotted path."""

    def __init__(self, source: str):
        self.source = source
        self.lines: dict[str, int] = {}

    def build(self, node: yaml.Node, path: str) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    line = key_node.start_mark.line + 1
                    raise ConfigError("keys must be plain scalars", path, line, self.source)
                key = str(_scalar(key_node))
                child = f"{path}.{key}" if path else key
                if key in out:
                    raise ConfigError("duplicate key", child, key_node.start_mark.line + 1, self.source)
                out[key] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        return _scalar(node)

    def error(self, path: str, message: str) -> ConfigError:
        probe = path
        while probe and probe not in self.lines:
            probe = probe.rsplit(".", 1)[0] if "." in probe else ""
        return ConfigError(message, path, self.lines.get(probe), self.source)


def _scalar(node: yaml.Node) -> Any:
    return yaml.SafeLoader(" ").construct_object(node, deep=True)


def load_config(path: str | Path | None) -> Config:
    """Read and validate a config file; ``None`` gives the defaults."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", source=str(p)) from exc
    return parse_config(text, source=str(p))


def parse_config(text: str, source: str = "<config>") -> Config:
    """Validate config text; raises :class:`ConfigError` naming the line and field at fault."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(f"not valid YAML: {exc.problem}", line=line, source=source) from exc
    if root is None:
        return Config()
    loc = _Located(source)
    data = loc.build(root, "")
    if not isinstance(data, dict):
        raise loc.error("", "the config must be a mapping of sections")
    return _config_from(data, loc)


def compose_located(text: str, source: str) -> tuple[Any, _Located]:
    """YAML text as plain data plus its line table, for other YAML files (e.g. ``models/embedding.yaml``)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(f"not valid YAML: {exc.problem}", line=line, source=source) from exc
    loc = _Located(source)
    return (None if root is None else loc.build(root, "")), loc


def _config_from(data: dict[str, Any], loc: _Located) -> Config:
    known = {"alpha", "srm_alpha", "engine", "segments", "metrics", "rollouts"}
    for key in data:
        if key not in known and key not in OPEN_SECTIONS:
            allowed = ", ".join(sorted(known | OPEN_SECTIONS))
            raise loc.error(key, f"unknown section (expected one of: {allowed})")
    cfg = Config()
    alpha = _prob(data, "alpha", cfg.alpha, loc)
    srm_alpha = _prob(data, "srm_alpha", cfg.srm_alpha, loc)
    engine = _engine(data.get("engine", {}), loc)
    segments = _segments(data.get("segments", {}), loc)
    metrics, quality = _metrics(data.get("metrics", {}), loc)
    rollouts = _rollouts(data.get("rollouts", {}), loc)
    extra = {k: v for k, v in data.items() if k in OPEN_SECTIONS}
    embeddings = parse_embeddings(data.get("embeddings"), loc)
    shadow = parse_shadow(data.get("shadow"), loc)
    return Config(
        alpha, srm_alpha, engine, segments, metrics, quality, rollouts, extra, embeddings, shadow,
        alerts=parse_alerts(data.get("alerts"), loc),
        commands=parse_commands(data.get("commands"), loc),
        promotion=parse_promotion(data.get("promotion"), loc),
        gate=parse_gate(data.get("gate"), loc),
    )  # fmt: skip


def _prob(data: dict[str, Any], key: str, default: float, loc: _Located, path: str = "") -> float:
    full = f"{path}.{key}" if path else key
    if key not in data:
        return default
    value = number(data[key], full, loc)
    if not 0.0 < value < 1.0:
        raise loc.error(full, f"must be strictly between 0 and 1, got {value!r}")
    return value


def _engine(raw: Any, loc: _Located) -> EngineSettings:
    data = mapping(raw, "engine", loc)
    defaults = EngineSettings()
    values: dict[str, Any] = {}
    names = {f.name: f for f in fields(EngineSettings)}
    for key, value in data.items():
        path = f"engine.{key}"
        only([key], names, "engine", loc)  # key by key: a bad value before an unknown key is reported first
        is_int = isinstance(getattr(defaults, key), int)
        setting = number(value, path, loc, minimum=0.0, integer=is_int)
        if key == "whole_rollout_alpha_share" and not 0.0 < setting < 1.0:
            raise loc.error(path, "must be strictly between 0 and 1")
        positive = {
            "batch_seconds", "min_samples", "max_cohorts_per_rollout", "cusum_step_s", "promotion_silence_s",
        }  # fmt: skip
        if key in positive and setting <= 0:
            raise loc.error(path, "must be positive")
        values[key] = int(setting) if is_int else setting
    return replace(defaults, **values)


def _str_list(value: Any, path: str, loc: _Located) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise loc.error(path, "must be a list of names")
    return tuple(value)


def _segments(raw: Any, loc: _Located) -> SegmentSettings:
    data = mapping(raw, "segments", loc)
    only(data, {"dimensions", "exclude", "groupings", "max_dimensions"}, "segments", loc)
    dims = data.get("dimensions")
    groupings: list[tuple[str, ...]] = []
    for i, g in enumerate(data.get("groupings") or []):
        names = _str_list(g, f"segments.groupings[{i}]", loc)
        if len(names) < 2 or len(set(names)) != len(names):
            raise loc.error(f"segments.groupings[{i}]", "a grouping crosses two or more distinct dimensions")
        groupings.append(tuple(sorted(names)))
    max_dims = data.get("max_dimensions", SegmentSettings().max_dimensions)
    return SegmentSettings(
        dimensions=None if dims is None else _str_list(dims, "segments.dimensions", loc),
        exclude=_str_list(data["exclude"], "segments.exclude", loc) if "exclude" in data else (),
        groupings=tuple(groupings),
        max_dimensions=int(number(max_dims, "segments.max_dimensions", loc, minimum=0, integer=True)),
    )


def _metrics(raw: Any, loc: _Located) -> tuple[tuple[MetricSpec, ...], dict[str, dict[str, Any]]]:
    data = mapping(raw, "metrics", loc)
    by_name = {m.name: m for m in BUILTIN_METRICS}
    quality: dict[str, dict[str, Any]] = {}
    for name, settings_raw in data.items():
        path = f"metrics.{name}"
        settings = mapping(settings_raw, path, loc)
        for key in settings:
            if key not in {"margin", "relative", "enabled"}:
                raise loc.error(f"{path}.{key}", "unknown setting (expected margin, relative, enabled)")
        checked: dict[str, Any] = {}
        if "margin" in settings:
            checked["margin"] = number(settings["margin"], f"{path}.margin", loc)
        for flag in ("relative", "enabled"):
            if flag in settings:
                if not isinstance(settings[flag], bool):
                    raise loc.error(f"{path}.{flag}", "must be true or false")
                checked[flag] = settings[flag]
        if name.startswith("quality.") and name.endswith(".mean") and len(name) > len("quality..mean"):
            quality[name[len("quality.") : -len(".mean")]] = checked
        elif name in by_name:
            by_name[name] = by_name[name].with_overrides(**checked)
        else:
            known = ", ".join([*by_name, "quality.<key>.mean"])
            raise loc.error(path, f"unknown metric (expected one of: {known})")
    return tuple(by_name.values()), quality


def _rollouts(raw: Any, loc: _Located) -> dict[str, RolloutSettings]:
    data = mapping(raw, "rollouts", loc)
    out: dict[str, RolloutSettings] = {}
    for rollout_id, settings_raw in data.items():
        path = f"rollouts.{rollout_id}"
        settings = mapping(settings_raw, path, loc)
        for key in settings:
            if key not in {"canary_weight", "phase"}:
                raise loc.error(f"{path}.{key}", "unknown setting (expected canary_weight, phase)")
        weight = None
        if "canary_weight" in settings:
            weight = number(settings["canary_weight"], f"{path}.canary_weight", loc)
            if weight > 1.0:
                raise loc.error(f"{path}.canary_weight", "must be in [0, 1]")
        phase = settings.get("phase", "auto")
        if phase not in PHASES:
            raise loc.error(f"{path}.phase", f"must be one of {', '.join(PHASES)}, got {phase!r}")
        out[str(rollout_id)] = RolloutSettings(weight, phase)
    return out
