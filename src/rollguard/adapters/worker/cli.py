"""The ``rollguard worker`` command: check the config and the topics, then run the Faust worker.

Everything that can be wrong before the first message fails here, with one line each: a bad config
(``file:line: field: what is wrong``, exit 2), a missing password, unreachable Kafka or missing topics
(exit 1). A worker that would publish unsigned commands says so loudly at start.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import replace

from rollguard.adapters.kafka_clients import admin, connection_at_start
from rollguard.adapters.kafka_security import KafkaSecurity
from rollguard.adapters.topic_contracts import TopicContractError, load_topics
from rollguard.adapters.worker.app import WorkerOptions, create_app
from rollguard.adapters.worker.topics import WorkerTopics
from rollguard.policy.commands.signing import resolve_signing_key
from rollguard.settings import Config, ConfigError, load_config

log = logging.getLogger("rollguard.worker")


def options_from(
    config: Config, args: argparse.Namespace, security: KafkaSecurity, bootstrap: str
) -> WorkerOptions:
    w = config.worker
    return WorkerOptions(
        bootstrap=bootstrap,
        app_id=args.app_id or w.app_id,
        instance=w.instance,
        client_id=w.kafka.client_id,
        security=security,
        data_dir=args.data_dir or w.data_dir,
        store=w.store,
        web_enabled=w.web_enabled,
        web_port=w.web_port,
        web_bind=w.web_bind,
        idle_after_s=w.idle_after_s,
        tick_s=w.tick_s,
        checkpoint_every_s=w.checkpoint_every_s,
        checkpoint_max_lag=w.checkpoint_max_lag,
        replication=w.replication,
        rocksdb_block_cache_mb=w.rocksdb_block_cache_mb,
        session_timeout_s=w.session_timeout_s,
    )


def _partition_counts(bootstrap: str, security: KafkaSecurity, names: list[str]) -> dict[str, int]:
    """Partition counts of the named topics that exist (fail fast before Faust waits forever)."""
    client = admin(bootstrap, security, client_id="rollguard-worker-check")
    try:
        present = set(client.list_topics())
        found = [n for n in names if n in present]
        described = client.describe_topics(found) if found else []
        return {t["name"]: len(t.get("partitions") or []) for t in described if t.get("error_code", 0) == 0}
    finally:
        client.close()


def run_worker(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=str(args.log_level).upper(), format="[%(asctime)s] %(levelname)s %(name)s: %(message)s"
    )
    trace_file = os.environ.get("ROLLGUARD_TRACE_OFFSETS")
    if trace_file:  # every restore, checkpoint and ack, one line each: for post-mortems of crashes
        handler = logging.FileHandler(trace_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(message)s"))
        trace = logging.getLogger("rollguard.worker.offsets")
        trace.addHandler(handler)
        trace.setLevel(logging.DEBUG)
        trace.propagate = False
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for line in exc.lines():  # every problem of the file, not only the first
            print(f"rollguard: bad config: {line}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"rollguard: cannot read config: {exc}", file=sys.stderr)
        return 2
    connection = connection_at_start(config, args.bootstrap, args.config)
    if connection is None:
        return 2
    bootstrap, security = connection
    try:
        topics = WorkerTopics.from_contracts(load_topics(args.topics_dir))
    except (TopicContractError, OSError) as exc:
        log.error("%s", exc)
        return 1
    wanted = [*topics.all_names(), *([config.otlp.topic] if config.otlp.topic is not None else [])]
    try:
        actual = _partition_counts(bootstrap, security, wanted)
    except Exception as exc:
        log.error("cannot reach Kafka at %s: %s: %s", bootstrap, type(exc).__name__, exc)
        return 1
    missing = [n for n in wanted if n not in actual]
    if missing:
        hint = (
            "the Collector's Kafka exporter writes otlp.topic"
            if missing == [config.otlp.topic]
            else (f"run `rollguard topics apply --bootstrap {bootstrap}` first")
        )
        log.error("topics missing: %s; %s", missing, hint)
        return 1
    if actual[topics.events] != topics.partitions:
        log.warning(
            "%s has %d partitions, the contract says %d: using the actual count",
            topics.events,
            actual[topics.events],
            topics.partitions,
        )
        topics = replace(topics, partitions=actual[topics.events])
    for name in (topics.acks, topics.control):
        if actual[name] != topics.partitions:
            log.warning(
                "%s has %d partitions, the events topic %d: its messages are re-keyed through an "
                "internal topic before they are applied",
                name,
                actual[name],
                topics.partitions,
            )
    c = config.commands
    key = resolve_signing_key(c.signing_key, c.signing_key_env, os.environ)
    if key is None:
        log.warning("=" * 78)
        log.warning(
            'NO SIGNING KEY: commands will be published UNSIGNED (signature ""). Controllers '
            "reject them unless started to accept unsigned commands. Set %s.",
            c.signing_key_env,
        )
        log.warning("=" * 78)
    wa = create_app(options_from(config, args, security, bootstrap), config, topics, signing_key=key)
    from faust.worker import Worker

    worker = Worker(wa.app, loglevel=args.log_level)
    wa.runtime.timings.started = time.monotonic()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    return 0
