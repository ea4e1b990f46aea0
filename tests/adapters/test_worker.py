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
from rollguard.adapters.worker import WorkerTopics, broker_urls, validate_message
from rollguard.adapters.worker.cli import run_worker
from rollguard.domain.events import Event, EventError

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
    assert (topics.events, topics.dead_letter, topics.acks, topics.control, topics.partitions) == (
        "rollguard.events", "rollguard.dead-letter", "rollguard.acks", "rollguard.control", 6,
    )  # fmt: skip
    assert topics.name("alerts.critical") == "rollguard.alerts.critical"
    assert (topics.name("verdicts"), topics.name("audit")) == ("rollguard.verdicts", "rollguard.audit")


def _args(tmp_path: Path, **kw: object) -> argparse.Namespace:
    base = {"bootstrap": "127.0.0.1:1", "config": None, "app_id": "x", "data_dir": None,
            "topics_dir": None, "log_level": "error"}  # fmt: skip
    return argparse.Namespace(**{**base, **kw})


def test_a_bad_config_stops_the_worker_before_kafka_with_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("alpha: 0.05\nworker:\n  web_port: '7000'\n")
    assert run_worker(_args(tmp_path, config=str(path))) == 2
    assert f"{path}:3: worker.web_port: must be a number, got '7000'" in capsys.readouterr().err


def test_sasl_without_a_password_in_the_environment_stops_the_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    kafka = "{security_protocol: SASL_PLAINTEXT, sasl_username: rg, sasl_password_env: RG_PW}"
    path.write_text(f"worker:\n  kafka: {kafka}\n")
    monkeypatch.delenv("RG_PW", raising=False)
    assert run_worker(_args(tmp_path, config=str(path))) == 2
    assert "needs a password in the environment variable RG_PW" in capsys.readouterr().err


def test_without_any_bootstrap_the_worker_says_where_to_set_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROLLGUARD_BOOTSTRAP", raising=False)
    assert run_worker(_args(tmp_path, bootstrap=None)) == 2
    assert "ROLLGUARD_BOOTSTRAP" in capsys.readouterr().err


def test_run_worker_reports_bad_contracts(tmp_path: Path) -> None:
    assert run_worker(_args(tmp_path, topics_dir=str(tmp_path))) == 1
