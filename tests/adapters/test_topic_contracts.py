"""Topic contracts (topics/*.yaml) and payload schemas (topics/schemas/*.json): pure checks, no broker."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from rollguard.adapters.topic_contracts import (
    TopicContractError,
    default_topics_dir,
    load_topics,
    parse_retention,
    topic_for_role,
)
from rollguard.domain.events import Event, parse_event

TOPICS = default_topics_dir()
ROLES = {
    "events",
    "alerts.critical",
    "alerts.warning",
    "alerts.info",
    "control",
    "acks",
    "dead-letter",
    "verdicts",
    "audit",
}


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((TOPICS / "schemas" / name).read_text())
    return schema


def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_schema(name), format_checker=jsonschema.FormatChecker())


def test_project_contracts_load_and_cover_every_role() -> None:
    specs = load_topics(TOPICS)
    assert {s.role for s in specs} == ROLES
    assert topic_for_role(specs, "events").name == "rollguard.events"
    assert topic_for_role(specs, "dead-letter").name == "rollguard.dead-letter"
    by_role = {s.role: s for s in specs}
    # Topics keyed by rollout that a worker may join with the events must be co-partitioned with them.
    for role in ("control", "acks"):
        assert by_role[role].partitions == by_role["events"].partitions
    for spec in specs:
        assert spec.description and spec.source is not None
        schema = json.loads(spec.schema_path(TOPICS).read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert spec.key in schema["properties"], f"{spec.name}: key {spec.key!r} is not a payload field"


@pytest.mark.parametrize("name", sorted(p.name for p in (TOPICS / "schemas").glob("*.json")))
def test_schema_examples_validate(name: str) -> None:
    validator = _validator(name)
    for example in _schema(name).get("examples", []):
        validator.validate(example)


def _base_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "e1",
        "request_id": "r1",
        "ts": 1767225600,
        "rollout_id": "r",
        "arm": "canary",
        "status": "ok",
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not _DROP}


_DROP = object()

EVENT_CASES = [
    _base_event(),
    _base_event(
        ts="2026-01-01T00:00:00Z", variant="v2", segment={"tenant": "t1"}, unit_id="u", canary_weight=1
    ),
    _base_event(
        quality={"eval": 0.5}, response_embedding=[0.1, 2], format_valid=False, cost_usd=0, extra_field=[1]
    ),
    _base_event(event_id=_DROP),
    _base_event(event_id=""),
    _base_event(arm="blue"),
    _base_event(status="fine"),
    _base_event(ts=True),
    _base_event(ts=10),
    _base_event(canary_weight=1.5),
    _base_event(latency_ms=-1),
    _base_event(segment={"tenant": 3}),
    _base_event(quality={"eval": "good"}),
    _base_event(response_embedding=[]),
    _base_event(format_valid="yes"),
    _base_event(unit_id=""),
    _base_event(schema_version=2),
    _base_event(variant_parts={"model": "m-2026-01", "prompt": "p7", "tools": "t3"}),
    _base_event(variant_parts={}),
    _base_event(variant_parts=["model"]),
    _base_event(variant_parts={"model": 2}),
    _base_event(variant_parts={"model": ""}),
    _base_event(variant_parts={"model": "m" * 257}),
    _base_event(variant_parts={"-model": "m"}),
    _base_event(variant_parts={"model\n": "m"}),
    _base_event(variant_parts={"m" * 65: "m"}),
    _base_event(variant_parts={f"p{i}": "v" for i in range(17)}),
]


@pytest.mark.parametrize("event", EVENT_CASES)
def test_event_schema_agrees_with_the_validator(event: dict[str, Any]) -> None:
    schema_ok = _validator("event.v1.json").is_valid(event)
    parsed = parse_event(json.dumps(event).encode())
    assert schema_ok == isinstance(parsed, Event), (event, parsed)


def test_alert_command_ack_schemas_accept_and_reject() -> None:
    alert = {
        "alert_id": "a1",
        "fingerprint": "fp",
        "status": "firing",
        "severity": "critical",
        "rollout_id": "r",
        "scope": {"input_class": "coding"},
        "rule": "guardrail.errors",
        "summary": "error rate +4pp in coding (99%)",
        "signals": [{"metric": "error_rate", "verdict": "regressed", "effect": 0.04, "n_control": 900}],
        "starts_at": 1767225600,
        "ends_at": None,
        "labels": {
            "alertname": "RollguardRegression",
            "severity": "critical",
            "rollout": "r",
            "audience": "oncall",
        },
        "annotations": {"summary": "error rate +4pp in coding"},
    }
    _validator("alert.v1.json").validate(alert)
    assert not _validator("alert.v1.json").is_valid({**alert, "severity": "page"})
    assert not _validator("alert.v1.json").is_valid({**alert, "labels": {"alertname": "x"}})

    command = {
        "command_id": "c1",
        "rollout_id": "r",
        "scope": {"tenant": "t3"},
        "action": "reduce_weight",
        "target_weight": 0.1,
        "issued_at": 1767225600,
        "expires_at": 1767226200,
        "alert_ids": ["a1"],
        "evidence": {},
        "dry_run": True,
        "signature": "ab12",
    }
    _validator("command.v1.json").validate(command)
    assert not _validator("command.v1.json").is_valid(
        {k: v for k, v in command.items() if k != "target_weight"}
    )
    assert not _validator("command.v1.json").is_valid({**command, "action": "explode"})

    ack = {"command_id": "c1", "rollout_id": "r", "status": "applied", "at": 1767225601}
    _validator("ack.v1.json").validate(ack)
    assert not _validator("ack.v1.json").is_valid({**ack, "status": "rejected"})  # needs a reason
    _validator("ack.v1.json").validate(
        {**ack, "status": "rejected", "reason": "expired", "reason_code": "expired"}
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7d", 604_800_000),
        ("12h", 43_200_000),
        ("30m", 1_800_000),
        ("45s", 45_000),
        ("500ms", 500),
        ("forever", -1),
        (-1, -1),
        (1000, 1000),
    ],
)
def test_parse_retention(value: Any, expected: int) -> None:
    assert parse_retention(value) == expected


@pytest.mark.parametrize("value", ["7 days", "0d", 0, True, "-5h", None, 1.5])
def test_parse_retention_rejects(value: Any) -> None:
    assert isinstance(parse_retention(value), str)


GOOD = {
    "name": "t.one",
    "role": "one",
    "description": "d",
    "partitions": 3,
    "replication": 1,
    "retention": "1d",
    "cleanup_policy": "delete",
    "key": "rollout_id",
    "payload_schema": "schemas/s.json",
}


def _write(directory: Path, doc: Any, filename: str | None = None) -> Path:
    (directory / "schemas").mkdir(exist_ok=True)
    (directory / "schemas" / "s.json").write_text("{}")
    name = filename or (f"{doc['name']}.yaml" if isinstance(doc, dict) and "name" in doc else "x.yaml")
    path = directory / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"partitions": "six"}, "partitions", "positive integer"),
        ({"partitions": 0}, "partitions", "positive integer"),
        ({"replication": True}, "replication", "positive integer"),
        ({"retention": "a week"}, "retention", "duration"),
        ({"cleanup_policy": "shred"}, "cleanup_policy", "must be one of"),
        ({"payload_schema": "schemas/missing.json"}, "payload_schema", "file not found"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"description": ""}, "description", "non-empty string"),
        ({"configs": {"retention.ms": 5}}, "configs.retention.ms", "own field"),
        ({"configs": {"max.message.bytes": [1]}}, "configs.max.message.bytes", "scalar"),
    ],
)
def test_invalid_contract_names_file_and_field(
    tmp_path: Path, change: dict[str, Any], field: str, reason: str
) -> None:
    path = _write(tmp_path, {**GOOD, **change})
    with pytest.raises(TopicContractError) as err:
        load_topics(tmp_path)
    # file:line: field: what is wrong — the line is the field's own (or, for a block value, its first).
    where = re.match(rf"{re.escape(str(path))}:(\d+): {re.escape(field)}: ", str(err.value))
    assert where, str(err.value)
    line, text = int(where.group(1)), path.read_text().splitlines()
    assert field.removeprefix("configs.") in " ".join(text[max(line - 2, 0) : line])
    assert reason in str(err.value)


def test_missing_field_and_file_name(tmp_path: Path) -> None:
    doc = {k: v for k, v in GOOD.items() if k != "key"}
    _write(tmp_path, doc)
    with pytest.raises(TopicContractError, match=r"t\.one\.yaml: key: required field is missing"):
        load_topics(tmp_path)
    (tmp_path / "t.one.yaml").unlink()
    _write(tmp_path, GOOD, filename="other.yaml")
    with pytest.raises(TopicContractError, match="must match the file name"):
        load_topics(tmp_path)


def test_duplicate_role_invalid_yaml_and_empty_dir(tmp_path: Path) -> None:
    _write(tmp_path, GOOD)
    _write(tmp_path, {**GOOD, "name": "t.two"})
    with pytest.raises(TopicContractError, match="role: 'one' is also declared in"):
        load_topics(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    _write(bad, "name: [unclosed", filename="b.yaml")
    with pytest.raises(TopicContractError, match=r"b\.yaml:1: not valid YAML"):
        load_topics(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TopicContractError, match="no topic contracts"):
        load_topics(empty)


def test_extra_configs_and_list_cleanup_policy(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            **GOOD,
            "cleanup_policy": ["delete", "compact"],
            "configs": {"max.message.bytes": 2097152, "preallocate": False},
        },
    )
    (spec,) = load_topics(tmp_path)
    assert spec.kafka_configs() == {
        "cleanup.policy": "compact,delete",
        "retention.ms": "86400000",
        "max.message.bytes": "2097152",
        "preallocate": "false",
    }


def test_default_topics_dir_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLGUARD_TOPICS_DIR", str(tmp_path))
    assert default_topics_dir() == tmp_path
    monkeypatch.setenv("ROLLGUARD_TOPICS_DIR", str(tmp_path / "nope"))
    with pytest.raises(TopicContractError, match="not a directory"):
        default_topics_dir()
    monkeypatch.delenv("ROLLGUARD_TOPICS_DIR")
    (tmp_path / "topics").mkdir()
    _write(tmp_path / "topics", GOOD)
    monkeypatch.chdir(tmp_path)
    assert default_topics_dir() == tmp_path / "topics"
    monkeypatch.chdir(tmp_path / "topics")  # no ./topics here: falls back to the checkout's
    assert (default_topics_dir() / "rollguard.events.yaml").is_file()
