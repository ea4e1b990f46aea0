"""Input event contract v1: one LLM request/response observed in a rollout.

The validator turns a raw Kafka message (bytes, str or an already decoded mapping) into a typed
:class:`Event`, or into an :class:`EventError` that names the field at fault and what was wrong.
It never raises past the caller: a malformed message is data to route to the dead-letter topic,
not a crash of the worker. Unknown fields are kept in :attr:`Event.extra` so that producers can
add fields before rollguard knows them.

Two paths give the same answer. The fast path decodes straight into a typed msgspec struct, whose C
decoder checks types, enumerations and bounds while it parses; whatever it does not accept (an
unknown field to keep, a schema version written ``1.0``, a bad value) goes to the reference
validator, written as straight-line Python, which also words the error. A property test pins that
both paths agree.

>>> ev = parse_event(b'{"event_id": "e1", "request_id": "r1", "ts": "2026-01-01T00:00:00Z",'
...                  b' "rollout_id": "r", "arm": "canary", "status": "ok", "latency_ms": 120}')
>>> ev.arm, ev.ts, ev.latency_ms
('canary', 1767225600.0, 120.0)
>>> err = parse_event(b'{"event_id": "e1", "arm": "blue"}')
>>> err.field, err.reason
('request_id', 'required field is missing')
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec
import orjson

SCHEMA_VERSION: Final = 1
ARMS: Final = frozenset({"control", "canary", "shadow"})
STATUSES: Final = frozenset({"ok", "error", "timeout", "refusal"})
NUMERIC_FIELDS: Final = ("latency_ms", "ttft_ms", "tokens_in", "tokens_out", "cost_usd")
KNOWN_FIELDS: Final = frozenset(
    {
        "event_id",
        "request_id",
        "ts",
        "rollout_id",
        "arm",
        "variant",
        "variant_parts",
        "segment",
        "unit_id",
        "canary_weight",
        "status",
        *NUMERIC_FIELDS,
        "format_valid",
        "quality",
        "response_text",
        "response_embedding",
        "schema_version",
    }
)
# Events from before 2000 or after 2100 are almost surely a unit mistake (ms instead of s).
MIN_TS: Final = 946_684_800.0
MAX_TS: Final = 4_102_444_800.0
# Structured variant parts (``{"model": …, "prompt": …, "tools": …}``): a handful of named components of
# the version an arm runs, so that a canary changing several at once can be named. Part names are
# tokens (they end up in alert wording and label-like evidence); values are short version labels.
PARTS_MAX: Final = 16
PART_NAME_MAX: Final = 64
PART_VALUE_MAX: Final = 256
PART_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


class Event(msgspec.Struct, gc=False):
    """A validated v1 event. Times are epoch seconds (event time), never wall-clock time.

    A msgspec struct rather than a dataclass: built in C, and left out of the garbage collector's
    scans (it holds no reference cycles) — thousands of events wait in each open batch, and
    scanning them was a sixth of the replay's time.
    """

    event_id: str
    request_id: str
    ts: float
    rollout_id: str
    arm: str
    status: str
    variant: str | None = None
    segment: dict[str, str] = msgspec.field(default_factory=dict)
    unit_id: str | None = None
    canary_weight: float | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    tokens_in: float | None = None
    tokens_out: float | None = None
    cost_usd: float | None = None
    format_valid: bool | None = None
    quality: dict[str, float] = msgspec.field(default_factory=dict)
    response_text: str | None = None
    response_embedding: list[float] | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=dict)
    variant_parts: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The event as a v1 JSON object (``None`` fields left out, unknown fields restored)."""
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "request_id": self.request_id,
            "ts": self.ts,
            "rollout_id": self.rollout_id,
            "arm": self.arm,
            "status": self.status,
        }
        for name in ("variant", "unit_id", "canary_weight", *NUMERIC_FIELDS, "format_valid"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.variant_parts is not None:
            out["variant_parts"] = dict(self.variant_parts)
        if self.segment:
            out["segment"] = dict(self.segment)
        if self.quality:
            out["quality"] = dict(self.quality)
        if self.response_text is not None:
            out["response_text"] = self.response_text
        if self.response_embedding is not None:
            out["response_embedding"] = list(self.response_embedding)
        out.update(self.extra)
        return out


@dataclass(frozen=True, slots=True)
class EventError:
    """Why a raw message is not a valid v1 event: the field at fault (``""`` for the whole message)."""

    field: str
    reason: str
    event_id: str | None = None

    def __str__(self) -> str:
        where = f"field {self.field!r}" if self.field else "message"
        return f"{where}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "reason": self.reason, "event_id": self.event_id}


def parse_ts(value: Any) -> float | str:
    """Event time as epoch seconds, or a reason string when ``value`` is not a valid timestamp."""
    if isinstance(value, bool):
        return "must be epoch seconds (number) or an RFC 3339 string, not a boolean"
    if isinstance(value, int | float):
        ts = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return f"not an RFC 3339 timestamp: {excerpt(value)}"
        if parsed.tzinfo is None:
            return "RFC 3339 timestamp needs a UTC offset (e.g. 'Z' or '+00:00')"
        ts = parsed.timestamp()
    else:
        return f"must be epoch seconds (number) or an RFC 3339 string, not {type(value).__name__}"
    if not math.isfinite(ts) or not MIN_TS <= ts <= MAX_TS:
        return f"epoch seconds out of range 2000..2100: {excerpt(ts)} (milliseconds instead of seconds?)"
    return ts


_INF = math.inf
# Errors quote at most this much of an offending value (never a whole message: it may hold user text).
EXCERPT_MAX: Final = 40
EVENT_ID_MAX: Final = 200


def excerpt(value: Any, limit: int = EXCERPT_MAX, *, quote: bool = True) -> str:
    """A short, capped rendering of an offending value for an error message.

    >>> excerpt("CANARY")
    "'CANARY'"
    >>> excerpt("x" * 100)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…' (100 chars)"
    >>> excerpt({"deep": [1, 2, 3]})
    'an object'
    """
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 1] + "…"
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        if not quote:
            return text
        shown = repr(text)
        return shown if len(value) <= limit else f"{shown} ({len(value)} chars)"
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        shown = repr(value)
        return shown if len(shown) <= limit else shown[: limit - 1] + "…"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"


def _number(value: Any) -> float | None:
    """A finite float, or None when the value is not a finite JSON number (booleans are not numbers)."""
    kind = type(value)
    if kind is float:
        return value if -_INF < value < _INF else None
    if kind is int:
        return float(value)
    return None


_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
# msgspec searches with the pattern: anchored at both ends (``\\Z``, not ``$``, which a final newline passes).
_PartName = Annotated[str, msgspec.Meta(pattern=rf"^{PART_NAME.pattern}\Z")]
_PartValue = Annotated[str, msgspec.Meta(min_length=1, max_length=PART_VALUE_MAX)]
_Parts = Annotated[dict[_PartName, _PartValue], msgspec.Meta(max_length=PARTS_MAX)]


class _WireEvent(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The v1 contract as msgspec types: what the fast path accepts without a second look.

    msgspec refuses numbers out of the float range, so every float here is finite; booleans are not
    numbers and no string is coerced, as in :func:`_validate`.
    """

    event_id: _NonEmpty
    request_id: _NonEmpty
    ts: float | str
    rollout_id: _NonEmpty
    arm: Literal["control", "canary", "shadow"]
    status: Literal["ok", "error", "timeout", "refusal"]
    variant: str | None = None
    variant_parts: _Parts | None = None
    segment: dict[str, str] | None = None
    unit_id: _NonEmpty | None = None
    canary_weight: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    latency_ms: _NonNegative | None = None
    ttft_ms: _NonNegative | None = None
    tokens_in: _NonNegative | None = None
    tokens_out: _NonNegative | None = None
    cost_usd: _NonNegative | None = None
    format_valid: bool | None = None
    quality: dict[str, float] | None = None
    response_text: str | None = None
    response_embedding: Annotated[list[float], msgspec.Meta(min_length=1)] | None = None
    schema_version: Literal[1] = 1


_decode_wire = msgspec.json.Decoder(_WireEvent).decode


def _fast(raw: bytes | bytearray | memoryview | str) -> Event | None:
    """The event when the typed decoder accepts it and its time is valid; None sends it the slow way."""
    try:
        w = _decode_wire(raw)
    except Exception:
        return None
    raw_ts = w.ts
    if isinstance(raw_ts, str):
        parsed = parse_ts(raw_ts)
        if isinstance(parsed, str):
            return None
        ts = parsed
    elif MIN_TS <= raw_ts <= MAX_TS:
        ts = raw_ts
    else:
        return None
    return Event(
        w.event_id, w.request_id, ts, w.rollout_id, w.arm, w.status, w.variant,
        {} if w.segment is None else w.segment, w.unit_id, w.canary_weight,
        w.latency_ms, w.ttft_ms, w.tokens_in, w.tokens_out, w.cost_usd, w.format_valid,
        {} if w.quality is None else w.quality, w.response_text, w.response_embedding, {}, w.variant_parts,
    )  # fmt: skip


def parse_event(raw: bytes | bytearray | memoryview | str | Mapping[str, Any]) -> Event | EventError:
    """Validate one raw message into an :class:`Event`; never raises for bad input."""
    if type(raw) is bytes or not isinstance(raw, Mapping):
        if (fast := _fast(raw)) is not None:
            return fast
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            # orjson words bad UTF-8, depth, number range and syntax errors by position, never by content.
            return EventError("", f"not valid JSON: {excerpt(str(exc), 120, quote=False)}")
        except Exception as exc:
            return EventError("", f"not a JSON document: {type(exc).__name__}")
    else:
        obj = raw
    if not isinstance(obj, dict | Mapping):
        return EventError("", f"must be a JSON object, got {type(obj).__name__}")
    try:
        return _validate(obj)
    except Exception as exc:
        return EventError("", f"could not be validated: {type(exc).__name__}")


def _required_str(obj: Mapping[str, Any], name: str) -> str | EventError:
    value = obj.get(name)
    if value is None:
        return EventError(name, "required field is missing", _eid(obj))
    if not isinstance(value, str) or not value:
        return EventError(name, "must be a non-empty string", _eid(obj))
    return value


def _eid(obj: Mapping[str, Any]) -> str | None:
    value = obj.get("event_id")
    return excerpt(value, EVENT_ID_MAX, quote=False) if isinstance(value, str) else None


def _validate(obj: Mapping[str, Any]) -> Event | EventError:
    get = obj.get
    version = get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        reason = f"unsupported schema version {excerpt(version)} (expected 1)"
        return EventError("schema_version", reason, _eid(obj))
    event_id = _required_str(obj, "event_id")
    if isinstance(event_id, EventError):
        return event_id
    eid = excerpt(event_id, EVENT_ID_MAX, quote=False)
    request_id = _required_str(obj, "request_id")
    if isinstance(request_id, EventError):
        return request_id
    if "ts" not in obj:
        return EventError("ts", "required field is missing", eid)
    ts = parse_ts(obj["ts"])
    if isinstance(ts, str):
        return EventError("ts", ts, eid)
    rollout_id = _required_str(obj, "rollout_id")
    if isinstance(rollout_id, EventError):
        return rollout_id
    arm = get("arm")
    if arm not in ARMS:
        reason = (
            "required field is missing"
            if arm is None
            else f"must be one of control, canary, shadow; got {excerpt(arm)}"
        )
        return EventError("arm", reason, eid)
    status = get("status")
    if status not in STATUSES:
        reason = (
            "required field is missing"
            if status is None
            else f"must be one of ok, error, timeout, refusal; got {excerpt(status)}"
        )
        return EventError("status", reason, eid)

    variant = get("variant")
    if variant is not None and type(variant) is not str:
        return EventError("variant", "must be a string", eid)
    parts = get("variant_parts")
    if parts is not None:
        problem = variant_parts_problem(parts)
        if problem is not None:
            return EventError(problem[0], problem[1], eid)
    unit_id = get("unit_id")
    if unit_id is not None and (type(unit_id) is not str or not unit_id):
        return EventError("unit_id", "must be a non-empty string", eid)
    segment = get("segment")
    if segment is None:
        segment = {}
    elif type(segment) is not dict:
        return EventError("segment", "must be an object of string to string", eid)
    else:
        for key, value in segment.items():
            if type(value) is not str:
                return EventError(f"segment.{excerpt(key, quote=False)}", "must be a string", eid)
    weight = get("canary_weight")
    if weight is not None:
        w = _number(weight)
        if w is None or not 0.0 <= w <= 1.0:
            return EventError("canary_weight", f"must be a number in [0, 1], got {excerpt(weight)}", eid)
        weight = w
    numbers: list[float | None] = []
    for name in NUMERIC_FIELDS:
        value = get(name)
        if value is not None:
            f = _number(value)
            if f is None or f < 0.0:
                return EventError(name, f"must be a finite non-negative number, got {excerpt(value)}", eid)
            value = f
        numbers.append(value)
    fmt = get("format_valid")
    if fmt is not None and type(fmt) is not bool:
        return EventError("format_valid", "must be a boolean", eid)
    quality = get("quality")
    scores: dict[str, float] = {}
    if quality is not None:
        if type(quality) is not dict:
            return EventError("quality", "must be an object of string to number", eid)
        for key, value in quality.items():
            f = _number(value)
            if f is None:
                reason = f"must be a finite number, got {excerpt(value)}"
                return EventError(f"quality.{excerpt(key, quote=False)}", reason, eid)
            scores[key] = f
    text = get("response_text")
    if text is not None and type(text) is not str:
        return EventError("response_text", "must be a string", eid)
    emb = get("response_embedding")
    vec: list[float] | None = None
    if emb is not None:
        if type(emb) is not list or not emb:
            return EventError("response_embedding", "must be a non-empty array of numbers", eid)
        vec = []
        for i, value in enumerate(emb):
            f = _number(value)
            if f is None:
                return EventError(f"response_embedding[{i}]", "must be a finite number", eid)
            vec.append(f)
    extra = {} if obj.keys() <= KNOWN_FIELDS else {k: v for k, v in obj.items() if k not in KNOWN_FIELDS}
    latency, ttft, tokens_in, tokens_out, cost = numbers
    return Event(
        event_id, request_id, ts, rollout_id, arm, status, variant, segment, unit_id, weight,
        latency, ttft, tokens_in, tokens_out, cost, fmt, scores, text, vec, extra, parts,
    )  # fmt: skip


def variant_parts_problem(parts: Any) -> tuple[str, str] | None:
    """(field, reason) when a ``variant_parts`` value breaks the contract, else None (the simulator
    checks its scenarios' parts with it too).

    >>> variant_parts_problem({"model": "m-2", "prompt": 7})
    ('variant_parts.prompt', 'must be a string, got 7')
    """
    if type(parts) is not dict:
        return "variant_parts", "must be an object of part name to string"
    if len(parts) > PARTS_MAX:
        return "variant_parts", f"at most {PARTS_MAX} parts, got {len(parts)}"
    for key, value in parts.items():
        if not PART_NAME.fullmatch(key):
            reason = f"part name must be 1-{PART_NAME_MAX} letters, digits or _.:- (a letter or digit first)"
            return "variant_parts", f"{reason}, got {excerpt(key)}"
        name = f"variant_parts.{key}"
        if type(value) is not str:
            return name, f"must be a string, got {excerpt(value)}"
        if not 0 < len(value) <= PART_VALUE_MAX:
            reason = f"must be a non-empty string of at most {PART_VALUE_MAX} characters"
            return name, f"{reason}, got {excerpt(value)}"
    return None
