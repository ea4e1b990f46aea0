"""The ``otlp`` section: how OpenTelemetry GenAI spans become v1 events (:class:`OtlpSettings`).

Teams that already trace their LLM calls send those traces to Kafka with the OpenTelemetry Collector's
Kafka exporter; this section says which span is an inference, which flag evaluation puts it in which
rollout and arm, and where each v1 field comes from (:mod:`rollguard.otlp`). Every key is optional: the
defaults follow the GenAI semantic conventions and the names OpenFeature's OpenTelemetry hook writes.
``topic`` is what turns the translator on in ``rollguard worker``; ``rollguard replay`` reads OTLP JSON
files with these same settings.

Example::

    otlp:
      topic: otlp_spans                   # the Collector's Kafka exporter topic (absent: no translator)
      encoding: auto                      # otlp_proto | otlp_json | auto (told apart by the first byte)
      join_window_s: 30                   # event time a trace has to bring an inference's flag evaluation
      idle_flush_s: 5                     # a quiet OTLP partition's held spans are decided after this
      flags:                              # which flags are rollouts (absent: every flag whose variant maps)
        chat-model: {rollout: chat-assist, variants: {"off": control, "on": canary}}
      variants: {control: control, canary: canary, shadow: shadow}   # flag variant -> arm
      unit: [enduser.id, feature_flag.context.id]                     # the first one present
      segments: {input_class: app.input_class, tenant: tenant.id}     # dimension -> attribute
      status:
        refusal_finish_reasons: [content_filter]
        timeout_error_types: [timeout, TimeoutError]
      ttft: {attribute: gen_ai.response.time_to_first_chunk, unit: s}
      quality: {helpfulness: app.eval.helpfulness}                    # score -> attribute
      prices:                                                         # USD per 1k tokens (no cost attribute)
        gpt-4o: {input_per_1k: 0.0025, output_per_1k: 0.01}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final

from rollguard.settings.checks import (
    Locator,
    boolean,
    choice,
    fill,
    mapping,
    name_list,
    number,
    only,
    positive,
    required,
    text,
)
from rollguard.settings.worker import WorkerSettings

ENCODINGS: Final = ("auto", "otlp_proto", "otlp_json")
ARMS: Final = ("control", "canary", "shadow")
TTFT_UNITS: Final = ("s", "ms")
# What the GenAI semantic conventions call an inference (``gen_ai.operation.name``); embeddings,
# retrieval, tool and agent spans are not.
INFERENCE_OPERATIONS: Final = ("chat", "text_completion", "generate_content")
# Span events of a flag evaluation: openfeature-hooks-opentelemetry 0.3 writes the first, earlier hook
# versions (and other SDKs' hooks) the second.
FLAG_EVENTS: Final = ("feature_flag.evaluation", "feature_flag")
# ``error.type`` values that mean the call timed out (Python's, httpx's, the OpenAI and gRPC clients').
TIMEOUT_ERROR_TYPES: Final = (
    "timeout",
    "TimeoutError",
    "asyncio.TimeoutError",
    "httpx.ReadTimeout",
    "httpx.TimeoutException",
    "openai.APITimeoutError",
    "APITimeoutError",
    "DEADLINE_EXCEEDED",
)
REFUSAL_FINISH_REASONS: Final = ("content_filter", "refusal")
_BOOL_WORDS: Final = frozenset({"True", "False"})


def _frozen(d: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True, slots=True)
class FlagRollout:
    """One flag that is a rollout: the rollout id (None: the flag key) and its own variant map."""

    rollout: str | None = None
    variants: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1,000 input and output tokens of one model."""

    input_per_1k: float
    output_per_1k: float


@dataclass(frozen=True, slots=True)
class StatusMapping:
    """How a span's outcome becomes ``status``: an error (span status ERROR or an ``error.type``) is a
    ``timeout`` or ``refusal`` when its ``error.type`` is listed, else ``error``; a span without error is
    ``refusal`` or ``timeout`` when one of its ``gen_ai.response.finish_reasons`` is listed, else ``ok``."""

    timeout_error_types: tuple[str, ...] = TIMEOUT_ERROR_TYPES
    refusal_error_types: tuple[str, ...] = ()
    refusal_finish_reasons: tuple[str, ...] = REFUSAL_FINISH_REASONS
    timeout_finish_reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TtftMapping:
    """Time to first token: an attribute (in ``unit``), else the time of the span event ``event`` after
    the span's start."""

    attribute: str | None = "gen_ai.response.time_to_first_chunk"
    unit: str = "s"
    event: str | None = None


@dataclass(frozen=True, slots=True)
class OtlpSettings:
    """The ``otlp:`` section of the config file (all optional); see the module docstring."""

    topic: str | None = None
    encoding: str = "auto"
    group_id: str | None = None
    join_window_s: float = 30.0
    idle_flush_s: float = 5.0
    max_held_traces: int = 200_000
    operations: tuple[str, ...] = INFERENCE_OPERATIONS
    flag_events: tuple[str, ...] = FLAG_EVENTS
    flags: Mapping[str, FlagRollout] = field(default_factory=_frozen)
    variants: Mapping[str, str] = field(
        default_factory=lambda: _frozen({"control": "control", "canary": "canary", "shadow": "shadow"})
    )
    rollout_attribute: str | None = None
    shadow_attribute: str | None = None
    request_id_attribute: str | None = None
    unit: tuple[str, ...] = ("enduser.id", "feature_flag.context.id")
    segments: Mapping[str, str] = field(default_factory=_frozen)
    status: StatusMapping = field(default_factory=StatusMapping)
    ttft: TtftMapping = field(default_factory=TtftMapping)
    quality: Mapping[str, str] = field(default_factory=_frozen)
    evaluation_event: str | None = "gen_ai.evaluation.result"
    format_valid_attribute: str | None = None
    canary_weight_attribute: str | None = None
    cost_attribute: str | None = None
    prices: Mapping[str, Price] = field(default_factory=_frozen)
    response_text: bool = True

    def arm_of(self, flag_key: str, variant: str) -> tuple[str, str] | None:
        """``(rollout_id, arm)`` of a flag evaluation, or None when the flag is not a rollout or its
        variant maps to no arm."""
        if self.flags:
            per = self.flags.get(flag_key)
            if per is None:
                return None
            variants = per.variants if per.variants is not None else self.variants
            arm = variants.get(variant)
            return None if arm is None else (per.rollout or flag_key, arm)
        arm = self.variants.get(variant)
        return None if arm is None else (flag_key, arm)

    def price(self, model: str) -> Price | None:
        """The price of ``model``: its own entry, else the longest configured name it starts with
        (``gpt-4o`` prices ``gpt-4o-2024-08-06``)."""
        found = self.prices.get(model)
        if found is not None:
            return found
        best = max((name for name in self.prices if model.startswith(name)), key=len, default=None)
        return None if best is None else self.prices[best]


def _attribute(value: Any, path: str, loc: Locator) -> str:
    return text(value, path, loc)


def _optional_attribute(value: Any, path: str, loc: Locator) -> str | None:
    return None if value is None else text(value, path, loc)


def _variant_map(raw: Any, path: str, loc: Locator) -> Mapping[str, str]:
    data = mapping(raw, path, loc)
    out: dict[str, str] = {}
    for variant, arm in data.items():
        p = f"{path}.{variant}"
        if variant in _BOOL_WORDS:
            raise loc.error(p, "a variant name read as a boolean (quote on/off/yes/no in YAML)")
        out[str(variant)] = choice(arm, p, loc, ARMS)
    if not out:
        raise loc.error(path, "must map at least one variant to an arm")
    return _frozen(out)


def _flags(raw: Any, path: str, loc: Locator) -> Mapping[str, FlagRollout]:
    out: dict[str, FlagRollout] = {}
    for key, value in mapping(raw, path, loc).items():
        p = f"{path}.{key}"
        data = mapping(value, p, loc)
        only(data, ("rollout", "variants"), p, loc)
        out[str(key)] = FlagRollout(
            rollout=text(data["rollout"], f"{p}.rollout", loc) if "rollout" in data else None,
            variants=_variant_map(data["variants"], f"{p}.variants", loc) if "variants" in data else None,
        )
    return _frozen(out)


def _named_attributes(raw: Any, path: str, loc: Locator) -> Mapping[str, str]:
    """``name -> attribute`` (segment dimensions, quality scores)."""
    return _frozen({str(k): text(v, f"{path}.{k}", loc) for k, v in mapping(raw, path, loc).items()})


def _prices(raw: Any, path: str, loc: Locator) -> Mapping[str, Price]:
    out: dict[str, Price] = {}
    for model, value in mapping(raw, path, loc).items():
        p = f"{path}.{model}"
        data = mapping(value, p, loc)
        only(data, ("input_per_1k", "output_per_1k"), p, loc)
        required(data, ("input_per_1k", "output_per_1k"), p, loc)
        out[str(model)] = Price(
            number(data["input_per_1k"], f"{p}.input_per_1k", loc),
            number(data["output_per_1k"], f"{p}.output_per_1k", loc),
        )
    return _frozen(out)


def _status(raw: Any, path: str, loc: Locator) -> StatusMapping:
    return fill(
        StatusMapping(),
        mapping(raw, path, loc),
        path,
        loc,
        {
            "timeout_error_types": lambda v, p: _words(v, p, loc),
            "refusal_error_types": lambda v, p: _words(v, p, loc),
            "refusal_finish_reasons": lambda v, p: _words(v, p, loc),
            "timeout_finish_reasons": lambda v, p: _words(v, p, loc),
        },
    )


def _words(value: Any, path: str, loc: Locator) -> tuple[str, ...]:
    """A list of values (possibly empty): error types, finish reasons."""
    if value == []:
        return ()
    return name_list(value, path, loc, what="non-empty strings")


def _ttft(raw: Any, path: str, loc: Locator) -> TtftMapping:
    return fill(
        TtftMapping(),
        mapping(raw, path, loc),
        path,
        loc,
        {
            "attribute": lambda v, p: _optional_attribute(v, p, loc),
            "unit": lambda v, p: choice(v, p, loc, TTFT_UNITS),
            "event": lambda v, p: _optional_attribute(v, p, loc),
        },
    )


# The sub-sections of ``otlp``, each with its own parser, in the order they are parsed (and fail).
_NESTED: Final[Mapping[str, Callable[[Any, str, Locator], Any]]] = MappingProxyType(
    {
        "flags": _flags,
        "variants": _variant_map,
        "segments": _named_attributes,
        "status": _status,
        "ttft": _ttft,
        "quality": _named_attributes,
        "prices": _prices,
    }
)


def parse_otlp(
    raw: Any, loc: Locator, worker: WorkerSettings | None = None, dedup_window_s: float | None = None
) -> OtlpSettings:
    """The ``otlp`` section (``None`` or absent: the defaults). ``worker``: the worker section, against
    which the idle flush is checked; ``dedup_window_s``: the engine's, which must cover the join window
    (a restarted worker translates the held spans' payloads again: their events must be recognised)."""
    data = mapping(raw, "otlp", loc)
    settings = fill(
        OtlpSettings(),
        data,
        "otlp",
        loc,
        {
            "encoding": lambda v, p: choice(v, p, loc, ENCODINGS),
            "join_window_s": lambda v, p: positive(v, p, loc),
            "idle_flush_s": lambda v, p: positive(v, p, loc),
            "max_held_traces": lambda v, p: positive(v, p, loc, integer=True),
            "operations": lambda v, p: name_list(v, p, loc, what="operation names"),
            "flag_events": lambda v, p: name_list(v, p, loc, what="event names"),
            "unit": lambda v, p: name_list(v, p, loc, what="attribute names"),
            "rollout_attribute": lambda v, p: _optional_attribute(v, p, loc),
            "shadow_attribute": lambda v, p: _optional_attribute(v, p, loc),
            "request_id_attribute": lambda v, p: _optional_attribute(v, p, loc),
            "evaluation_event": lambda v, p: _optional_attribute(v, p, loc),
            "format_valid_attribute": lambda v, p: _optional_attribute(v, p, loc),
            "canary_weight_attribute": lambda v, p: _optional_attribute(v, p, loc),
            "cost_attribute": lambda v, p: _optional_attribute(v, p, loc),
            "response_text": lambda v, p: boolean(v, p, loc),
        },
        nested=_NESTED,
    )
    settings = replace(
        settings,
        **{key: parse(data[key], f"otlp.{key}", loc) for key, parse in _NESTED.items() if key in data},
    )
    if worker is not None and settings.topic is not None and settings.idle_flush_s >= worker.idle_after_s:
        raise loc.error(
            "otlp.idle_flush_s",
            f"must be less than worker.idle_after_s ({worker.idle_after_s:g}): a quiet rollout's clock "
            "would move on before the spans held for it are translated",
        )
    if dedup_window_s is not None and settings.topic is not None and settings.join_window_s >= dedup_window_s:
        raise loc.error(
            "otlp.join_window_s",
            f"must be less than engine.dedup_window_s ({dedup_window_s:g}): after a restart the spans "
            "held are translated again, and their events must be recognised as duplicates",
        )
    return settings
