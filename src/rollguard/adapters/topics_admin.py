"""``rollguard topics apply``: make a Kafka cluster match the topic contracts in ``topics/``.

Missing topics are created with their declared partitions, replication and configs. Existing topics
are compared and any difference is *reported, never changed*: shrinking partitions is impossible,
growing them re-maps keys to partitions (breaking per-rollout ordering and co-partitioned state),
and a retention change can delete data, so such changes must be a deliberate operator action.
Exit code 0 when everything matches (so a second run is a no-op), 2 when something differs,
1 when the contracts, the config or the cluster cannot be read.

The comparison (:func:`plan_topics`) and the report are pure; only :func:`apply_specs` talks to Kafka.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

from rollguard.adapters.kafka_clients import PLAINTEXT, admin
from rollguard.adapters.kafka_security import KafkaSecurity
from rollguard.adapters.topic_contracts import TopicContractError, TopicSpec, load_topics

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_DIFFERS: Final = 2
_TOPIC_ALREADY_EXISTS: Final = 36  # Kafka error code


@dataclass(frozen=True, slots=True)
class ExistingTopic:
    """What the cluster says about a topic: the settings a contract declares."""

    name: str
    partitions: int
    replication: int  # -1 when partitions disagree (reported as a difference)
    configs: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Difference:
    """One declared setting whose actual value differs."""

    topic: str
    setting: str
    declared: str
    actual: str

    def __str__(self) -> str:
        return f"{self.setting} declared {self.declared}, actual {self.actual}"


@dataclass(slots=True)
class TopicPlan:
    """What applying the contracts to a cluster means: create, leave alone, or report."""

    create: list[TopicSpec] = field(default_factory=list)
    matching: list[TopicSpec] = field(default_factory=list)
    differing: dict[str, list[Difference]] = field(default_factory=dict)


def normalize_config(name: str, value: str | None) -> str:
    """A config value in comparable form (``compact,delete`` == ``delete,compact``, ``True`` == ``true``)."""
    if value is None:
        return "<unset>"
    text = str(value).strip()
    if name == "cleanup.policy":
        return ",".join(sorted(p.strip() for p in text.lower().split(",") if p.strip()))
    if text.lower() in {"true", "false"}:
        return text.lower()
    return text


def compare_topic(spec: TopicSpec, actual: ExistingTopic) -> list[Difference]:
    """Differences between a declared topic and the existing one, in a stable order."""
    diffs: list[Difference] = []
    if spec.partitions != actual.partitions:
        diffs.append(Difference(spec.name, "partitions", str(spec.partitions), str(actual.partitions)))
    if spec.replication != actual.replication:
        shown = "mixed" if actual.replication < 0 else str(actual.replication)
        diffs.append(Difference(spec.name, "replication", str(spec.replication), shown))
    for key, declared in sorted(spec.kafka_configs().items()):
        want = normalize_config(key, declared)
        have = normalize_config(key, actual.configs.get(key))
        if want != have:
            diffs.append(Difference(spec.name, key, want, have))
    return diffs


def plan_topics(specs: Iterable[TopicSpec], existing: Mapping[str, ExistingTopic]) -> TopicPlan:
    """Pure: which declared topics to create, which match, and how the others differ."""
    plan = TopicPlan()
    for spec in specs:
        actual = existing.get(spec.name)
        if actual is None:
            plan.create.append(spec)
            continue
        diffs = compare_topic(spec, actual)
        if diffs:
            plan.differing[spec.name] = diffs
        else:
            plan.matching.append(spec)
    return plan


def describe_spec(spec: TopicSpec) -> str:
    configs = ", ".join(f"{k}={v}" for k, v in sorted(spec.kafka_configs().items()))
    return f"partitions={spec.partitions}, replication={spec.replication}, {configs}"


def render_report(plan: TopicPlan, *, dry_run: bool, created: Sequence[str] = ()) -> list[str]:
    """Human report lines, one per topic then a summary; pure so the wording is tested."""
    lines: list[str] = []
    for spec in plan.create:
        if dry_run:
            lines.append(f"  would create  {spec.name} ({describe_spec(spec)})")
        elif spec.name in created:
            lines.append(f"  created       {spec.name} ({describe_spec(spec)})")
    for spec in plan.matching:
        lines.append(f"  ok            {spec.name}")
    for name, diffs in sorted(plan.differing.items()):
        lines.append(f"  DIFFERS       {name}: " + "; ".join(str(d) for d in diffs) + " (left unchanged)")
    n_create = len(plan.create) if dry_run else len(created)
    verb = "to create" if dry_run else "created"
    summary = f"{n_create} {verb}, {len(plan.matching)} unchanged, {len(plan.differing)} differ"
    if not plan.create and not plan.differing:
        summary += ": nothing to do"
    if plan.differing:
        summary += (
            "; differing topics were NOT changed: partitions, replication and retention changes move or"
            " delete data, so make them deliberately (kafka-topics.sh / kafka-configs.sh) or fix the contract"
        )
    lines.append(summary)
    return lines


def exit_code(plan: TopicPlan) -> int:
    return EXIT_DIFFERS if plan.differing else EXIT_OK


# ------------------------------------------------------------------------------------------ Kafka side


def _existing_topics(client: Any, names: Sequence[str]) -> dict[str, ExistingTopic]:
    """Describe the named topics that exist (partitions, replication, and the configs we declare)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    present = set(client.list_topics())
    wanted = [n for n in names if n in present]
    if not wanted:
        return {}
    described = {t["name"]: t for t in client.describe_topics(wanted) if t.get("error_code", 0) == 0}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, None) for name in described]
    configs = client.describe_configs(resources, config_filter="all").get("topic", {})
    out: dict[str, ExistingTopic] = {}
    for name, meta in described.items():
        partitions = meta.get("partitions") or []
        factors = {len(p.get("replica_nodes") or []) for p in partitions}
        replication = factors.pop() if len(factors) == 1 else -1
        values = {k: v.get("value") for k, v in configs.get(name, {}).items()}
        out[name] = ExistingTopic(name, len(partitions), replication, values)
    return out


def apply_specs(
    bootstrap: str,
    specs: Sequence[TopicSpec],
    *,
    dry_run: bool = False,
    timeout_s: float = 30.0,
    security: KafkaSecurity = PLAINTEXT,
) -> tuple[TopicPlan, list[str]]:
    """Plan against the cluster and create the missing topics (unless ``dry_run``).

    Returns the plan and the names actually created. A topic that appears concurrently (someone else
    created it between our describe and create) is compared like any existing topic.
    """
    client = admin(
        bootstrap, security, client_id="rollguard-topics-apply", request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        names = [s.name for s in specs]
        plan = plan_topics(specs, _existing_topics(client, names))
        created: list[str] = []
        if dry_run or not plan.create:
            return plan, created
        request = {
            s.name: {
                "num_partitions": s.partitions,
                "replication_factor": s.replication,
                "configs": s.kafka_configs(),
            }
            for s in plan.create
        }
        response = client.create_topics(request, timeout_ms=int(timeout_s * 1000), raise_errors=False)
        raced: list[str] = []
        errors: list[str] = []
        for result in response.get("topics", []):
            code = result.get("error_code", 0)
            if code == 0:
                created.append(result["name"])
            elif code == _TOPIC_ALREADY_EXISTS:
                raced.append(result["name"])
            else:
                errors.append(f"{result['name']}: {result.get('error_message') or f'error code {code}'}")
        if errors:
            raise RuntimeError("could not create topics: " + "; ".join(errors))
        if created:
            client.wait_for_topics(created, timeout_ms=int(timeout_s * 1000))
        if raced:
            # It exists but our metadata view had not caught up: wait for it, then compare it.
            client.wait_for_topics(raced, timeout_ms=int(timeout_s * 1000))
            again = plan_topics([s for s in specs if s.name in raced], _existing_topics(client, raced))
            if again.create:
                raise RuntimeError(
                    f"topics reported as existing but not visible: {[s.name for s in again.create]}"
                )
            plan.create = [s for s in plan.create if s.name not in raced]
            plan.matching.extend(again.matching)
            plan.differing.update(again.differing)
        return plan, created
    finally:
        client.close()


def run_topics_apply(
    bootstrap: str,
    topics_dir: str | None,
    dry_run: bool,
    out: TextIO | None = None,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> int:
    """The CLI command: load contracts, apply them, print the report; returns the exit code."""
    out = out or sys.stdout
    try:
        specs = load_topics(topics_dir)
    except TopicContractError as exc:
        print(f"topics apply: invalid topic contracts: {exc}", file=sys.stderr)
        return EXIT_ERROR
    where = specs[0].source.parent if specs and specs[0].source else topics_dir
    mode = " (dry run: nothing is created)" if dry_run else ""
    print(f"topics apply: {len(specs)} contracts from {where} against {bootstrap}{mode}", file=out)
    try:
        plan, created = apply_specs(bootstrap, specs, dry_run=dry_run, security=security)
    except Exception as exc:  # unreachable broker, authorization, ...: a message, not a traceback
        print(f"topics apply: failed against {bootstrap}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for line in render_report(plan, dry_run=dry_run, created=created):
        print(line, file=out)
    out.flush()
    return exit_code(plan)
