"""The README's section for OpenTelemetry users, as written: the Collector snippet names the topic and an
encoding rollguard reads, the ``otlp`` block states the real defaults, and both commands run — replay on
a file of OTLP JSON payloads, the worker on the OTLP topic of a real broker."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from worker_kit import get_json, produce, read_topic, wait_ready, write_contracts

from kafka_broker import free_port
from otlp_testkit import CHAT, by_trace, make_traffic, now_window, otlp_json, write_flags
from rollguard.adapters.topics_admin import TopicSpec, apply_specs, run_topics_apply
from rollguard.adapters.worker import WorkerTopics
from rollguard.settings.config import parse_config
from rollguard.settings.otlp import ENCODINGS, OtlpSettings

README = Path(__file__).resolve().parents[3] / "README.md"
# What the tests add to the README's config: no embedding model (minutes on 2 cores), a free web port.
TEST_ONLY = "embeddings: {enabled: false}\n"


def section() -> str:
    text = README.read_text()
    start = text.index("## OpenTelemetry users")
    return text[start : text.index("\n## ", start + 1)]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section(), re.S)


def commands() -> list[str]:
    return [line for block in blocks("sh") for line in block.splitlines() if line.strip()]


def as_process(command: str) -> list[str]:
    argv = shlex.split(command)
    assert argv[0] == "rollguard"
    return [sys.executable, "-m", "rollguard.cli", *argv[1:]]


def test_the_collector_snippet_writes_the_topic_rollguard_reads_in_an_encoding_it_reads() -> None:
    collector, ours = blocks("yaml")
    exporter = yaml.safe_load(collector)["exporters"]["kafka"]
    assert yaml.safe_load(collector)["service"]["pipelines"]["traces"]["exporters"] == ["kafka"]
    config = parse_config(ours)
    assert exporter["traces"]["topic"] == config.otlp.topic
    assert exporter["traces"]["encoding"] in ENCODINGS and exporter["partition_traces_by_id"] is True


def test_the_otlp_block_states_the_defaults_of_every_key_not_marked_otherwise() -> None:
    _, ours = blocks("yaml")
    marked = {m for m in re.findall(r"^  (\w+):.*not a default", ours, re.M)}
    assert marked == {"topic", "flags", "segments", "prices"}
    parsed, defaults = parse_config(ours).otlp, OtlpSettings()
    keys = set(yaml.safe_load(ours)["otlp"]) - marked
    assert keys >= {"encoding", "join_window_s", "idle_flush_s", "variants", "unit", "status", "ttft"}
    for key in sorted(keys):
        assert getattr(parsed, key) == getattr(defaults, key), key


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_commands_run_as_written(kafka_bootstrap: str, tmp_path: Path) -> None:
    replay_cmd, worker_cmd = commands()
    _, ours = blocks("yaml")
    traffic = make_traffic(
        write_flags(tmp_path / "flags.json"), n=800, start_s=now_window(600), duration_s=600
    )
    chat_events = sum(e["rollout_id"] == CHAT for e in traffic.events)
    payloads = traffic.payloads()
    (tmp_path / "spans.jsonl").write_bytes(b"".join(otlp_json(p) + b"\n" for p in payloads))
    topic = f"otlp_spans-{uuid.uuid4().hex[:8]}"
    port = free_port()
    config = (
        ours.replace("topic: otlp_spans", f"topic: {topic}") + TEST_ONLY + f"worker: {{web_port: {port}}}\n"
    )
    (tmp_path / "rollguard.yaml").write_text(config)

    subprocess.run(as_process(replay_cmd), cwd=tmp_path, check=True, timeout=300)
    summary = orjson.loads((tmp_path / "replay-out" / "summary.json").read_bytes())
    assert summary["events"] == chat_events and summary["otlp"]["unjoined"] == traffic.unjoined
    assert (tmp_path / "replay-out" / "verdicts.jsonl").read_bytes()

    topics = WorkerTopics.prefixed(f"readme{uuid.uuid4().hex[:8]}", 2)
    contracts = write_contracts(topics, tmp_path / "topics")
    assert run_topics_apply(kafka_bootstrap, str(contracts), dry_run=False) == 0
    apply_specs(kafka_bootstrap, [TopicSpec(topic, topic, "t", 2, 1, 3_600_000, "delete", "none", "x")])
    # As the exporter with ``partition_traces_by_id: true`` writes them: a message per trace, keyed by it.
    messages = [message for p in payloads for message in by_trace(p)]
    keys = {value: key for key, value in messages}
    produce(kafka_bootstrap, topic, list(keys), keys.__getitem__)
    argv = as_process(worker_cmd.replace("localhost:9092", kafka_bootstrap))
    argv += [
        "--topics-dir",
        str(contracts),
        "--app-id",
        f"readme-{topics.events}",
        "--data-dir",
        str(tmp_path / "d"),
    ]
    proc = subprocess.Popen(argv, cwd=tmp_path)
    try:
        wait_ready(proc, port, 120)
        status: dict[str, Any] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = get_json(f"http://127.0.0.1:{port}/status")["worker"]
            if status["applied"] >= chat_events:
                break
            time.sleep(0.5)
        assert status["applied"] == chat_events, status
        assert status["otlp"]["payloads"] == len(keys) and status["otlp"]["unjoined"] == traffic.unjoined
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert read_topic(kafka_bootstrap, topics.verdicts)
