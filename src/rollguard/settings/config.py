"""rollguard's configuration file (YAML): :class:`Config`, the whole file, read and checked at start.

A bad config must fail at start, before any event is read, with ``file:line: field: what is wrong``.
Every section is optional; an empty file (or no file) gives the documented defaults. This module reads
the YAML with the line of every field (:func:`compose_located`), checks the top level and hands each
section to its module (``engine``, ``segments``, ``metrics``, ``rollouts``, ``embeddings``/``shadow``,
``alerts``, ``commands``, ``promotion``, ``gate``, ``readiness``, ``worker``, ``otlp``), which checks it with
:mod:`rollguard.settings.checks`.

Example::

    alpha: 0.01                 # false-alarm budget per rollout, over all cohorts and metrics
    srm_alpha: 0.001            # the sample-ratio check's (units)
    srm_request_alpha: 0.001    # the request-level sample-ratio check's (requests per unit)
    engine:
      batch_seconds: 5
    alerts:
      resolve_after_s: 300
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml

from rollguard.domain.metrics import BUILTIN_METRICS, QUALITY_DEFAULT_MARGIN, MetricSpec, quality_metric
from rollguard.settings.alerts import AlertSettings, parse_alerts
from rollguard.settings.bridge import BridgeSettings, parse_bridge
from rollguard.settings.checks import probability
from rollguard.settings.commands import CommandSettings, parse_commands
from rollguard.settings.embeddings import EmbeddingSettings, ShadowSettings, parse_embeddings, parse_shadow
from rollguard.settings.engine import EngineSettings, parse_engine
from rollguard.settings.gate import GateSettings, parse_gate
from rollguard.settings.metrics import parse_metrics
from rollguard.settings.operators import OperatorSettings, parse_operators
from rollguard.settings.otlp import OtlpSettings, parse_otlp
from rollguard.settings.promotion import PromotionSettings, parse_promotion
from rollguard.settings.readiness import ReadinessSettings, parse_readiness
from rollguard.settings.rollouts import RolloutSettings, parse_rollouts
from rollguard.settings.segments import SegmentSettings, parse_segments
from rollguard.settings.worker import WorkerSettings, parse_worker


class ConfigError(ValueError):
    """A config problem located at ``source:line`` in ``field`` (a dotted path).

    One error may stand for several: ``errors`` holds every problem found in the file (itself first),
    for ``rollguard config check`` and the services' refusals, which list them all; the message is the
    first one's."""

    def __init__(
        self,
        message: str,
        field: str = "",
        line: int | None = None,
        source: str = "<config>",
        *,
        errors: Sequence[ConfigError] = (),
    ):
        self.message = message
        self.field = field
        self.line = line
        self.source = source
        self.errors: list[ConfigError] = list(errors) or [self]
        super().__init__(self.where())

    def where(self) -> str:
        """``file:line: field: message`` of this one problem."""
        at = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{at}: {self.field + ': ' if self.field else ''}{self.message}"

    @classmethod
    def combine(cls, errors: Sequence[Exception]) -> ConfigError:
        """One error standing for all of ``errors`` (each a ConfigError, possibly combined itself)."""
        flat = [e for err in errors if isinstance(err, ConfigError) for e in err.errors]
        if not flat:
            raise TypeError("no ConfigError to combine")
        first = flat[0]
        return cls(first.message, first.field, first.line, first.source, errors=flat)

    def lines(self) -> list[str]:
        """Every problem, one ``file:line: field: message`` each, in line order (file-level ones first)."""
        return [e.where() for e in sorted(self.errors, key=lambda e: e.line or 0)]


@dataclass(frozen=True, slots=True)
class Config:
    """The whole config file: the top-level budgets and each section's typed settings.

    ``extra_sections`` also keeps some sections verbatim (see :data:`OPEN_SECTIONS`)."""

    alpha: float = 0.01
    srm_alpha: float = 0.001
    srm_request_alpha: float = 0.001
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
    readiness: ReadinessSettings = field(default_factory=ReadinessSettings)
    bridge: BridgeSettings = field(default_factory=BridgeSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    operators: OperatorSettings = field(default_factory=OperatorSettings)
    otlp: OtlpSettings = field(default_factory=OtlpSettings)

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


# Sections that are also kept verbatim in Config.extra_sections, for code that reads a section's raw YAML.
OPEN_SECTIONS: Final = frozenset(
    {"alerts", "commands", "promotion", "embeddings", "shadow", "gate", "worker", "controller", "bridge"}
    | {"otlp"}
)


class _Located:
    """Plain data built from YAML nodes, with the line of every dotted path."""

    def __init__(self, source: str):
        self.source = source
        self.lines: dict[str, int] = {}
        self.problems: list[ConfigError] = []  # of the YAML's shape: reported, the rest is still read

    def build(self, node: yaml.Node, path: str) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    line = key_node.start_mark.line + 1
                    self.problems.append(ConfigError("keys must be plain scalars", path, line, self.source))
                    continue
                key = str(_scalar(key_node))
                child = f"{path}.{key}" if path else key
                if key in out:  # the first one is read; the duplicate is an error of its own
                    self.problems.append(
                        ConfigError("duplicate key", child, key_node.start_mark.line + 1, self.source)
                    )
                    continue
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

    def gather(self, errors: list[Exception]) -> ConfigError:
        return ConfigError.combine(errors)


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


def check_config(text: str, source: str = "<config>") -> list[ConfigError]:
    """Every problem of a config text (``rollguard config check``): an empty list when it is valid.

    Each section is checked on its own, and each key of a flat section, so one bad setting does not
    hide the next; a file that is not YAML at all has one error."""
    try:
        parse_config(text, source)
    except ConfigError as exc:
        return sorted(exc.errors, key=lambda e: e.line or 0)
    try:  # the controller's section is read by the controller alone, but checked with the file
        from rollguard.settings.controller import parse_controller

        data, loc = compose_located(text, source)
        parse_controller(data.get("controller") if isinstance(data, dict) else None, loc)
    except ConfigError as exc:
        return sorted(exc.errors, key=lambda e: e.line or 0)
    return []


def compose_located(text: str, source: str) -> tuple[Any, _Located]:
    """YAML text as plain data plus its line table, for other YAML files (e.g. ``models/embedding.yaml``)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(f"not valid YAML: {exc.problem}", line=line, source=source) from exc
    loc = _Located(source)
    return (None if root is None else loc.build(root, "")), loc


T = TypeVar("T")


def _config_from(data: dict[str, Any], loc: _Located) -> Config:
    """Every section checked on its own: all their errors are raised together, the first as before."""
    known = {
        "alpha",
        "srm_alpha",
        "srm_request_alpha",
        "engine",
        "segments",
        "metrics",
        "rollouts",
        "operators",
        "readiness",
    }
    errors: list[ConfigError] = []
    for key in data:
        if key not in known and key not in OPEN_SECTIONS:
            allowed = ", ".join(sorted(known | OPEN_SECTIONS))
            errors.append(loc.error(key, f"unknown section (expected one of: {allowed})"))
    defaults = Config()

    def section(parse: Callable[[], T], default: T) -> T:
        try:
            return parse()
        except ConfigError as exc:
            errors.append(exc)
            return default

    alpha = (
        section(lambda: probability(data["alpha"], "alpha", loc), defaults.alpha)
        if "alpha" in data
        else defaults.alpha
    )
    srm_alpha = (
        section(lambda: probability(data["srm_alpha"], "srm_alpha", loc), defaults.srm_alpha)
        if "srm_alpha" in data
        else defaults.srm_alpha
    )
    srm_request_alpha = (
        section(
            lambda: probability(data["srm_request_alpha"], "srm_request_alpha", loc),
            defaults.srm_request_alpha,
        )
        if "srm_request_alpha" in data
        else defaults.srm_request_alpha
    )
    engine = section(lambda: parse_engine(data.get("engine"), loc), defaults.engine)
    segments = section(lambda: parse_segments(data.get("segments"), loc), defaults.segments)
    no_quality: dict[str, dict[str, Any]] = {}
    metrics, quality = section(
        lambda: parse_metrics(data.get("metrics"), loc), (defaults.metrics, no_quality)
    )
    worker = section(lambda: parse_worker(data.get("worker"), loc), defaults.worker)
    config = Config(
        alpha=alpha,
        srm_alpha=srm_alpha,
        srm_request_alpha=srm_request_alpha,
        engine=engine,
        segments=segments,
        metrics=metrics,
        quality_overrides=quality,
        rollouts=section(lambda: parse_rollouts(data.get("rollouts"), loc), {}),
        extra_sections={k: v for k, v in data.items() if k in OPEN_SECTIONS},
        embeddings=section(lambda: parse_embeddings(data.get("embeddings"), loc), defaults.embeddings),
        shadow=section(lambda: parse_shadow(data.get("shadow"), loc), defaults.shadow),
        alerts=section(lambda: parse_alerts(data.get("alerts"), loc), defaults.alerts),
        commands=section(lambda: parse_commands(data.get("commands"), loc), defaults.commands),
        promotion=section(lambda: parse_promotion(data.get("promotion"), loc), defaults.promotion),
        gate=section(lambda: parse_gate(data.get("gate"), loc), defaults.gate),
        readiness=section(lambda: parse_readiness(data.get("readiness"), loc), defaults.readiness),
        bridge=section(lambda: parse_bridge(data.get("bridge"), loc), defaults.bridge),
        worker=worker,
        operators=section(lambda: parse_operators(data.get("operators"), loc), defaults.operators),
        otlp=section(lambda: parse_otlp(data.get("otlp"), loc, worker, engine.dedup_window_s), defaults.otlp),
    )
    problems = loc.problems + errors
    if problems:
        raise ConfigError.combine(problems)
    return config
