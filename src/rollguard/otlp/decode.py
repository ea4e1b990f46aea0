"""OTLP trace payloads to spans: the two encodings the Collector's Kafka exporter writes.

``otlp_proto`` is an ``ExportTraceServiceRequest`` in protobuf (decoded with ``opentelemetry-proto``);
``otlp_json`` is its JSON mapping as the OTLP specification defines it — lowerCamelCase keys, trace and
span ids as (case-insensitive) hex, 64-bit integers as decimal strings or numbers, enums as integers —
which is also what the Collector's file exporter writes, one payload per line. ``auto`` tells them
apart by the first byte: a JSON payload starts with ``{`` (after blanks), which no protobuf export
request can (it would be field 15 with the deprecated group wire type).

A payload is never all-or-nothing: a span that cannot be read (a bad id, an end before its start, an
attribute value that is not an OTLP value) becomes a :class:`~.spans.SpanProblem` naming its trace and
span ids, and the other spans of the payload are decoded as usual. Only a payload that is not an
export request at all is a :class:`~.spans.PayloadProblem`.

>>> payload = b'''{"resourceSpans": [{"resource": {"attributes": [{"key": "service.name",
...   "value": {"stringValue": "chat-api"}}]}, "scopeSpans": [{"scope": {"name": "app"}, "spans": [
...   {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174", "name": "chat m",
...    "startTimeUnixNano": "1767225600000000000", "endTimeUnixNano": 1767225600250000000, "kind": 3,
...    "attributes": [{"key": "gen_ai.usage.output_tokens", "value": {"intValue": "42"}}]}]}]}]}'''
>>> decoded = decode_payload(payload)
>>> span = decoded.spans[0]
>>> span.trace_id, span.attributes, span.resource["service.name"], span.end_ns - span.start_ns
('5b8efff798038103d269b633813fc60c', {'gen_ai.usage.output_tokens': 42}, 'chat-api', 250000000)
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from rollguard.domain.events import excerpt
from rollguard.otlp.spans import (
    CONTENT_ATTRIBUTES,
    CONTENT_EVENTS,
    REMOVED,
    PayloadProblem,
    Span,
    SpanEvent,
    SpanProblem,
)

ENCODINGS: Final = ("auto", "otlp_proto", "otlp_json")
_STATUS_NAMES: Final = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_KIND_NAMES: Final = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_MAX_DEPTH: Final = 32  # nested array / key-value list values


@dataclass(slots=True)
class DecodedPayload:
    """The spans of one payload, and the spans of it that could not be read."""

    spans: list[Span] = field(default_factory=list)
    problems: list[SpanProblem] = field(default_factory=list)


class _Bad(Exception):
    """A span field that cannot be read: ``field`` and ``reason`` for the dead-letter record."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def detect(payload: bytes) -> str:
    """``otlp_json`` when the payload starts with ``{`` (after blanks), else ``otlp_proto``."""
    return "otlp_json" if payload.lstrip(b" \t\r\n")[:1] == b"{" else "otlp_proto"


def decode_payload(payload: bytes, encoding: str = "auto") -> DecodedPayload | PayloadProblem:
    """Every span of an OTLP trace payload; never raises for what the payload holds."""
    kind = detect(payload) if encoding == "auto" else encoding
    try:
        return _decode_json(payload) if kind == "otlp_json" else _decode_proto(payload)
    except _Bad as exc:
        return PayloadProblem(exc.reason, exc.field)
    except RecursionError:
        return PayloadProblem("nested too deeply")


# ------------------------------------------------------------------------------------------ protobuf


def _decode_proto(payload: bytes) -> DecodedPayload:
    try:
        request = ExportTraceServiceRequest.FromString(payload)
    except DecodeError as exc:
        reason = f"not an OTLP ExportTraceServiceRequest (protobuf): {excerpt(str(exc), 80, quote=False)}"
        raise _Bad("", reason) from None
    out = DecodedPayload()
    for rs in request.resource_spans:
        resource = {kv.key: _any_proto(kv.value, 0) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            scope = ss.scope.name
            for sp in ss.spans:
                try:
                    out.spans.append(_span_proto(sp, resource, scope))
                except _Bad as exc:
                    ids = _ids_proto(sp)
                    original = _one_span_payload(_proto_span_json(sp), resource, scope)
                    out.problems.append(SpanProblem(*ids, exc.field, exc.reason, original))
    return out


def _span_proto(sp: Any, resource: dict[str, Any], scope: str) -> Span:
    trace_id = _id_bytes(sp.trace_id, 16, "traceId")
    span_id = _id_bytes(sp.span_id, 8, "spanId")
    parent = sp.parent_span_id
    parent_id = _id_bytes(parent, 8, "parentSpanId") if parent else None
    start, end = _times(sp.start_time_unix_nano, sp.end_time_unix_nano)
    events = [
        SpanEvent(ev.name, ev.time_unix_nano, {kv.key: _any_proto(kv.value, 0) for kv in ev.attributes})
        for ev in sp.events
    ]
    return Span(
        trace_id, span_id, parent_id, sp.name, sp.kind, start, end, sp.status.code, sp.status.message,
        {kv.key: _any_proto(kv.value, 0) for kv in sp.attributes}, events, resource, scope,
    )  # fmt: skip


def _any_proto(value: AnyValue, depth: int) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        if depth >= _MAX_DEPTH:
            raise _Bad("attributes", "array value nested too deeply")
        return [_any_proto(v, depth + 1) for v in value.array_value.values]
    if which == "kvlist_value":
        if depth >= _MAX_DEPTH:
            raise _Bad("attributes", "key-value list nested too deeply")
        return {kv.key: _any_proto(kv.value, depth + 1) for kv in value.kvlist_value.values}
    return getattr(value, which)


def _id_bytes(raw: bytes, size: int, name: str) -> str:
    if len(raw) != size:
        raise _Bad(name, f"must be {size} bytes, got {len(raw)}")
    if not any(raw):
        raise _Bad(name, "must not be all zeros (an invalid id)")
    return raw.hex()


def _ids_proto(sp: Any) -> tuple[str | None, str | None]:
    t, s = sp.trace_id, sp.span_id
    return (t.hex() if len(t) == 16 else None), (s.hex() if len(s) == 8 else None)


def _proto_span_json(sp: Any) -> dict[str, Any]:
    """A protobuf span in the OTLP JSON mapping (hex ids, integer enums)."""
    from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]

    doc: dict[str, Any] = MessageToDict(sp, use_integers_for_enums=True)
    for key in ("traceId", "spanId", "parentSpanId"):
        if key in doc:
            doc[key] = base64.b64decode(doc[key]).hex()
    return doc


# ---------------------------------------------------------------------------------------------- JSON


def _decode_json(payload: bytes) -> DecodedPayload:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise _Bad("", f"not valid JSON: {excerpt(str(exc), 120, quote=False)}") from None
    if not isinstance(doc, dict):
        raise _Bad("", f"must be a JSON object (an OTLP ExportTraceServiceRequest), got {type(doc).__name__}")
    out = DecodedPayload()
    for i, rs in enumerate(_list(doc.get("resourceSpans"), "resourceSpans")):
        where = f"resourceSpans[{i}]"
        rs = _object(rs, where)
        res = _object(rs.get("resource"), f"{where}.resource", allow_none=True)
        resource = _attributes_json(res.get("attributes"), f"{where}.resource.attributes")
        for j, ss in enumerate(_list(rs.get("scopeSpans"), f"{where}.scopeSpans")):
            ss = _object(ss, f"{where}.scopeSpans[{j}]")
            scope_doc = _object(ss.get("scope"), f"{where}.scopeSpans[{j}].scope", allow_none=True)
            name = scope_doc.get("name")
            scope = name if isinstance(name, str) else ""
            for sp in _list(ss.get("spans"), f"{where}.scopeSpans[{j}].spans"):
                try:
                    out.spans.append(_span_json(sp, resource, scope))
                except _Bad as exc:
                    ids = _ids_json(sp)
                    raw = sp if isinstance(sp, dict) else {"value": excerpt(sp)}
                    original = _one_span_payload(raw, resource, scope)
                    out.problems.append(SpanProblem(*ids, exc.field, exc.reason, original))
    return out


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Bad(path, f"must be an array, got {type(value).__name__}")
    return value


def _object(value: Any, path: str, *, allow_none: bool = False) -> dict[str, Any]:
    if value is None and allow_none:
        return {}
    if not isinstance(value, dict):
        raise _Bad(path, f"must be an object, got {type(value).__name__}")
    return value


def _span_json(sp: Any, resource: dict[str, Any], scope: str) -> Span:
    if not isinstance(sp, dict):
        raise _Bad("", f"a span must be an object, got {type(sp).__name__}")
    trace_id = _id_hex(sp.get("traceId"), 32, "traceId")
    span_id = _id_hex(sp.get("spanId"), 16, "spanId")
    parent = sp.get("parentSpanId")
    parent_id = _id_hex(parent, 16, "parentSpanId") if parent else None
    start, end = _times(_int64(sp.get("startTimeUnixNano"), "startTimeUnixNano"),
                        _int64(sp.get("endTimeUnixNano"), "endTimeUnixNano"))  # fmt: skip
    name = sp.get("name", "")
    if not isinstance(name, str):
        raise _Bad("name", "must be a string")
    status = _object(sp.get("status"), "status", allow_none=True)
    message = status.get("message", "")
    if not isinstance(message, str):
        raise _Bad("status.message", "must be a string")
    events = []
    for i, ev in enumerate(_list(sp.get("events"), "events")):
        ev = _object(ev, f"events[{i}]")
        ev_name = ev.get("name", "")
        if not isinstance(ev_name, str):
            raise _Bad(f"events[{i}].name", "must be a string")
        at = _int64(ev.get("timeUnixNano"), f"events[{i}].timeUnixNano")
        events.append(
            SpanEvent(ev_name, at, _attributes_json(ev.get("attributes"), f"events[{i}].attributes"))
        )
    return Span(
        trace_id, span_id, parent_id, name, _enum(sp.get("kind"), _KIND_NAMES, "kind"), start, end,
        _enum(status.get("code"), _STATUS_NAMES, "status.code"), message,
        _attributes_json(sp.get("attributes"), "attributes"), events, resource, scope,
    )  # fmt: skip


def _ids_json(sp: Any) -> tuple[str | None, str | None]:
    if not isinstance(sp, dict):
        return None, None
    out: list[str | None] = []
    for key, size in (("traceId", 32), ("spanId", 16)):
        try:
            out.append(_id_hex(sp.get(key), size, key))
        except _Bad:
            raw = sp.get(key)
            out.append(excerpt(raw, 64, quote=False) if isinstance(raw, str) and raw else None)
    return out[0], out[1]


def _id_hex(value: Any, size: int, name: str) -> str:
    if not isinstance(value, str):
        raise _Bad(name, "required id is missing" if value is None else "must be a hex string")
    if len(value) != size:
        raise _Bad(name, f"must be {size} hex digits, got {len(value)} characters")
    try:
        raw = binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        raise _Bad(name, f"not hex: {excerpt(value)}") from None
    if not any(raw):
        raise _Bad(name, "must not be all zeros (an invalid id)")
    return value.lower()


def _int64(value: Any, name: str) -> int:
    """An OTLP JSON 64-bit integer: a decimal string or a JSON integer."""
    if isinstance(value, bool):
        raise _Bad(name, "must be an integer, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 10)
        except ValueError:
            raise _Bad(name, f"must be a decimal integer, got {excerpt(value)}") from None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None:
        return 0
    raise _Bad(name, f"must be an integer, got {excerpt(value)}")


def _enum(value: Any, names: Mapping[str, int], name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value in names:
        return names[value]
    raise _Bad(name, f"must be an enum number, got {excerpt(value)}")


def _attributes_json(value: Any, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, kv in enumerate(_list(value, path)):
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise _Bad(f"{path}[{i}]", "must be an object with a string key")
        key = kv["key"]
        out[key] = _any_json(kv.get("value"), f"{path}.{excerpt(key, quote=False)}", 0)
    return out


def _any_json(value: Any, path: str, depth: int) -> Any:
    """An OTLP JSON AnyValue (``{"stringValue": ...}`` etc.) as a Python value; ``{}`` or null: None."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Bad(path, f"must be an OTLP value object, got {type(value).__name__}")
    if not value:
        return None
    if len(value) != 1:
        raise _Bad(path, "must hold exactly one value")
    ((kind, v),) = value.items()
    if kind == "stringValue" and isinstance(v, str):
        return v
    if kind == "boolValue" and isinstance(v, bool):
        return v
    if kind == "intValue":
        return _int64(v, path)
    if kind == "doubleValue":
        return _double(v, path)
    if kind == "bytesValue" and isinstance(v, str):
        try:
            return base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise _Bad(path, "bytesValue must be base64") from None
    if depth >= _MAX_DEPTH and kind in ("arrayValue", "kvlistValue"):
        raise _Bad(path, "nested too deeply")
    if kind == "arrayValue" and isinstance(v, dict):
        return [_any_json(x, path, depth + 1) for x in _list(v.get("values"), path)]
    if kind == "kvlistValue" and isinstance(v, dict):
        return _attributes_json(v.get("values"), path)
    raise _Bad(path, f"not an OTLP value: {excerpt(kind)} holding {excerpt(v)}")


def _double(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise _Bad(path, "doubleValue must be a number")
    if isinstance(value, int | float):
        return float(value)
    if value in ("NaN", "Infinity", "-Infinity"):
        return float(value)
    raise _Bad(path, f"doubleValue must be a number, got {excerpt(value)}")


def _times(start: int, end: int) -> tuple[int, int]:
    if end <= 0:
        raise _Bad("endTimeUnixNano", "required time is missing")
    if start <= 0:
        raise _Bad("startTimeUnixNano", "required time is missing")
    if end < start:
        raise _Bad("endTimeUnixNano", f"before the start time (by {(start - end) / 1e6:.3f} ms)")
    return start, end


# ------------------------------------------------------------------------------------- reporting spans


def without_contents(span: Mapping[str, Any]) -> dict[str, Any]:
    """An OTLP JSON span with the values of message-content attributes (and content events) removed."""
    doc = dict(span)
    if isinstance(doc.get("attributes"), list):
        doc["attributes"] = _strip(doc["attributes"], strip_all=False)
    if isinstance(doc.get("events"), list):
        events = []
        for ev in doc["events"]:
            if isinstance(ev, dict) and isinstance(ev.get("attributes"), list):
                ev = {
                    **ev,
                    "attributes": _strip(ev["attributes"], strip_all=ev.get("name") in CONTENT_EVENTS),
                }
            events.append(ev)
        doc["events"] = events
    return doc


def _strip(attributes: Iterable[Any], *, strip_all: bool) -> list[Any]:
    out = []
    for kv in attributes:
        if isinstance(kv, dict) and (strip_all or kv.get("key") in CONTENT_ATTRIBUTES):
            kv = {"key": kv.get("key"), "value": {"stringValue": REMOVED}}
        out.append(kv)
    return out


def _one_span_payload(span: Mapping[str, Any], resource: Mapping[str, Any], scope: str) -> bytes:
    """One span as an OTLP JSON export request (what a dead-letter record carries)."""
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": attributes_json(resource)},
                "scopeSpans": [{"scope": {"name": scope}, "spans": [without_contents(span)]}],
            }
        ]
    }
    return orjson.dumps(doc)


def span_payload(span: Span) -> bytes:
    """A decoded span as a one-span OTLP JSON payload, message contents removed."""
    doc: dict[str, Any] = {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
        "attributes": attributes_json(span.attributes),
        "events": [
            {"timeUnixNano": str(ev.time_ns), "name": ev.name, "attributes": attributes_json(ev.attributes)}
            for ev in span.events
        ],
        "status": {"code": span.status_code, "message": span.status_message},
    }
    if span.parent_id:
        doc["parentSpanId"] = span.parent_id
    return _one_span_payload(doc, span.resource, span.scope)


def attributes_json(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Attributes as OTLP JSON key-values."""
    return [{"key": k, "value": value_json(v)} for k, v in attributes.items()]


def value_json(value: Any) -> dict[str, Any]:
    """A Python attribute value as an OTLP JSON AnyValue."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        return {"doubleValue": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return {"arrayValue": {"values": [value_json(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": attributes_json(value)}}
    return {"stringValue": str(value)}
