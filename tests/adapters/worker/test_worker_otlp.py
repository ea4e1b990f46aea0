"""Zero-change adoption, end to end on a real broker: an application instrumented with the OpenTelemetry
SDK, whose flags are evaluated through OpenFeature (flagd, FILE source) with its tracing hook, exports its
spans as the Collector's Kafka exporter would (both encodings on one topic); ``rollguard worker`` reads
them next to its v1 events topic and publishes the verdicts, alerts and commands a replay of the same
traffic as v1 events writes; the reference controller (``rollguard controller flagd``) applies the
rollback to the very flag that served the variants, after which the application serves only control."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer
from worker_kit import (
    ManualClock,
    make_topics,
    produce,
    read_topic,
    replay_outputs,
    stamped_until,
    wait_until,
    worker_outputs,
    write_contracts,
)

from otlp_testkit import CHAT, CONFIG, MARKER, Evaluator, make_traffic, now_window, otlp_json, write_flags
from rollguard.adapters.topics_admin import TopicSpec, apply_specs
from rollguard.adapters.worker import WorkerOptions, create_app
from rollguard.settings.config import parse_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]
IDLE_S = 45.0
KEY = b"otlp-e2e-signing-key"
SCOPED = [("disable_scope", {"input_class": "coding"})]  # the one command of the end-to-end traffic
WORKER_CONFIG = CONFIG + "embeddings: {enabled: false}\n"


def events_in(wa: Any) -> int:
    """Events in the state of every rollout the worker holds (closed batches and the open ones)."""
    return sum(
        m.counters["events"] + len(m.batch.events)
        for rt in wa.runtime.runtimes.values()
        for m in rt.pipeline.engine.monitors.values()
    )


def ticks_handled(wa: Any) -> bool:
    """Every rollout's idle tick sent, and the ticks topic read to its end (each tick handled: a tick
    whose batch holds nothing new writes no checkpoint, so checkpoints cannot be counted)."""
    rt = wa.runtime
    sent = bool(rt.runtimes) and all(r.idle_handled for r in rt.runtimes.values())
    return sent and not any(n for (topic, _), n in rt.lag().items() if topic.endswith("-ticks"))


def _last_ts(events: list[dict[str, Any]]) -> dict[str, float]:
    """Each rollout's last event time."""
    out: dict[str, float] = {}
    for ev in events:
        out[str(ev["rollout_id"])] = max(out.get(str(ev["rollout_id"]), 0.0), float(ev["ts"]))
    return out


def test_spans_on_kafka_get_the_verdicts_of_the_same_traffic_as_events_and_the_rollback_reaches_the_flag(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    flags = write_flags(tmp_path / "flags.json")
    duration = 900.0
    # Coding requests (15% of the traffic) regress on the canary: a scoped command, not a rollback.
    traffic = make_traffic(
        flags, n=12000, start_s=now_window(duration), duration_s=duration, error_rate=0.3,
        mix=(0.45, 0.15, 0.3, 0.1),
    )  # fmt: skip
    payloads = traffic.payloads()
    # Both encodings on one topic (``encoding: auto``), and one message that is no OTLP export at all.
    messages = [otlp_json(p) if i % 2 else p for i, p in enumerate(payloads)]
    messages.insert(5, b"\x0a\x05trunc")

    topics = make_topics(kafka_bootstrap)
    otlp_topic = f"otlp_spans.{uuid.uuid4().hex[:8]}"
    apply_specs(
        kafka_bootstrap, [TopicSpec(otlp_topic, otlp_topic, "t", 1, 1, 3_600_000, "delete", "none", "x")]
    )
    produce(kafka_bootstrap, otlp_topic, messages, lambda _: None)
    config_text = WORKER_CONFIG.replace("otlp:\n", f"otlp:\n  topic: {otlp_topic}\n", 1)
    (tmp_path / "rollguard.yaml").write_text(config_text)
    config = parse_config(config_text, "rollguard.yaml")
    assert config.otlp.topic == otlp_topic

    expected = replay_outputs(
        [orjson.dumps(e) for e in traffic.events], tmp_path, parse_config(WORKER_CONFIG), signing_key=KEY
    )
    last_ts = _last_ts(traffic.events)
    # Each rollout's revert rehearsal at its first event (a dry run), and the ladder's scoped command.
    rehearsals = [c for c in expected["control"] if c.get("rehearsal")]
    assert sorted(c["rollout_id"] for c in rehearsals) == sorted(last_ts)
    assert all(c["action"] == "rollback" and c["dry_run"] for c in rehearsals)
    assert [(c["action"], c["scope"]) for c in expected["control"] if not c.get("rehearsal")] == SCOPED

    clock = ManualClock()
    options = WorkerOptions(
        kafka_bootstrap, app_id=f"otlp-{topics.events}", web_enabled=False, idle_after_s=IDLE_S, tick_s=0.2,
        checkpoint_every_s=0.0,
    )  # fmt: skip
    wa = create_app(options, config, topics, clock=clock, signing_key=KEY)
    otlp = wa.runtime.otlp
    assert otlp is not None

    async def run() -> None:
        try:
            await wa.start()
            await wait_until(
                lambda: otlp.heads.get((otlp_topic, 0)) == len(messages) - 1, 240, "every payload"
            )
            clock.now += config.otlp.idle_flush_s  # the OTLP partition is quiet: its held spans are decided
            await wait_until(lambda: wa.stats.applied >= len(traffic.events), 240, "every event applied")
            clock.now += IDLE_S
            await wait_until(lambda: ticks_handled(wa), 120, "the idle ticks")
            await asyncio.sleep(2.0)
            await wait_until(lambda: ticks_handled(wa), 120, "the idle ticks")
        finally:
            await wa.stop()

    asyncio.run(run())
    assert wa.stats.errors == 0 and wa.stats.applied == len(traffic.events)
    counters = otlp.counters()
    assert counters["unjoined"] == traffic.unjoined and counters["not_inference"] == traffic.not_inference
    assert counters["bad_payloads"] == 1 and counters["malformed_spans"] == 1

    got = worker_outputs(kafka_bootstrap, topics)
    assert stamped_until(got, last_ts) == stamped_until(expected, last_ts)
    ladder = [c for c in got["control"] if not c.get("rehearsal")]
    assert [(c["action"], c["scope"]) for c in ladder] == SCOPED

    dead = [orjson.loads(v) for _, v in read_topic(kafka_bootstrap, topics.dead_letter)]
    assert sorted((d["contract"], d["field"], d.get("trace_id"), d.get("span_id")) for d in dead) == sorted(
        [("otlp.traces", "", None, None), ("otlp.span", "gen_ai.usage.output_tokens", *traffic.malformed[0])]
    )
    # Not even the worker's own re-key topic carries message contents (no embeddings to use them).
    for name in [*topics.all_names(), wa.runtime.rekey_topic.get_topic_name()]:
        for _, value in read_topic(kafka_bootstrap, name, timeout_ms=1000):
            assert MARKER.encode() not in value, f"message content copied to {name}"

    # The reference controller applies the scoped command to the flag that served the variants, the
    # scope's dimension mapped to the evaluation-context key the flag targets on (input_class -> inputClass).
    contracts = write_contracts(topics, tmp_path / "topics")
    key_file = tmp_path / "command.key"
    key_file.write_bytes(KEY + b"\n")
    controller_cfg = tmp_path / "controller.yaml"
    controller_cfg.write_text(
        f"controller:\n  group_id: ctl-{uuid.uuid4().hex[:8]}\n  context_keys: {{input_class: inputClass}}\n"
    )
    cmd = [sys.executable, "-m", "rollguard.cli", "controller", "flagd", "--bootstrap", kafka_bootstrap,
           "--flags", str(flags), "--key-file", str(key_file), "--config", str(controller_cfg),
           "--topics-dir", str(contracts), "--state-dir", str(tmp_path / "ctl-state")]  # fmt: skip
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        ack = _ack_for(kafka_bootstrap, topics.acks, ladder[0]["command_id"], timeout_s=60)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert ack["status"] == "applied", ack
    evaluator = Evaluator(flags)
    try:
        coding = {evaluator.variant(CHAT, f"user-{u:05d}", "coding")[0] for u in range(200)}
        chat = [evaluator.variant(CHAT, f"user-{u:05d}", "chat")[0] for u in range(200)]
    finally:
        evaluator.close()
    assert coding == {"control"}  # the regressed scope is off the canary
    assert 0.15 < chat.count("canary") / len(chat) < 0.45  # the rest of the traffic stays on it (30%)


def _ack_for(bootstrap: str, topic: str, command_id: str, timeout_s: float) -> dict[str, Any]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=500)  # fmt: skip
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for message in consumer:
                ack = orjson.loads(message.value)
                if ack.get("command_id") == command_id:
                    return dict(ack)
    finally:
        consumer.close()
    raise AssertionError(f"no ack for {command_id} within {timeout_s:.0f} s")


def test_a_worker_restarted_midway_translates_the_held_spans_again_and_counts_every_event_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    flags = write_flags(tmp_path / "flags.json")
    traffic = make_traffic(flags, n=1500, start_s=now_window(600.0), duration_s=600.0, noise=False)
    payloads = traffic.payloads()
    half = len(payloads) // 2
    topics = make_topics(kafka_bootstrap)
    otlp_topic = f"otlp_spans.{uuid.uuid4().hex[:8]}"
    apply_specs(
        kafka_bootstrap, [TopicSpec(otlp_topic, otlp_topic, "t", 1, 1, 3_600_000, "delete", "none", "x")]
    )
    config_text = WORKER_CONFIG.replace("otlp:\n", f"otlp:\n  topic: {otlp_topic}\n", 1)
    config = parse_config(config_text)
    clock = ManualClock()
    options = WorkerOptions(
        kafka_bootstrap, app_id=f"otlp-restart-{topics.events}", web_enabled=False, idle_after_s=IDLE_S,
        tick_s=0.2, checkpoint_every_s=0.0,
    )  # fmt: skip

    produce(kafka_bootstrap, otlp_topic, payloads[:half], lambda _: None)
    first = create_app(options, config, topics, clock=clock, signing_key=KEY)
    held: dict[str, int] = {}

    async def run_first() -> None:
        otlp = first.runtime.otlp
        assert otlp is not None
        try:
            await first.start()
            await wait_until(lambda: otlp.counters().get("payloads", 0) >= half, 240, "the first half")
            await wait_until(lambda: bool(first.runtime.committed.get((otlp_topic, 0))), 60, "an OTLP commit")
            held.update(otlp.counters())
        finally:
            await first.stop()

    asyncio.run(run_first())
    assert held["held_traces"] > 0, "the stop must come while spans are held"

    produce(kafka_bootstrap, otlp_topic, payloads[half:], lambda _: None)
    second = create_app(options, config, topics, clock=clock, signing_key=KEY)

    async def run_second() -> None:
        try:
            await second.start()
            otlp = second.runtime.otlp
            assert otlp is not None
            await wait_until(
                lambda: otlp.heads.get((otlp_topic, 0)) == len(payloads) - 1, 240, "the last payload"
            )
            clock.now += config.otlp.idle_flush_s
            await wait_until(lambda: events_in(second) >= len(traffic.events), 240, "every event applied")
            clock.now += IDLE_S
            await wait_until(lambda: ticks_handled(second), 120, "the idle ticks")
        finally:
            await second.stop()

    asyncio.run(run_second())
    assert events_in(second) == len(traffic.events)  # each counted once, in the restored state
    # ... and what the two workers published together is what one replay of the traffic writes.
    expected = replay_outputs(
        [orjson.dumps(e) for e in traffic.events], tmp_path, parse_config(WORKER_CONFIG), signing_key=KEY
    )
    last_ts = _last_ts(traffic.events)
    assert stamped_until(worker_outputs(kafka_bootstrap, topics), last_ts) == stamped_until(expected, last_ts)
    otlp = second.runtime.otlp
    assert otlp is not None and otlp.counters()["payloads"] > len(payloads) - half  # the held ones read again
    assert second.stats.errors == 0 and second.stats.dead_lettered == 0
