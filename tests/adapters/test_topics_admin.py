"""``rollguard topics apply``: the pure plan/diff/report, then the real thing against the broker."""

from __future__ import annotations

import io
import shutil
import uuid
from pathlib import Path

import pytest
import yaml

from rollguard.adapters.topic_contracts import TopicSpec, default_topics_dir, load_topics
from rollguard.adapters.topics_admin import (
    EXIT_DIFFERS,
    EXIT_ERROR,
    EXIT_OK,
    ExistingTopic,
    compare_topic,
    exit_code,
    normalize_config,
    plan_topics,
    render_report,
    run_topics_apply,
)

SPEC = TopicSpec(
    "t.events", "events", "d", 6, 1, 604_800_000, "delete", "rollout_id", "schemas/event.v1.json"
)


def _existing(partitions: int = 6, replication: int = 1, **configs: str) -> ExistingTopic:
    base = {"cleanup.policy": "delete", "retention.ms": "604800000", "segment.bytes": "1073741824"}
    base.update({k.replace("_", "."): v for k, v in configs.items()})
    return ExistingTopic("t.events", partitions, replication, base)


def test_matching_topic_has_no_differences() -> None:
    assert compare_topic(SPEC, _existing()) == []


def test_every_declared_setting_is_compared() -> None:
    diffs = compare_topic(
        SPEC, _existing(partitions=3, replication=-1, retention_ms="3600000", cleanup_policy="compact")
    )
    assert [(d.setting, d.declared, d.actual) for d in diffs] == [
        ("partitions", "6", "3"),
        ("replication", "1", "mixed"),
        ("cleanup.policy", "delete", "compact"),
        ("retention.ms", "604800000", "3600000"),
    ]


def test_config_normalization() -> None:
    assert normalize_config("cleanup.policy", "delete, compact") == "compact,delete"
    assert normalize_config("preallocate", "True") == "true"
    assert normalize_config("retention.ms", None) == "<unset>"


def test_plan_and_report() -> None:
    other = TopicSpec("t.alerts", "alerts", "d", 3, 1, 1000, "delete", "rollout_id", "x")
    missing = TopicSpec("t.acks", "acks", "d", 3, 1, 1000, "delete", "rollout_id", "x")
    plan = plan_topics(
        [SPEC, other, missing],
        {"t.events": _existing(), "t.alerts": ExistingTopic("t.alerts", 1, 1, {"cleanup.policy": "delete"})},
    )
    assert [s.name for s in plan.create] == ["t.acks"]
    assert [s.name for s in plan.matching] == ["t.events"]
    assert set(plan.differing) == {"t.alerts"}
    assert exit_code(plan) == EXIT_DIFFERS
    dry = render_report(plan, dry_run=True)
    assert dry[0].split() == ["would", "create", "t.acks", *dry[0].split()[3:]]
    assert any("DIFFERS" in line and "partitions declared 3, actual 1" in line for line in dry)
    assert "NOT changed" in dry[-1]
    done = render_report(plan, dry_run=False, created=["t.acks"])
    assert done[-1].startswith("1 created, 1 unchanged, 1 differ")


def test_nothing_to_do_report() -> None:
    plan = plan_topics([SPEC], {"t.events": _existing()})
    assert exit_code(plan) == EXIT_OK
    assert render_report(plan, dry_run=False) == [
        "  ok            t.events",
        "0 created, 1 unchanged, 0 differ: nothing to do",
    ]


def test_invalid_contracts_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("name: bad\n")
    assert run_topics_apply("127.0.0.1:1", str(tmp_path), dry_run=True) == EXIT_ERROR
    assert "bad.yaml" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ real broker


def _contracts_copy(tmp_path: Path, suffix: str) -> Path:
    """The project's real contracts under unique topic names, so the test never meets a user's topics."""
    src = default_topics_dir()
    dst = tmp_path / "topics"
    shutil.copytree(src / "schemas", dst / "schemas")
    for path in src.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        doc["name"] = f"{doc['name']}.{suffix}"
        (dst / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return dst


@pytest.mark.kafka
@pytest.mark.timeout(120)
def test_apply_creates_then_is_a_no_op_and_reports_differences(kafka_bootstrap: str, tmp_path: Path) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    suffix = uuid.uuid4().hex[:8]
    topics_dir = _contracts_copy(tmp_path, suffix)
    specs = load_topics(topics_dir)

    out = io.StringIO()
    assert run_topics_apply(kafka_bootstrap, str(topics_dir), dry_run=True, out=out) == EXIT_OK
    assert out.getvalue().count("would create") == len(specs)

    out = io.StringIO()
    assert run_topics_apply(kafka_bootstrap, str(topics_dir), dry_run=False, out=out) == EXIT_OK
    assert out.getvalue().count("created ") == len(specs), out.getvalue()

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        described = {t["name"]: t for t in admin.describe_topics([s.name for s in specs])}
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, s.name, None) for s in specs], config_filter="all"
        )["topic"]
        for spec in specs:
            assert len(described[spec.name]["partitions"]) == spec.partitions
            for key, value in spec.kafka_configs().items():
                assert configs[spec.name][key]["value"] == value

        out = io.StringIO()
        assert run_topics_apply(kafka_bootstrap, str(topics_dir), dry_run=False, out=out) == EXIT_OK
        assert "nothing to do" in out.getvalue()
        assert "created " not in out.getvalue()

        # A topic that exists with other settings than declared: reported, exit 2, left as it is.
        odd = f"test.odd.{suffix}"
        admin.create_topics(
            {odd: {"num_partitions": 1, "replication_factor": 1, "configs": {"retention.ms": "3600000"}}}
        )
        admin.wait_for_topics([odd])
        doc = yaml.safe_load((topics_dir / f"rollguard.events.{suffix}.yaml").read_text())
        (topics_dir / f"{odd}.yaml").write_text(yaml.safe_dump({**doc, "name": odd, "role": "odd"}))
        out = io.StringIO()
        assert run_topics_apply(kafka_bootstrap, str(topics_dir), dry_run=False, out=out) == EXIT_DIFFERS
        report = out.getvalue()
        assert f"DIFFERS       {odd}: partitions declared 6, actual 1" in report
        assert "retention.ms declared 604800000, actual 3600000" in report
        after = admin.describe_topics([odd])[0]
        assert len(after["partitions"]) == 1
        odd_cfg = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, odd, None)], config_filter="all"
        )
        assert odd_cfg["topic"][odd]["retention.ms"]["value"] == "3600000"
    finally:
        admin.close()
