"""One GenAI inference span, in a rollout by a flag evaluation, as a v1 event: the attribute mapping.

What is read (the defaults; every name is configurable in the ``otlp`` section, see
:mod:`rollguard.settings.otlp`):

============== ===================================================================================
v1 field       from
============== ===================================================================================
event_id       the span id (hex)
request_id     the trace id (hex), or ``request_id_attribute`` (shared by a live and a shadow call)
ts             the span's end time, ``end_time_unix_nano / 1e9`` — it decides batch membership
rollout_id     the flag key of the evaluation (``flags.<key>.rollout`` renames it), or
               ``rollout_attribute``
arm            the evaluation's variant through ``variants`` (``control``/``canary``/``shadow``);
               ``shadow_attribute`` true on the span makes it ``shadow``
variant        the evaluation's variant
unit_id        the first of ``unit`` present: ``enduser.id``, then the evaluation's targeting key
               (``feature_flag.context.id``)
segment        ``segments``: dimension → attribute (scalars, as strings)
status         ERROR span status or ``error.type``: ``timeout``/``refusal`` when the error type is
               listed, else ``error``; otherwise ``refusal``/``timeout`` when a
               ``gen_ai.response.finish_reasons`` entry is listed, else ``ok``
latency_ms     the span's duration
ttft_ms        ``gen_ai.response.time_to_first_chunk`` (seconds), or a span event's time after start
tokens_in/out  ``gen_ai.usage.input_tokens`` / ``gen_ai.usage.output_tokens`` (or the older
               ``prompt_tokens`` / ``completion_tokens``)
cost_usd       ``cost_attribute``, else ``prices`` of ``gen_ai.response.model`` (or the request
               model) × tokens / 1000
quality        ``quality``: score → attribute; and span events ``gen_ai.evaluation.result``
               (``gen_ai.evaluation.name`` → ``gen_ai.evaluation.score.value``)
format_valid   ``format_valid_attribute``
canary_weight  ``canary_weight_attribute``
response_text  the text parts of ``gen_ai.output.messages`` — the only use of message contents
============== ===================================================================================

An attribute named for a segment, the unit, the request id, a score, the format flag or the weight is
looked up on the inference span, then on its ancestors (nearest first: the request span often carries
``enduser.id`` and the tenant), then on the span's resource. A value of the wrong type is not guessed
at: the span is rejected naming the attribute (:class:`MappingError`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from rollguard.domain.events import MAX_TS, MIN_TS, Event, excerpt
from rollguard.otlp.spans import STATUS_ERROR, Span, SpanEvent
from rollguard.settings.otlp import OtlpSettings

# The names openfeature-hooks-opentelemetry 0.3 writes on its ``feature_flag.evaluation`` event (and
# ``feature_flag.variant``, which earlier hook versions wrote on their ``feature_flag`` event).
FLAG_KEY: Final = "feature_flag.key"
FLAG_VARIANT: Final = "feature_flag.result.variant"
FLAG_VARIANT_LEGACY: Final = "feature_flag.variant"
FLAG_CONTEXT_ID: Final = "feature_flag.context.id"
# GenAI semantic conventions.
OPERATION: Final = "gen_ai.operation.name"
ERROR_TYPE: Final = "error.type"
FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
INPUT_TOKENS: Final = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKENS: Final = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
RESPONSE_MODEL: Final = "gen_ai.response.model"
REQUEST_MODEL: Final = "gen_ai.request.model"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
EVALUATION_NAME: Final = "gen_ai.evaluation.name"
EVALUATION_SCORE: Final = "gen_ai.evaluation.score.value"

Lookup = Callable[[str], Any]
"""An attribute by name: the inference span's, else its nearest ancestor's, else its resource's."""


@dataclass(frozen=True, slots=True)
class FlagEvaluation:
    """A flag evaluation recorded as a span event: the flag, the variant served (None when the
    evaluation failed and the application got its default), and the event's attributes."""

    flag_key: str
    variant: str | None
    attributes: Mapping[str, Any]
    time_ns: int


@dataclass(frozen=True, slots=True)
class MappingError:
    """Why an inference span cannot be a v1 event: the attribute at fault and what is wrong."""

    field: str
    reason: str


def is_inference(span: Span, settings: OtlpSettings) -> bool:
    """A GenAI inference: its ``gen_ai.operation.name`` is one of ``settings.operations``."""
    return span.attributes.get(OPERATION) in settings.operations


def flag_evaluations(events: Iterable[SpanEvent], settings: OtlpSettings) -> list[FlagEvaluation]:
    """The flag evaluations among a span's events (events without a flag key are not evaluations)."""
    out = []
    for ev in events:
        if ev.name not in settings.flag_events:
            continue
        attrs = ev.attributes
        key = attrs.get(FLAG_KEY)
        if not isinstance(key, str) or not key:
            continue
        variant = attrs.get(FLAG_VARIANT, attrs.get(FLAG_VARIANT_LEGACY))
        out.append(FlagEvaluation(key, variant if isinstance(variant, str) and variant else None, attrs,
                                  ev.time_ns))  # fmt: skip
    return out


def to_event(
    span: Span, rollout_id: str, arm: str, evaluation: FlagEvaluation, lookup: Lookup, settings: OtlpSettings
) -> Event | MappingError:
    """The v1 event of an inference span in ``rollout_id``'s ``arm``, or why there is none."""
    attrs = span.attributes
    ts = span.end_ns / 1e9
    if not MIN_TS <= ts <= MAX_TS:
        return MappingError("endTimeUnixNano", f"end time {excerpt(ts)} s is outside 2000..2100")
    start_s = span.start_ns
    try:
        status = _status(span, settings)
        tokens_in = _first_count(attrs, INPUT_TOKENS)
        tokens_out = _first_count(attrs, OUTPUT_TOKENS)
        ttft = _ttft(span, settings, start_s)
        cost = _cost(attrs, lookup, settings, tokens_in, tokens_out)
        unit = _unit(evaluation, lookup, settings)
        request_id = span.trace_id
        if settings.request_id_attribute is not None:
            found = _scalar_text(lookup(settings.request_id_attribute), settings.request_id_attribute)
            request_id = found or request_id
        segment = {}
        for dimension, name in settings.segments.items():
            value = _scalar_text(lookup(name), name)
            if value is not None:
                segment[dimension] = value
        quality = _quality(span, lookup, settings)
        format_valid = _optional_bool(lookup, settings.format_valid_attribute)
        weight = _weight(lookup, settings.canary_weight_attribute)
        if settings.shadow_attribute is not None and attrs.get(settings.shadow_attribute) is True:
            arm = "shadow"
        text = _response_text(attrs.get(OUTPUT_MESSAGES)) if settings.response_text else None
    except _Invalid as exc:
        return MappingError(exc.field, exc.reason)
    return Event(
        span.span_id, request_id, ts, rollout_id, arm, status, evaluation.variant, segment, unit, weight,
        (span.end_ns - span.start_ns) / 1e6, ttft, tokens_in, tokens_out, cost, format_valid, quality,
        text, None, {},
    )  # fmt: skip


class _Invalid(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _status(span: Span, settings: OtlpSettings) -> str:
    rules = settings.status
    error_type = span.attributes.get(ERROR_TYPE)
    if error_type is not None and not isinstance(error_type, str):
        raise _Invalid(ERROR_TYPE, f"must be a string, got {excerpt(error_type)}")
    if span.status_code == STATUS_ERROR or error_type:
        if error_type in rules.timeout_error_types:
            return "timeout"
        if error_type in rules.refusal_error_types:
            return "refusal"
        return "error"
    reasons = span.attributes.get(FINISH_REASONS)
    if reasons is None:
        return "ok"
    if isinstance(reasons, str):
        reasons = [reasons]
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise _Invalid(FINISH_REASONS, "must be an array of strings")
    if any(r in rules.refusal_finish_reasons for r in reasons):
        return "refusal"
    if any(r in rules.timeout_finish_reasons for r in reasons):
        return "timeout"
    return "ok"


def _number(value: Any, name: str, *, minimum: float | None = 0.0) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid(name, f"must be a finite number, got {excerpt(value)}")
    if minimum is not None and value < minimum:
        raise _Invalid(name, f"must be at least {minimum:g}, got {excerpt(value)}")
    return float(value)


def _first_count(attrs: Mapping[str, Any], names: tuple[str, ...]) -> float | None:
    for name in names:
        if name in attrs:
            return _number(attrs[name], name)
    return None


def _ttft(span: Span, settings: OtlpSettings, start_ns: int) -> float | None:
    rule = settings.ttft
    if rule.attribute is not None and rule.attribute in span.attributes:
        value = _number(span.attributes[rule.attribute], rule.attribute)
        if value is not None:
            return value * 1000.0 if rule.unit == "s" else value
    if rule.event is not None:
        for ev in span.events:
            if ev.name == rule.event:
                if ev.time_ns < start_ns:
                    raise _Invalid(f"events.{rule.event}", "is before the span's start")
                return (ev.time_ns - start_ns) / 1e6
    return None


def _cost(
    attrs: Mapping[str, Any],
    lookup: Lookup,
    settings: OtlpSettings,
    tokens_in: float | None,
    tokens_out: float | None,
) -> float | None:
    if settings.cost_attribute is not None:
        cost = _number(lookup(settings.cost_attribute), settings.cost_attribute)
        if cost is not None:
            return cost
    if not settings.prices or (tokens_in is None and tokens_out is None):
        return None
    model = attrs.get(RESPONSE_MODEL) or attrs.get(REQUEST_MODEL)
    if not isinstance(model, str):
        return None
    price = settings.price(model)
    if price is None:
        return None
    spent_in = (tokens_in or 0.0) / 1000.0 * price.input_per_1k
    return spent_in + (tokens_out or 0.0) / 1000.0 * price.output_per_1k


def _scalar_text(value: Any, name: str) -> str | None:
    """A string, number or boolean attribute as text (None when absent or empty)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise _Invalid(name, f"must be a string, number or boolean, got {excerpt(value)}")


def _unit(evaluation: FlagEvaluation, lookup: Lookup, settings: OtlpSettings) -> str | None:
    for name in settings.unit:
        value = evaluation.attributes.get(name)
        if value is None:
            value = lookup(name)
        text = _scalar_text(value, name)
        if text is not None:
            return text
    return None


def _quality(span: Span, lookup: Lookup, settings: OtlpSettings) -> dict[str, float]:
    scores: dict[str, float] = {}
    if settings.evaluation_event is not None:
        for ev in span.events:
            if ev.name != settings.evaluation_event:
                continue
            name = ev.attributes.get(EVALUATION_NAME)
            if not isinstance(name, str) or not name:
                raise _Invalid(
                    f"events.{settings.evaluation_event}.{EVALUATION_NAME}", "required name is missing"
                )
            score = _number(ev.attributes.get(EVALUATION_SCORE), f"events.{name}.{EVALUATION_SCORE}",
                            minimum=None)  # fmt: skip
            if score is not None:
                scores[name] = score
    for key, name in settings.quality.items():
        value = _number(lookup(name), name, minimum=None)
        if value is not None:
            scores[key] = value
    return scores


def _optional_bool(lookup: Lookup, name: str | None) -> bool | None:
    if name is None:
        return None
    value = lookup(name)
    if value is None or isinstance(value, bool):
        return value
    raise _Invalid(name, f"must be a boolean, got {excerpt(value)}")


def _weight(lookup: Lookup, name: str | None) -> float | None:
    if name is None:
        return None
    value = _number(lookup(name), name)
    if value is not None and value > 1.0:
        raise _Invalid(name, f"must be in [0, 1], got {excerpt(value)}")
    return value


def _response_text(messages: Any) -> str | None:
    """The text parts of ``gen_ai.output.messages`` (a JSON string, or the structured value)."""
    if messages is None:
        return None
    if isinstance(messages, str):
        try:
            messages = orjson.loads(messages)
        except orjson.JSONDecodeError:
            raise _Invalid(OUTPUT_MESSAGES, "not a JSON array of messages") from None
    if not isinstance(messages, list):
        raise _Invalid(OUTPUT_MESSAGES, "must be an array of messages")
    texts = []
    for message in messages:
        parts = message.get("parts") if isinstance(message, dict) else None
        if not isinstance(parts, list):
            raise _Invalid(OUTPUT_MESSAGES, "each message must have an array of parts")
        for part in parts:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("content"), str):
                texts.append(part["content"])
    return "\n".join(texts) if texts else None
