"""Topic contracts: the declarative ``topics/*.yaml`` files, loaded into :class:`TopicSpec`.

One YAML file per Kafka topic says what the topic is (name, role, key, payload schema) and how it
must be configured (partitions, replication, retention, cleanup policy, extra topic configs).
``rollguard topics apply`` creates topics from these specs and the worker finds its topics by
*role*, so an operator can rename a topic in one place. Pure: no Kafka import, so the core and
its tests can read contracts without a broker.

A malformed file is reported by :class:`TopicContractError` as every config error is, with the file,
the line and the field, e.g.
``topics/rollguard.events.yaml:5: partitions: must be a positive integer, got 'six'``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from rollguard.settings.config import ConfigError, compose_located

TOPICS_DIR_ENV: Final = "ROLLGUARD_TOPICS_DIR"
CLEANUP_POLICIES: Final = frozenset({"delete", "compact", "compact,delete"})
# Kafka's own rule for topic names (kafka.common.internals.Topic): legal characters, at most 249.
_TOPIC_NAME: Final = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
_DURATION: Final = re.compile(r"^(\d+)\s*(ms|s|m|h|d|w)$")
_UNIT_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_REQUIRED: Final = (
    "name",
    "role",
    "description",
    "partitions",
    "replication",
    "retention",
    "cleanup_policy",
    "key",
    "payload_schema",
)
_OPTIONAL: Final = ("configs",)
# Settings with a field of their own; declaring them again under `configs` would be ambiguous.
_OWNED_CONFIGS: Final = frozenset({"retention.ms", "cleanup.policy"})


class TopicContractError(ValueError):
    """A topic contract file (or the set of them) is invalid; the message names file and field."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as declared in ``topics/<name>.yaml``."""

    name: str
    role: str
    description: str
    partitions: int
    replication: int
    retention_ms: int  # -1: kept forever
    cleanup_policy: str
    key: str  # the payload field whose value is the message key
    payload_schema: str  # path relative to the topics directory
    configs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    source: Path | None = None  # the file it came from, for messages

    def kafka_configs(self) -> dict[str, str]:
        """Topic-level Kafka configs to create the topic with and to compare an existing one against."""
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms), **self.configs}

    def schema_path(self, topics_dir: Path) -> Path:
        return topics_dir / self.payload_schema


def parse_retention(value: Any) -> int | str:
    """Retention in milliseconds from ``7d``/``12h``/``30m``/``45s``/``500ms``/``forever`` or an integer
    of milliseconds; a reason string when invalid (never raises, like the event validator)."""
    if isinstance(value, bool):
        return f"must be a duration like 7d, 12h or forever, got {value!r}"
    if isinstance(value, int):
        return value if value == -1 or value > 0 else f"must be positive milliseconds or -1, got {value}"
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"forever", "infinite", "-1"}:
            return -1
        match = _DURATION.match(text)
        if match and int(match.group(1)) > 0:
            return int(match.group(1)) * _UNIT_MS[match.group(2)]
    return f"must be a duration like 7d, 12h, 30m, 45s, 500ms or 'forever', got {value!r}"


@dataclass(frozen=True, slots=True)
class _Where:
    """A contract file and the line of each of its fields, for ``file:line: field: what is wrong``."""

    path: Path
    lines: Mapping[str, int]

    def fail(self, name: str, reason: str) -> TopicContractError:
        line = self.lines.get(name) or self.lines.get(name.split(".", 1)[0])
        at = f"{self.path}:{line}" if line is not None else str(self.path)
        return TopicContractError(f"{at}: {name}: {reason}")

    def text(self, doc: Mapping[str, Any], name: str) -> str:
        value = doc[name]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, f"must be a non-empty string, got {value!r}")
        return value.strip()

    def positive_int(self, doc: Mapping[str, Any], name: str) -> int:
        value = doc[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(name, f"must be a positive integer, got {value!r}")
        return value


def parse_topic(
    doc: Any, path: Path, topics_dir: Path | None = None, lines: Mapping[str, int] | None = None
) -> TopicSpec:
    """Validate one decoded YAML document into a :class:`TopicSpec` (``path`` and ``lines``, each
    field's line in the file, only locate errors)."""
    at = _Where(path, lines or {})
    if not isinstance(doc, dict):
        raise TopicContractError(f"{path}: must be a YAML mapping of fields, got {type(doc).__name__}")
    unknown = sorted(set(doc) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        allowed = ", ".join((*_REQUIRED, *_OPTIONAL))
        raise at.fail(str(unknown[0]), f"unknown field (allowed: {allowed})")
    for name in _REQUIRED:
        if name not in doc:
            raise at.fail(name, "required field is missing")

    topic = at.text(doc, "name")
    if not _TOPIC_NAME.match(topic) or topic in {".", ".."}:
        raise at.fail("name", f"not a legal Kafka topic name: {topic!r}")
    if path.suffix in {".yaml", ".yml"} and path.stem != topic:
        raise at.fail("name", f"must match the file name ({path.stem!r}), got {topic!r}")
    retention = parse_retention(doc["retention"])
    if isinstance(retention, str):
        raise at.fail("retention", retention)
    policy = doc["cleanup_policy"]
    if isinstance(policy, list):  # YAML list form: [compact, delete]
        policy = ",".join(sorted(str(p) for p in policy))
    if policy not in CLEANUP_POLICIES:
        raise at.fail("cleanup_policy", f"must be one of {sorted(CLEANUP_POLICIES)}, got {policy!r}")
    schema = at.text(doc, "payload_schema")
    if topics_dir is not None and not (topics_dir / schema).is_file():
        raise at.fail("payload_schema", f"file not found: {topics_dir / schema}")

    raw_configs = doc.get("configs") or {}
    if not isinstance(raw_configs, dict):
        raise at.fail("configs", "must be a mapping of Kafka topic config names to values")
    configs: dict[str, str] = {}
    for key, value in raw_configs.items():
        if key in _OWNED_CONFIGS:
            raise at.fail(f"configs.{key}", "set it with its own field (retention, cleanup_policy)")
        if isinstance(value, dict | list) or value is None:
            raise at.fail(f"configs.{key}", f"must be a scalar, got {value!r}")
        configs[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)

    return TopicSpec(
        name=topic,
        role=at.text(doc, "role"),
        description=at.text(doc, "description"),
        partitions=at.positive_int(doc, "partitions"),
        replication=at.positive_int(doc, "replication"),
        retention_ms=retention,
        cleanup_policy=policy,
        key=at.text(doc, "key"),
        payload_schema=schema,
        configs=MappingProxyType(configs),
        source=path,
    )


def load_topics(topics_dir: str | os.PathLike[str] | None = None) -> list[TopicSpec]:
    """Every ``*.yaml``/``*.yml`` contract in the directory, sorted by topic name.

    Raises :class:`TopicContractError` for an unreadable or invalid file, a duplicate topic name or
    role, or a directory without contracts.
    """
    directory = Path(topics_dir) if topics_dir is not None else default_topics_dir()
    if not directory.is_dir():
        raise TopicContractError(f"{directory}: topic contract directory not found")
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        raise TopicContractError(f"{directory}: no topic contracts (*.yaml) found")
    specs: list[TopicSpec] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TopicContractError(f"{path}: cannot read: {exc}") from exc
        try:
            doc, located = compose_located(text, str(path))
        except ConfigError as exc:
            raise TopicContractError(str(exc)) from exc
        specs.append(parse_topic(doc, path, directory, located.lines))
    _check_unique(specs, "name")
    _check_unique(specs, "role")
    return sorted(specs, key=lambda s: s.name)


def _check_unique(specs: Iterable[TopicSpec], attr: str) -> None:
    seen: dict[str, TopicSpec] = {}
    for spec in specs:
        value = getattr(spec, attr)
        if value in seen:
            raise TopicContractError(
                f"{spec.source}: {attr}: {value!r} is also declared in {seen[value].source}"
            )
        seen[value] = spec


def topic_for_role(specs: Iterable[TopicSpec], role: str) -> TopicSpec:
    """The spec playing ``role`` (e.g. ``events``, ``dead-letter``, ``alerts.critical``)."""
    specs = list(specs)
    for spec in specs:
        if spec.role == role:
            return spec
    roles = ", ".join(sorted(s.role for s in specs))
    raise TopicContractError(f"no topic contract has role {role!r} (roles: {roles})")


def default_topics_dir() -> Path:
    """Where the project's contracts are: ``$ROLLGUARD_TOPICS_DIR``, else ``./topics``, else the
    ``topics/`` next to the package source in an editable install (a checkout)."""
    env = os.environ.get(TOPICS_DIR_ENV)
    if env:
        path = Path(env)
        if not path.is_dir():
            raise TopicContractError(f"{TOPICS_DIR_ENV}={env}: not a directory")
        return path
    candidates = [Path.cwd() / "topics", Path(__file__).resolve().parents[3] / "topics"]
    for path in candidates:
        if path.is_dir() and any(path.glob("*.y*ml")):
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise TopicContractError(
        f"no topics/ directory found (tried {tried}); set {TOPICS_DIR_ENV} or pass --dir"
    )
