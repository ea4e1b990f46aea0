"""Worker pieces that need no broker: message validation, dead-letter records, configuration."""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

import jsonschema
import pytest

from rollguard.adapters.dead_letter import Source, dead_letter_record, decode_original, encode_bytes
from rollguard.adapters.topic_contracts import default_topics_dir, load_topics
from rollguard.adapters.worker import (
    WorkerTopics,
    broker_urls,
    load_worker_config,
    run_worker,
    validate_message,
)
from rollguard.domain.events import Event, EventError
from rollguard.settings.worker import WorkerSettings

VALID = (
    b'{"event_id": "e", "request_id": "r", "ts": 1767225600, "rollout_id": "x", "arm": "control",'
    b' "status": "ok"}'
)


def test_validate_message_never_raises() -> None:
    assert isinstance(validate_message(VALID), Event)
    tomb = validate_message(None)
    assert isinstance(tomb, EventError) and "tombstone" in tomb.reason
    assert isinstance(validate_message(12), EventError)
    assert isinstance(validate_message(b"\x00\xff"), EventError)


def test_dead_letter_record_keeps_the_original_exactly() -> None:
    schema = json.loads((default_topics_dir() / "schemas" / "dead-letter.v1.json").read_text())
    for original in (b'{"arm": "blue"}', b"\xff\xfe\x00binary", b""):
        error = EventError("arm", "must be one of control, canary, shadow", "e9")
        record = dead_letter_record(
            original, b"k", error, Source("t", 2, 41, 1767225600000), now=1.5, worker="w"
        )
        jsonschema.validate(record, schema)
        assert decode_original(record) == original
        assert (record["field"], record["event_id"], record["source_partition"], record["source_offset"]) == (
            "arm",
            "e9",
            2,
            41,
        )
    assert encode_bytes(b"\xff") == (base64.b64encode(b"\xff").decode(), "base64")
    assert encode_bytes(None) == (None, "utf-8")


def test_broker_urls() -> None:
    assert broker_urls("a:9092, b:9093") == ["kafka://a:9092", "kafka://b:9093"]
    with pytest.raises(ValueError):
        broker_urls(" , ")


def test_worker_topics_from_contracts() -> None:
    topics = WorkerTopics.from_contracts(load_topics(default_topics_dir()))
    assert (topics.events, topics.dead_letter, topics.partitions) == (
        "rollguard.events",
        "rollguard.dead-letter",
        6,
    )


def test_worker_config_comes_from_the_whole_checked_config_file(tmp_path: Path) -> None:
    """The section's own checks are in tests/settings/test_settings_worker.py."""
    assert load_worker_config(None) == WorkerSettings()
    path = tmp_path / "c.yaml"
    path.write_text("alpha: 0.05\nworker: {web_port: 7000, processing_guarantee: exactly_once}\n")
    config = load_worker_config(str(path))
    assert (config.web_port, config.processing_guarantee) == (7000, "exactly_once")
    for bad, message in [
        ("worker: {web_prot: 7000}\n", "c.yaml:1: worker.web_prot: unknown setting (expected one of: "),
        ("worker:\n  web_port: '7000'\n", "c.yaml:2: worker.web_port: must be a number, got '7000'"),
        ("alpah: 0.05\n", "c.yaml:1: alpah: unknown section"),  # the rest of the file is checked too
    ]:
        path.write_text(bad)
        with pytest.raises(ValueError) as info:
            load_worker_config(str(path))
        assert str(info.value).startswith(f"{tmp_path}/{message}")
    with pytest.raises(ValueError, match="cannot read config file"):
        load_worker_config(str(tmp_path / "missing.yaml"))


def test_run_worker_reports_bad_contracts(tmp_path: Path) -> None:
    args = argparse.Namespace(
        bootstrap="127.0.0.1:1",
        config=None,
        app_id="x",
        data_dir=None,
        topics_dir=str(tmp_path),
        log_level="error",
    )
    assert run_worker(args) == 1
