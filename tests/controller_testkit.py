"""Builders for the controller tests: signed commands issued *now*, a canary flag, and flagd evaluations.

Controllers check expiry against their own wall clock, so every command here is issued at
``time.time()`` unless a test says otherwise. Flags are evaluated by the real OpenFeature SDK with the
flagd provider: :class:`FlagEvaluator` runs it in-process with a FILE source reading the very file
the controller writes (the provider polls the file's mtime every ``deadline_ms``).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext

from rollguard.adapters.controller.consumer import ControllerTopics, serve
from rollguard.adapters.controller.handler import FlagdFileController
from rollguard.adapters.controller.state import ControllerState
from rollguard.adapters.topic_contracts import TopicSpec
from rollguard.adapters.topics_admin import apply_specs
from rollguard.policy.commands.signing import signed
from rollguard.settings.controller import ControllerSettings

KEY = b"controller-test-key"
ROLLOUT = "checkout-v2"
_SEQUENCE = itertools.count(1)


def command(
    action: str,
    rollout: str = ROLLOUT,
    *,
    scope: dict[str, str] | None = None,
    target_weight: float | None = None,
    sequence: int | None = None,
    issued_at: float | None = None,
    ttl_s: float = 900.0,
    key: bytes | None = KEY,
    **extra: Any,
) -> dict[str, Any]:
    """A signed command v1 as rollguard's planner writes it, issued now (sequence: increasing by default)."""
    now = time.time() if issued_at is None else issued_at
    record: dict[str, Any] = {
        "schema_version": 1,
        "command_id": f"cmd-{uuid.uuid4().hex[:24]}",
        "rollout_id": rollout,
        "scope": dict(scope or {}),
        "action": action,
        "issued_at": now,
        "expires_at": now + ttl_s,
        "sequence": next(_SEQUENCE) if sequence is None else sequence,
        "attempt": 1,
        "alert_ids": [],
        "evidence": {"reason": f"{action} (test)", "rules": [], "level": 0},
        "dry_run": False,
        "requires_approval": False,
        "approved_by": None,
        "issued_by": "rollguard",
    }
    if target_weight is not None:
        record["target_weight"] = target_weight
    record.update(extra)
    return signed(record, key)


def canary_flags(rollout: str = ROLLOUT, canary: int = 10, control: int = 90) -> dict[str, Any]:
    """A flagd flag set with one flag: a ``fractional`` canary split bucketed on the targeting key."""
    return {
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flags": {
            rollout: {
                "state": "ENABLED",
                "variants": {"control": "model-2025-10", "canary": "model-2026-01"},
                "defaultVariant": "control",
                "targeting": {"fractional": [["canary", canary], ["control", control]]},
                "metadata": {"version": "1"},
            }
        },
    }


def write_flags(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


class FlagEvaluator:
    """The flag as an application sees it: OpenFeature SDK + flagd provider, in-process, FILE source."""

    def __init__(self, path: Path, flag_key: str = ROLLOUT) -> None:
        self.domain = f"controller-test-{uuid.uuid4().hex[:8]}"
        self.flag_key = flag_key
        self.provider = FlagdProvider(
            resolver_type=ResolverType.FILE, offline_flag_source_path=str(path), deadline_ms=50
        )
        api.set_provider_and_wait(self.provider, self.domain)
        self.client = api.get_client(self.domain)

    def details(self, targeting_key: str | None, **attributes: str) -> Any:
        ctx = EvaluationContext(targeting_key=targeting_key, attributes=dict(attributes))
        details = self.client.get_string_details(self.flag_key, "<sdk default>", ctx)
        assert details.error_code is None, details
        return details

    def variant(self, targeting_key: str | None, **attributes: str) -> str:
        return str(self.details(targeting_key, **attributes).variant)

    def canary_share(self, n: int, **attributes: str) -> float:
        """Share of ``n`` distinct targeting keys that get the canary variant."""
        hits = sum(self.variant(f"user-{i:06d}", **attributes) == "canary" for i in range(n))
        return hits / n

    def wait_version(self, version: str, timeout_s: float = 10.0) -> None:
        """Until the provider has loaded the file at ``metadata.version == version``."""
        deadline = time.monotonic() + timeout_s
        seen = None
        while time.monotonic() < deadline:
            seen = self.details("probe").flag_metadata.get("version")
            if seen == version:
                return
            time.sleep(0.02)
        raise AssertionError(f"provider still at version {seen!r}, wanted {version!r}")

    def close(self) -> None:
        self.provider.shutdown()


@contextmanager
def evaluator(path: Path, flag_key: str = ROLLOUT) -> Iterator[FlagEvaluator]:
    ev = FlagEvaluator(path, flag_key)
    try:
        yield ev
    finally:
        ev.close()


# ---------------------------------------------------------------------------------------------- Kafka
def make_topics(bootstrap: str, partitions: int = 3, *, create: bool = True) -> ControllerTopics:
    """Fresh control and acks topics for one test (the session broker is shared); ``create=False`` only
    names them (create them later with :func:`create_topics`)."""
    tag = uuid.uuid4().hex[:8]
    topics = ControllerTopics(f"test.control.{tag}", f"test.acks.{tag}")
    if create:
        create_topics(bootstrap, topics, partitions)
    return topics


def create_topics(bootstrap: str, topics: ControllerTopics, partitions: int = 3) -> None:
    control, acks = topics.control, topics.acks
    apply_specs(
        bootstrap,
        [
            TopicSpec(control, "control", "t", partitions, 1, 3_600_000, "delete", "rollout_id", "x.json"),
            TopicSpec(acks, "acks", "t", partitions, 1, 3_600_000, "delete", "rollout_id", "x.json"),
        ],
    )


class RunningController:
    """``serve`` in a thread of the test process, stopped (and its state closed) by :meth:`stop`."""

    def __init__(
        self,
        bootstrap: str,
        topics: ControllerTopics,
        flags: Path,
        state_dir: Path,
        *,
        group_id: str | None = None,
        **kw: Any,
    ) -> None:
        self.state = ControllerState(state_dir, flags.name)
        controller = FlagdFileController(flags, KEY, ControllerSettings(), self.state, **kw)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        group = group_id or f"controller-test-{uuid.uuid4().hex[:8]}"

        def run() -> None:
            try:
                serve(controller, bootstrap, topics, group, self.stop_event, poll_timeout_ms=100)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True, name="controller-under-test")
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "controller did not stop"
        self.state.close()
        if self.error is not None:
            raise self.error


class CommandLink:
    """The rollguard side of the topics: produce commands, read acks (from the start of the topic)."""

    def __init__(self, bootstrap: str, topics: ControllerTopics) -> None:
        self.topics = topics
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        parts = self.consumer.partitions_for_topic(topics.acks) or set()
        tps = [TopicPartition(topics.acks, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.acks: list[dict[str, Any]] = []

    def send(self, record: dict[str, Any] | bytes, key: str = ROLLOUT) -> None:
        value = record if isinstance(record, bytes) else json.dumps(record).encode()
        self.producer.send(self.topics.control, key=key.encode(), value=value).get(timeout=30)

    def acks_for(self, command_id: str, count: int = 1, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """The first ``count`` acks of ``command_id`` (waiting for them)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [a for a in self.acks if a["command_id"] == command_id]
            if len(found) >= count:
                return found[:count]
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} ack(s) for {command_id} after {timeout_s} s")
            for records in self.consumer.poll(timeout_ms=100).values():
                self.acks.extend(json.loads(r.value) for r in records)

    def ack(self, record: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
        return self.acks_for(record["command_id"], 1, timeout_s)[0]

    def close(self) -> None:
        self.producer.close()
        self.consumer.close()
