"""``rollguard controller flagd``: the reference controller's Kafka loop (kafka-python, a message at a time).

Reads the control topic (role ``control``) in a consumer group, hands each message to
:class:`~rollguard.adapters.controller.handler.FlagdFileController`, publishes its ack to the acks
topic (role ``acks``, key = rollout_id, ``acks=all``) and commits the message's offset only after
that: the ack is durable in the state directory before it is published, and published before the
offset moves. A crash anywhere in between redelivers the message, and the state answers it with the
original ack. Offsets start at the earliest retained command for a new group: every command it
missed is answered (most will be ``expired``), none is silently skipped.

Run one controller per flags file: two would edit the same file from separate states.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import orjson
from kafka.structs import OffsetAndMetadata

from rollguard.adapters.controller.flag_file import FlagFileError, read_flags
from rollguard.adapters.controller.handler import FlagdFileController
from rollguard.adapters.controller.state import ControllerState
from rollguard.adapters.kafka_clients import (
    PLAINTEXT,
    KafkaSetupError,
    group_consumer,
    load_connection,
    producer,
)
from rollguard.adapters.kafka_security import KafkaSecurity
from rollguard.adapters.topic_contracts import TopicContractError, TopicSpec, load_topics, topic_for_role
from rollguard.settings.config import ConfigError
from rollguard.settings.controller import load_controller_settings

log = logging.getLogger("rollguard.controller")


@dataclass(frozen=True, slots=True)
class ControllerTopics:
    control: str
    acks: str

    @classmethod
    def from_contracts(cls, specs: list[TopicSpec]) -> ControllerTopics:
        return cls(topic_for_role(specs, "control").name, topic_for_role(specs, "acks").name)


def serve(
    controller: FlagdFileController,
    bootstrap: str,
    topics: ControllerTopics,
    group_id: str,
    stop: threading.Event,
    *,
    poll_timeout_ms: int = 200,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """Answer commands until ``stop`` is set; offsets are committed message by message after the ack."""
    reader = group_consumer(
        bootstrap,
        security,
        [topics.control],
        stop=stop,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id=f"{group_id}-consumer",
    )
    sender = producer(bootstrap, security, acks="all", linger_ms=0, client_id=f"{group_id}-acks")
    try:
        while not stop.is_set():
            polled = reader.poll(timeout_ms=poll_timeout_ms)
            for tp, records in polled.items():
                for rec in records:
                    if stop.is_set():
                        return  # the rest is redelivered to the next run
                    ack = controller.handle(rec.value)
                    if ack is not None:
                        key = str(ack["rollout_id"]).encode()
                        sender.send(topics.acks, key=key, value=orjson.dumps(ack)).get(timeout=30)
                    reader.commit({tp: OffsetAndMetadata(rec.offset + 1, "", -1)})
    finally:
        sender.close(timeout=10)
        reader.close(autocommit=False)


def read_key_file(path: Path) -> bytes:
    """The HMAC key: the file's bytes without surrounding whitespace (a trailing newline is common)."""
    key = path.read_bytes().strip()
    if not key:
        raise ValueError(f"{path}: the key file is empty")
    return key


def run_flagd_controller(args: argparse.Namespace) -> int:
    """The CLI entry point; returns the exit code (2: bad start-up input, 0: stopped by a signal)."""
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_controller_settings(args.config)
        connection = load_connection(args.config, args.bootstrap)
        bootstrap = connection.required_bootstrap()
    except ConfigError as exc:
        print(f"rollguard: bad config: {exc}", file=sys.stderr)
        return 2
    except KafkaSetupError as exc:
        print(f"rollguard: {exc}", file=sys.stderr)
        return 2
    try:
        key = read_key_file(Path(args.key_file))
    except (OSError, ValueError) as exc:
        print(f"rollguard: bad key file: {exc}", file=sys.stderr)
        return 2
    flags = Path(args.flags)
    try:
        read_flags(flags)
    except FlagFileError as exc:
        print(f"rollguard: bad flags file: {exc}", file=sys.stderr)
        return 2
    try:
        topics = ControllerTopics.from_contracts(load_topics(args.topics_dir))
    except TopicContractError as exc:
        print(f"rollguard: {exc}", file=sys.stderr)
        return 2
    state_dir = Path(args.state_dir) if args.state_dir else flags.parent / ".rollguard-controller"
    state = ControllerState(state_dir, flags.name)
    controller = FlagdFileController(flags, key, settings, state, accept_unsigned=args.accept_unsigned)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info(
        "flagd controller on %s: %s -> %s, acks to %s, state in %s",
        bootstrap,
        topics.control,
        flags,
        topics.acks,
        state.path,
    )
    try:
        group_id = getattr(args, "group_id", None) or settings.group_id
        serve(controller, bootstrap, topics, group_id, stop, security=connection.security)
    except Exception as exc:  # Kafka gone, disk gone: one line, exit 1; uncommitted commands are redelivered
        log.debug("controller stopped", exc_info=True)
        print(f"rollguard: controller stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        state.close()
    return 0
