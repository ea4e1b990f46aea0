"""The topics one worker reads and writes, by role (names come from the contracts in ``topics/``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from kafka.partitioner.default import murmur2

from rollguard.adapters.topic_contracts import TopicSpec, topic_for_role

ALERT_TIERS: Final = ("alerts.critical", "alerts.warning", "alerts.info")


@dataclass(frozen=True, slots=True)
class WorkerTopics:
    """Topic names by role, and the partition count of the events topic (which the acks and control
    topics, the internal topics and the state table share: a rollout's events, acks, operator actions
    and checkpoints all live on the partition its id hashes to)."""

    events: str
    dead_letter: str
    acks: str
    control: str
    verdicts: str
    audit: str
    alerts: dict[str, str] = field(default_factory=dict)  # role (alerts.<tier>) -> name
    partitions: int = 6

    @classmethod
    def from_contracts(cls, specs: list[TopicSpec]) -> WorkerTopics:
        events = topic_for_role(specs, "events")
        return cls(
            events.name,
            topic_for_role(specs, "dead-letter").name,
            topic_for_role(specs, "acks").name,
            topic_for_role(specs, "control").name,
            topic_for_role(specs, "verdicts").name,
            topic_for_role(specs, "audit").name,
            {tier: topic_for_role(specs, tier).name for tier in ALERT_TIERS},
            events.partitions,
        )

    @classmethod
    def prefixed(cls, prefix: str, partitions: int = 3) -> WorkerTopics:
        """Every role under ``prefix`` (tests and side-by-side deployments)."""
        return cls(
            f"{prefix}.events",
            f"{prefix}.dead-letter",
            f"{prefix}.acks",
            f"{prefix}.control",
            f"{prefix}.verdicts",
            f"{prefix}.audit",
            {t: f"{prefix}.{t}" for t in ALERT_TIERS},
            partitions,
        )

    def name(self, role: str) -> str:
        """The topic name of an output role (verdicts, audit, control, alerts.<tier>)."""
        if role in self.alerts:
            return self.alerts[role]
        return {"verdicts": self.verdicts, "audit": self.audit, "control": self.control}[role]

    def all_names(self) -> list[str]:
        return [
            self.events,
            self.dead_letter,
            self.acks,
            self.control,
            self.verdicts,
            self.audit,
            *self.alerts.values(),
        ]


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as the Java client, kafka-python and
    aiokafka) gives ``key`` among ``partitions``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
