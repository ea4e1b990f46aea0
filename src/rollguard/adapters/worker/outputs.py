"""What a pipeline step publishes, where, under which id — and which of it is already on the topics.

Verdict changes go to the verdicts topic, alert notifications to the topic of their severity tier,
commands and readiness records to the control topic, audit records to the audit topic; all keyed by
rollout id. Commands, readiness records and alert notifications carry deterministic ids (``command_id``;
``readiness_id``; ``alert_id`` with status and notification sequence), which is what makes "published
exactly once" checkable: a worker that
restores a rollout reads back the records published after the checkpoint's marks and does not publish
them again when re-applied events regenerate them. Verdicts and audit records are at-least-once.

Why read back instead of Kafka transactions: faust-streaming's ``exactly_once`` is experimental with
open duplicate bugs after kills and rebalances (faust-streaming #517, #323, #177), and a record of what
was emitted kept in a table alone cannot help (a kill between the send and the table write re-sends).
The read-back covers exactly that window, with plain idempotent producers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from rollguard.pipeline.rollout import Step

TP = tuple[str, int]
DEDUPED_ROLES: Final = ("control", "alerts.critical", "alerts.warning", "alerts.info")


@dataclass(frozen=True, slots=True)
class OutputRecord:
    role: str  # topic role (see topics/): verdicts, alerts.<tier>, control, audit
    key: bytes
    value: bytes
    output_id: str | None  # deterministic id of commands and alert notifications; None: at-least-once
    kind: str  # verdict, alert, command, readiness, audit (for metrics)
    label: str  # severity of an alert, action of a command, state of a verdict, ready or not (for metrics)


def output_id(record: Mapping[str, Any]) -> str | None:
    """The id a published command or alert notification is recognised by when read back."""
    if "command_id" in record and "action" in record and "signature" in record:
        return f"cmd:{record['command_id']}"
    if record.get("kind") == "readiness" and "readiness_id" in record:
        return f"readiness:{record['readiness_id']}"
    if "alert_id" in record and "status" in record:
        seq = (record.get("notification") or {}).get("seq")
        return f"alert:{record['alert_id']}:{record['status']}:{seq}"
    return None


def records_of(
    step: Step, rollout_id: str, alert_role: Callable[[Mapping[str, Any]], str]
) -> list[OutputRecord]:
    """A step's outputs in publishing order: verdict changes, then alerts, commands, readiness, audit."""
    key = rollout_id.encode("utf-8")
    out = [
        OutputRecord("verdicts", key, orjson.dumps(v.to_dict()), None, "verdict", v.state)
        for v in step.verdicts
    ]
    for alert in step.alerts:
        out.append(
            OutputRecord(
                alert_role(alert), key, orjson.dumps(alert), output_id(alert), "alert", str(alert["severity"])
            )
        )
    for command in step.commands:
        out.append(
            OutputRecord(
                "control", key, orjson.dumps(command), output_id(command), "command", str(command["action"])
            )
        )
    for record in step.readiness:
        label = "ready" if record.get("ready") else "not_ready"
        out.append(OutputRecord("control", key, orjson.dumps(record), output_id(record), "readiness", label))
    for record in step.audit:
        out.append(OutputRecord("audit", key, orjson.dumps(record), None, "audit", str(record.get("type"))))
    return out


def ids_by_rollout(messages: Iterable[tuple[bytes | None, bytes | None]]) -> dict[str, set[str]]:
    """Output ids found in read-back messages (key, value), by rollout id (the key)."""
    found: dict[str, set[str]] = {}
    for key, value in messages:
        if key is None or value is None:
            continue
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        oid = output_id(record)
        if oid is not None:
            found.setdefault(key.decode("utf-8", "replace"), set()).add(oid)
    return found
