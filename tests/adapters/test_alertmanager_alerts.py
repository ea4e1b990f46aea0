"""Alert v1 records become the Alertmanager v2 alerts the bridge posts, and the bridge's book of
delivered firing alerts keeps every resolve and never lets a late record undo a later one."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from alert_testkit import alert_schema, replayed_alert_pair, variant
from rollguard.adapters.alertmanager_alerts import (
    AlertRecord,
    DeliveredAlerts,
    parse_alert,
    rfc3339,
    to_alertmanager,
)
from rollguard.domain.events import EventError

NOW = 1796515200.0  # 2026-12-06: after the replay's event time
WORKER = "http://127.0.0.1:6066"
SOURCE = ("rollguard.alerts.critical", 0)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    return replayed_alert_pair(Path(tmp_path_factory.mktemp("replay")))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(alert_schema())


def _parse(doc: dict[str, Any], validator: jsonschema.Draft202012Validator) -> AlertRecord:
    record = parse_alert(orjson.dumps(doc), validator)
    assert isinstance(record, AlertRecord), record
    return record


def test_a_firing_record_maps_to_an_alert_with_its_labels_annotations_start_and_no_end(
    pair: tuple[dict[str, Any], dict[str, Any]], validator: jsonschema.Draft202012Validator
) -> None:
    firing, _ = pair
    alert = to_alertmanager(_parse(firing, validator), worker_url=WORKER, now=NOW)
    assert alert["labels"] == firing["labels"]
    assert {"alertname", "severity", "rollout", "cohort", "audience", "scope_input_class"} <= set(
        alert["labels"]
    )
    assert alert["annotations"] == {**firing["annotations"], "alert_id": firing["alert_id"]}
    assert alert["startsAt"] == rfc3339(firing["starts_at"])
    assert "endsAt" not in alert  # Alertmanager holds it for resolve_timeout; the bridge re-posts it
    assert alert["generatorURL"] == f"{WORKER}/status?rollout={firing['rollout_id']}"


def test_a_resolve_ends_at_the_records_ends_at_but_never_in_the_future(
    pair: tuple[dict[str, Any], dict[str, Any]], validator: jsonschema.Draft202012Validator
) -> None:
    _, resolved = pair
    alert = to_alertmanager(_parse(resolved, validator), worker_url=WORKER, now=NOW)
    assert alert["endsAt"] == rfc3339(resolved["ends_at"])
    early = _parse(resolved, validator)
    clock_behind = resolved["ends_at"] - 10.0  # the bridge's clock behind the producer's event time
    alert = to_alertmanager(early, worker_url=WORKER, now=clock_behind)
    assert alert["endsAt"] == rfc3339(clock_behind) and alert["startsAt"] <= alert["endsAt"]


def test_the_records_own_generator_url_wins_when_it_is_a_url(
    pair: tuple[dict[str, Any], dict[str, Any]], validator: jsonschema.Draft202012Validator
) -> None:
    firing = {**pair[0], "generator_url": "https://rollguard.example/r/checkout"}
    assert to_alertmanager(_parse(firing, validator), worker_url=WORKER, now=NOW)["generatorURL"] == (
        "https://rollguard.example/r/checkout"
    )
    firing["generator_url"] = "not a url"
    assert to_alertmanager(_parse(firing, validator), worker_url=WORKER, now=NOW)["generatorURL"].startswith(
        WORKER
    )


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda d: b"\xff not json", "", "not valid JSON"),
        (lambda d: b"[1, 2]", "", "must be a JSON object"),
        (
            lambda d: {k: v for k, v in d.items() if k != "fingerprint"},
            "",
            "'fingerprint' is a required property",
        ),
        (lambda d: {**d, "status": "pending"}, "status", "alert.v1"),
        (lambda d: {**d, "labels": {**d["labels"], "bad-name": "x"}}, "labels.bad-name", "label name"),
        (lambda d: {**d, "labels": {**d["labels"], "n": 3}}, "labels.n", "alert.v1"),
        (lambda d: {**d, "starts_at": 1e300}, "starts_at", "epoch seconds"),
        (lambda d: {**d, "status": "resolved", "ends_at": d["starts_at"] - 1}, "ends_at", "before starts_at"),
    ],
)
def test_a_record_that_is_not_alert_v1_is_an_error_naming_the_field(
    pair: tuple[dict[str, Any], dict[str, Any]],
    validator: jsonschema.Draft202012Validator,
    mutate: Any,
    field: str,
    reason: str,
) -> None:
    doc = mutate(copy.deepcopy(pair[0]))
    error = parse_alert(doc if isinstance(doc, bytes) else orjson.dumps(doc), validator)
    assert isinstance(error, EventError)
    assert error.field == field
    assert reason in error.reason
    assert len(error.reason) <= 220


def test_a_resolve_is_posted_and_ends_the_firing_it_resolves(
    pair: tuple[dict[str, Any], dict[str, Any]], validator: jsonschema.Draft202012Validator
) -> None:
    firing, resolved = (_parse(r, validator) for r in pair)
    book = DeliveredAlerts(WORKER)
    assert [a.get("endsAt") for a in book.apply(firing, SOURCE, NOW).posts] == [None]
    assert len(book.repost(NOW)) == 1
    (post,) = book.apply(resolved, SOURCE, NOW).posts
    assert post["endsAt"] == rfc3339(pair[1]["ends_at"]) and post["labels"] == pair[0]["labels"]
    assert book.repost(NOW) == []


def test_a_resolve_is_posted_even_for_an_alert_this_bridge_never_saw_firing(
    pair: tuple[dict[str, Any], dict[str, Any]], validator: jsonschema.Draft202012Validator
) -> None:
    book = DeliveredAlerts(WORKER)
    (post,) = book.apply(_parse(pair[1], validator), SOURCE, NOW).posts
    assert "endsAt" in post


def test_a_firing_that_arrives_after_its_own_resolve_is_not_posted(
    pair: tuple[dict[str, Any], dict[str, Any]], validator: jsonschema.Draft202012Validator
) -> None:
    # One alert's records can sit on two topics (its severity changed): the slower topic's firing
    # must not bring a resolved alert back.
    firing, resolved = (_parse(r, validator) for r in pair)
    book = DeliveredAlerts(WORKER)
    book.apply(resolved, SOURCE, NOW)
    assert book.apply(firing, ("rollguard.alerts.warning", 1), NOW).posts == []
    assert book.repost(NOW) == []


def test_a_raised_severity_resolves_the_label_set_posted_before(
    pair: tuple[dict[str, Any], dict[str, Any]], validator: jsonschema.Draft202012Validator
) -> None:
    critical = pair[0]
    warning = copy.deepcopy(critical)
    warning["severity"] = warning["labels"]["severity"] = "warning"
    warning["notification"] = {"reason": "new", "seq": 1, "at": critical["starts_at"]}
    raised = copy.deepcopy(critical)
    raised["notification"] = {"reason": "severity_raised", "seq": 2, "at": critical["starts_at"] + 60}
    book = DeliveredAlerts(WORKER)
    book.apply(_parse(warning, validator), ("rollguard.alerts.warning", 0), NOW)
    old, new = book.apply(_parse(raised, validator), SOURCE, NOW).posts
    assert old["labels"]["severity"] == "warning" and old["endsAt"] == rfc3339(NOW)
    assert new["labels"]["severity"] == "critical" and "endsAt" not in new
    # ... and the warning record, read again late (a rebuild reads topic by topic), changes nothing.
    assert book.apply(_parse(warning, validator), ("rollguard.alerts.warning", 0), NOW).posts == []
    assert [a["labels"]["severity"] for a in book.repost(NOW)] == ["critical"]


def test_a_resolve_of_an_older_firing_does_not_resolve_the_newer_one_with_the_same_labels(
    pair: tuple[dict[str, Any], dict[str, Any]], validator: jsonschema.Draft202012Validator
) -> None:
    firing, resolved = pair
    refire = copy.deepcopy(firing)
    refire["alert_id"] = "al-second-firing"
    refire["starts_at"] = resolved["ends_at"] + 600
    refire["notification"] = {"reason": "new", "seq": 1, "at": refire["starts_at"]}
    book = DeliveredAlerts(WORKER)
    book.apply(_parse(refire, validator), SOURCE, NOW)
    assert book.apply(_parse(resolved, validator), ("rollguard.alerts.warning", 2), NOW).posts == []
    assert [a["annotations"]["alert_id"] for a in book.repost(NOW)] == ["al-second-firing"]


def test_partitions_handed_over_take_their_alerts_with_them_and_undo_restores_a_refused_record(
    pair: tuple[dict[str, Any], dict[str, Any]], validator: jsonschema.Draft202012Validator
) -> None:
    book = DeliveredAlerts(WORKER)
    one = _parse(pair[0], validator)
    other = _parse(variant(pair[0], 2), validator)
    book.apply(one, SOURCE, NOW)
    plan = book.apply(other, ("rollguard.alerts.critical", 1), NOW)
    assert len(book.repost(NOW)) == 2
    book.undo(plan, other)
    assert [a["labels"]["rollout"] for a in book.repost(NOW)] == [pair[0]["rollout_id"]]
    book.apply(other, ("rollguard.alerts.critical", 1), NOW)
    assert book.drop_sources([("rollguard.alerts.critical", 1)]) == 1
    assert [a["labels"]["rollout"] for a in book.repost(NOW)] == [pair[0]["rollout_id"]]


def test_records_made_by_the_test_kit_are_alert_v1(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    schema = alert_schema()
    firing, resolved = pair
    for record in (firing, resolved, variant(firing, 1), variant(resolved, 1)):
        jsonschema.validate(record, schema)
    assert (firing["alert_id"], firing["fingerprint"]) == (resolved["alert_id"], resolved["fingerprint"])
    assert firing["severity"] == "critical" and resolved["ends_at"] >= firing["starts_at"]
    assert variant(firing, 1)["fingerprint"] == variant(resolved, 1)["fingerprint"] != firing["fingerprint"]
