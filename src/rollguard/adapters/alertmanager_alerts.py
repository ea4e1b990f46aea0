"""Alert v1 records as Alertmanager v2 alerts, and the set of firing alerts the bridge has delivered.

Pure (no Kafka, no HTTP, no clock: ``now`` is passed in), so the mapping and the bookkeeping that
decide what ``rollguard bridge alertmanager`` posts are tested without a broker and replayed exactly
when the bridge rebuilds its state from the topics after a restart.

Mapping (alert v1 → ``POST /api/v2/alerts``): ``labels`` → ``labels`` as they are (empty values
dropped, as Alertmanager would); ``annotations`` → ``annotations``, plus ``alert_id``;
``starts_at`` → ``startsAt``; a resolve's ``ends_at`` → ``endsAt`` (a firing alert has none, so
Alertmanager holds it for its ``resolve_timeout`` and the bridge re-posts it before then);
``generator_url`` (when it is an http(s) URL) or ``{worker_url}/status?rollout=<rollout_id>`` →
``generatorURL``. Times never lie in the future of the bridge's clock: an ``endsAt`` ahead of it
would keep a resolved alert active in Alertmanager until then.

Alertmanager identifies an alert by its label set; rollguard by ``fingerprint`` (rule, rollout,
cohort). When a firing's labels change (its severity is raised, its audience changes) the bridge
resolves the label set it posted before, or Alertmanager would keep the old one active until its
resolve timeout. Records of one rollout arrive in order on one partition of one topic, but a firing
whose severity changes moves to another topic; :class:`DeliveredAlerts` orders records of one alert
by their notification time and sequence, so a late record from the slower topic never undoes a later
one.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import orjson
from jsonschema.exceptions import best_match

from rollguard.domain.events import EventError

# Alertmanager 0.25 accepts these label names (the classic Prometheus rule) and nothing else.
LABEL_NAME: Final = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
MAX_TS: Final = 253402300799.0  # 9999-12-31T23:59:59Z: Alertmanager's RFC 3339 times end there
QUOTE_MAX: Final = 200


class SchemaValidator(Protocol):
    """What :func:`parse_alert` needs of a JSON-schema validator (``jsonschema``'s have it)."""

    def iter_errors(self, instance: Any) -> Iterable[Any]: ...


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """The parts of an alert v1 record the bridge uses (the record itself is kept whole in ``raw``)."""

    alert_id: str
    fingerprint: str
    status: str  # firing | resolved
    rollout_id: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float
    ends_at: float | None
    generator_url: str | None
    notified_at: float
    seq: int

    @property
    def order(self) -> tuple[float, int, int]:
        """Later notifications of one alert sort later; its resolve after its last firing."""
        return (self.notified_at, self.seq, 1 if self.status == "resolved" else 0)


def parse_alert(value: bytes | None, validator: SchemaValidator) -> AlertRecord | EventError:
    """An alert v1 record from a message value, or why it is not one (never raises)."""
    if value is None:
        return EventError("", "empty message (no value)")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return EventError("", f"not valid JSON: {_quote(str(exc))}")
    if not isinstance(doc, dict):
        return EventError("", f"must be a JSON object, got {type(doc).__name__}")
    alert_id = doc.get("alert_id") if isinstance(doc.get("alert_id"), str) else None
    error = best_match(validator.iter_errors(doc))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        return EventError(where, f"alert.v1: {_quote(error.message)}", alert_id)
    for name, label in doc["labels"].items():
        if not LABEL_NAME.match(name):
            reason = "not a valid Alertmanager label name ([a-zA-Z_][a-zA-Z0-9_]*)"
            return EventError(f"labels.{_quote(name)}", reason, alert_id)
        if not isinstance(label, str):
            return EventError(f"labels.{name}", "must be a string", alert_id)
    for name, note in doc["annotations"].items():
        if not isinstance(note, str):
            return EventError(f"annotations.{name}", "must be a string", alert_id)
    times: dict[str, float] = {}
    for key in ("starts_at", "ends_at"):
        ts = doc.get(key)
        if ts is None:
            continue
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not 0 <= ts <= MAX_TS:
            return EventError(key, f"must be epoch seconds between 0 and {MAX_TS:.0f}", alert_id)
        times[key] = float(ts)
    if "ends_at" in times and times["ends_at"] < times["starts_at"]:
        return EventError("ends_at", "is before starts_at", alert_id)
    notification = doc.get("notification") or {}
    at = notification.get("at")
    seq = notification.get("seq")
    generator = doc.get("generator_url")
    return AlertRecord(
        alert_id=doc["alert_id"],
        fingerprint=doc["fingerprint"],
        status=doc["status"],
        rollout_id=doc["rollout_id"],
        labels={k: v for k, v in doc["labels"].items() if v != ""},
        annotations=dict(doc["annotations"]),
        starts_at=times["starts_at"],
        ends_at=times.get("ends_at"),
        generator_url=generator if isinstance(generator, str) and _is_http_url(generator) else None,
        notified_at=float(at) if isinstance(at, int | float) and math.isfinite(at) else times["starts_at"],
        seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else 0,
    )


def rfc3339(ts: float) -> str:
    """Epoch seconds as Alertmanager's RFC 3339 (UTC, milliseconds).

    >>> rfc3339(1767225700.5)
    '2026-01-01T00:01:40.500Z'
    """
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_url(worker_url: str, rollout_id: str) -> str:
    """The worker's status page filtered to one rollout.

    >>> status_url("http://127.0.0.1:6066", "checkout v2")
    'http://127.0.0.1:6066/status?rollout=checkout+v2'
    """
    return f"{worker_url.rstrip('/')}/status?{urllib.parse.urlencode({'rollout': rollout_id})}"


def to_alertmanager(
    record: AlertRecord, *, worker_url: str, now: float, ends_at: float | None = None, resolve: bool = False
) -> dict[str, Any]:
    """The Alertmanager v2 alert for a record: firing (no ``endsAt``) or resolved (``endsAt``).

    A resolve ends at the record's ``ends_at`` (or ``ends_at`` given here), never after ``now`` and
    never before the start, which itself is never after ``now``.
    """
    starts = min(record.starts_at, now)
    alert: dict[str, Any] = {
        "labels": dict(record.labels),
        "annotations": {**record.annotations, "alert_id": record.alert_id},
        "startsAt": rfc3339(starts),
        "generatorURL": record.generator_url or status_url(worker_url, record.rollout_id),
    }
    if resolve or record.status == "resolved":
        end = ends_at if ends_at is not None else record.ends_at
        alert["endsAt"] = rfc3339(min(max(end if end is not None else now, starts), now))
    return alert


@dataclass(slots=True)
class Delivered:
    """A firing alert the bridge posted: its record and the partition (topic, partition) it came from."""

    record: AlertRecord
    source: tuple[str, int]


@dataclass(frozen=True, slots=True)
class Plan:
    """What one record asks of Alertmanager, and how to undo its effect on the book if refused."""

    posts: list[dict[str, Any]]
    fingerprint: str = ""
    before: Delivered | None = None
    changed: bool = False


@dataclass
class DeliveredAlerts:
    """The firing alerts delivered to Alertmanager (to re-post them) and the alerts resolved since.

    ``apply`` folds a record in and says what to post; the bridge calls it for every record it
    delivers and, after a restart, for every record before its committed offsets (discarding the
    posts), so both paths reach the same state.
    """

    worker_url: str
    resolved_memory: int = 100_000
    firing: dict[str, Delivered] = field(default_factory=dict)
    resolved: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def apply(self, record: AlertRecord, source: tuple[str, int], now: float) -> Plan:
        fp = record.fingerprint
        prev = self.firing.get(fp)
        if record.status == "firing":
            if record.alert_id in self.resolved or (prev is not None and self._newer(prev.record, record)):
                return Plan([])  # a late record: its alert was resolved or notified again since
            posts = []
            if prev is not None and prev.record.labels != record.labels:
                posts.append(self._alert(prev.record, now, resolve=True, ends_at=now))
            posts.append(self._alert(record, now))
            self.firing[fp] = Delivered(record, source)
            return Plan(posts, fp, prev, True)
        # A resolve is always delivered, unless the same label set now stands for a newer firing of
        # the same condition (posting it would resolve that one).
        self._remember_resolved(record.alert_id, record.ends_at if record.ends_at is not None else now)
        if prev is not None and self._newer(prev.record, record):
            if prev.record.labels == record.labels:
                return Plan([])
            return Plan([self._alert(record, now)])
        posts = [self._alert(record, now)]
        if prev is None:
            return Plan(posts)
        if prev.record.labels != record.labels:
            posts.append(self._alert(prev.record, now, resolve=True, ends_at=record.ends_at))
        del self.firing[fp]
        return Plan(posts, fp, prev, True)

    def undo(self, plan: Plan, record: AlertRecord) -> None:
        """Alertmanager refused the record: the book is as if it had never come."""
        if not plan.changed:
            return
        if plan.before is None:
            self.firing.pop(plan.fingerprint, None)
        else:
            self.firing[plan.fingerprint] = plan.before
        if record.status == "resolved":
            self.resolved.pop(record.alert_id, None)

    def repost(self, now: float) -> list[dict[str, Any]]:
        """Every firing alert delivered, as posted before (Alertmanager resolves what is not re-posted)."""
        return [self._alert(d.record, now) for d in self.firing.values()]

    def forget(self, fingerprints: Iterable[str]) -> None:
        for fp in fingerprints:
            self.firing.pop(fp, None)

    def drop_sources(self, sources: Iterable[tuple[str, int]]) -> int:
        """Forget the alerts last delivered from these partitions (another bridge owns them now)."""
        lost = set(sources)
        gone = [fp for fp, d in self.firing.items() if d.source in lost]
        self.forget(gone)
        return len(gone)

    def _alert(
        self, record: AlertRecord, now: float, *, resolve: bool = False, ends_at: float | None = None
    ) -> dict[str, Any]:
        return to_alertmanager(record, worker_url=self.worker_url, now=now, ends_at=ends_at, resolve=resolve)

    @staticmethod
    def _newer(held: AlertRecord, incoming: AlertRecord) -> bool:
        """Whether the held firing is later than the incoming record of the same condition."""
        if held.alert_id == incoming.alert_id:
            return held.order > incoming.order
        return held.starts_at > incoming.starts_at

    def _remember_resolved(self, alert_id: str, at: float) -> None:
        self.resolved[alert_id] = at
        self.resolved.move_to_end(alert_id)
        while len(self.resolved) > self.resolved_memory:
            self.resolved.popitem(last=False)


def _is_http_url(value: str) -> bool:
    parsed = urllib.parse.urlsplit(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _quote(text: str) -> str:
    return text if len(text) <= QUOTE_MAX else text[: QUOTE_MAX - 1] + "…"
