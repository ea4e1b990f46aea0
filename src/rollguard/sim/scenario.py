"""Scenario model of the rollout traffic simulator: plain dataclasses that round-trip through JSON.

A :class:`Scenario` describes one rollout: who sends requests (units with heavy-tailed activity,
segment dimensions with uneven shares), when (an arrival process), how the router splits them
(a canary-weight schedule, an optional promotion), how each segment behaves (error rates, latency,
tokens, cost, quality) and what changes at a known time (:class:`Injection`). ``to_dict`` /
``from_dict`` (and ``to_json`` / ``from_json`` / ``save`` / ``load``) make scenarios storable in
files; unknown keys are rejected with the path of the key, so typos in scenario files do not pass
silently.

All times in a scenario are seconds from the rollout start (``start_ts``, epoch seconds).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from rollguard.domain.events import variant_parts_problem

ARMS: Final = ("control", "canary", "shadow")

#: Metrics an injection can change, with the mode used when ``Injection.mode`` is not given.
INJECTION_METRICS: Final[dict[str, str]] = {
    "error_rate": "set",
    "timeout_rate": "set",
    "refusal_rate": "set",
    "format_invalid_rate": "set",
    "latency": "multiply",  # whole latency (ttft and time per token) scaled
    "latency_tail": "multiply",  # only the upper tail: median kept, the tail quantile scaled by value
    "ttft": "multiply",
    "tokens_out": "multiply",  # longer answers: latency and cost follow
    "cost": "multiply",  # price change: cost only
    "eval_score": "add",  # shift of the mean of the Beta distribution (concentration kept)
    "thumbs": "add",  # shift of the thumbs-up probability
    "drop_events": "set",  # share of the arm's events that never reach the log (sample ratio mismatch)
    "text": "set",  # no numeric effect: a marker for the response-text generator (see text.py)
}
RATE_METRICS: Final = frozenset(
    {"error_rate", "timeout_rate", "refusal_rate", "format_invalid_rate", "thumbs", "drop_events"}
)
_MODES: Final[dict[str, frozenset[str]]] = {
    **{m: frozenset({"set", "add", "multiply"}) for m in RATE_METRICS},
    "eval_score": frozenset({"set", "add", "multiply"}),
    "latency": frozenset({"multiply"}),
    "latency_tail": frozenset({"multiply"}),
    "ttft": frozenset({"multiply"}),
    "tokens_out": frozenset({"multiply"}),
    "cost": frozenset({"multiply"}),
    "text": frozenset({"set"}),
}


class ScenarioError(ValueError):
    """A scenario that cannot be simulated; the message names the field at fault."""


@dataclass
class Behaviour:
    """How requests of one segment combination behave (the control and, unless injected, the canary).

    Latency of a served request is ``ttft + tokens_out * time_per_token`` with lognormal pieces
    (medians and log-sigmas below); ttft grows with the prompt (``prefill_ms_per_1k_tokens``).
    Errors fail fast (``error_latency_median_ms``); timeouts take ``timeout_ms``. Statuses are drawn
    per request: error, timeout, refusal with these probabilities, ok otherwise.
    """

    error_rate: float = 0.006
    timeout_rate: float = 0.002
    refusal_rate: float = 0.008
    format_invalid_rate: float = 0.01  # P(format_valid == false | status ok)
    tokens_in_median: float = 600.0
    tokens_in_sigma: float = 0.9
    tokens_out_median: float = 220.0
    tokens_out_sigma: float = 0.8
    max_tokens_out: float = 4096.0
    refusal_tokens_out_median: float = 45.0
    ttft_median_ms: float = 380.0
    ttft_sigma: float = 0.35
    prefill_ms_per_1k_tokens: float = 40.0
    tpot_median_ms: float = 20.0  # time per output token
    tpot_sigma: float = 0.25
    error_latency_median_ms: float = 180.0
    timeout_ms: float = 60_000.0
    price_in_per_1k: float = 0.0005  # USD per 1k prompt tokens
    price_out_per_1k: float = 0.0015  # USD per 1k completion tokens
    eval_share: float = 0.85  # share of ok requests that carry quality.eval_score
    eval_mean: float = 0.8  # eval_score ~ Beta(mean * concentration, (1 - mean) * concentration)
    eval_concentration: float = 12.0
    thumbs_share: float = 0.05  # share of ok/refusal requests with user feedback quality.thumbs
    thumbs_up_rate: float = 0.8
    refusal_thumbs_up_rate: float = 0.3

    def replace(self, overrides: Mapping[str, float], where: str = "behaviour") -> Behaviour:
        names = {f.name for f in dataclasses.fields(self)}
        for key, value in overrides.items():
            if key not in names:
                raise ScenarioError(f"{where}: unknown behaviour parameter {key!r}")
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise ScenarioError(f"{where}.{key}: must be a finite number, got {value!r}")
        return dataclasses.replace(self, **{k: float(v) for k, v in overrides.items()})

    def validate(self, where: str = "behaviour") -> None:
        for name in (
            "error_rate",
            "timeout_rate",
            "refusal_rate",
            "format_invalid_rate",
            "eval_share",
            "thumbs_share",
            "thumbs_up_rate",
            "refusal_thumbs_up_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ScenarioError(f"{where}.{name}: must be in [0, 1], got {value!r}")
        if self.error_rate + self.timeout_rate + self.refusal_rate > 1.0:
            raise ScenarioError(f"{where}: error_rate + timeout_rate + refusal_rate exceeds 1")
        if not 0.0 < self.eval_mean < 1.0:
            raise ScenarioError(f"{where}.eval_mean: must be in (0, 1), got {self.eval_mean!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value < 0.0:
                raise ScenarioError(f"{where}.{f.name}: must be non-negative, got {value!r}")


@dataclass
class Dimension:
    """A segment dimension (a key of the events' ``segment``) with its values and their shares.

    ``per_unit`` dimensions are a property of the unit (e.g. ``tenant``: all requests of a user
    belong to one tenant); the others are drawn per request (e.g. ``input_class``).
    """

    name: str
    values: list[str]
    shares: list[float]
    per_unit: bool = False

    def validate(self, where: str) -> None:
        if not self.name:
            raise ScenarioError(f"{where}.name: must be a non-empty string")
        if not self.values or len(set(self.values)) != len(self.values):
            raise ScenarioError(f"{where}.values: must be a non-empty list of distinct strings")
        if len(self.shares) != len(self.values):
            raise ScenarioError(f"{where}.shares: needs one share per value ({len(self.values)})")
        if any(s < 0 for s in self.shares) or sum(self.shares) <= 0:
            raise ScenarioError(f"{where}.shares: must be non-negative with a positive sum")

    def probabilities(self) -> list[float]:
        total = float(sum(self.shares))
        return [s / total for s in self.shares]


@dataclass
class Units:
    """Randomisation units (users). Activity weights are lognormal: a few heavy users, a long tail."""

    n_units: int = 20_000
    activity_sigma: float = 1.2
    id_prefix: str = "u"

    def validate(self) -> None:
        if self.n_units < 1:
            raise ScenarioError("units.n_units: must be at least 1")
        if self.activity_sigma < 0:
            raise ScenarioError("units.activity_sigma: must be non-negative")


@dataclass
class Burst:
    """A window in which the arrival rate is multiplied (e.g. a batch job, a traffic spike)."""

    start_s: float
    duration_s: float
    multiplier: float


@dataclass
class Arrivals:
    """Arrival process: Poisson at ``rate_per_s``, optionally modulated by a diurnal sine and bursts.

    ``times_s`` replays given arrival times (seconds from the start) instead; ``generate`` also
    accepts an array directly, which is better for large recordings than a JSON list.
    """

    rate_per_s: float = 40.0
    diurnal_amplitude: float = 0.0  # rate * (1 + amplitude * sin(2 pi (t + phase) / period))
    diurnal_period_s: float = 86_400.0
    diurnal_phase_s: float = 0.0
    bursts: list[Burst] = field(default_factory=list)
    times_s: list[float] | None = None

    def validate(self) -> None:
        if self.times_s is None and not self.rate_per_s > 0:
            raise ScenarioError("arrivals.rate_per_s: must be positive")
        if not 0.0 <= self.diurnal_amplitude <= 1.0:
            raise ScenarioError("arrivals.diurnal_amplitude: must be in [0, 1]")
        if self.diurnal_period_s <= 0:
            raise ScenarioError("arrivals.diurnal_period_s: must be positive")
        for i, b in enumerate(self.bursts):
            if b.multiplier < 0 or b.duration_s < 0:
                raise ScenarioError(f"arrivals.bursts[{i}]: multiplier and duration must be non-negative")


@dataclass
class WeightStep:
    """From ``at_s`` on, the router sends this share of units to the canary."""

    at_s: float
    weight: float


@dataclass
class VariantParts:
    """The parts of the version each arm runs, written on every event as ``variant_parts`` (shadow
    copies carry the canary's): a canary differing from control in more than one part shows a bundled
    change."""

    control: dict[str, str] = field(default_factory=dict)
    canary: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        for arm in ("control", "canary"):
            parts = getattr(self, arm)
            problem = variant_parts_problem(parts)
            if problem is None and not parts:
                problem = ("variant_parts", "at least one part")
            if problem is not None:
                name, reason = problem
                raise ScenarioError(f"variant_parts.{arm}{name.removeprefix('variant_parts')}: {reason}")


@dataclass
class Shadow:
    """Shadow (dual-write) copies: the new version answers a copy of a live control request.

    A shadow event has the live event's ``request_id``, ``unit_id``, segment and prompt size, its own
    response (new-version behaviour), and a ``ts`` slightly later (lognormal delay). A share of the
    copies never arrives (``missing_share``).
    """

    share: float = 1.0  # share of control requests mirrored
    missing_share: float = 0.05
    delay_median_s: float = 0.3
    delay_sigma: float = 0.8

    def validate(self) -> None:
        for name in ("share", "missing_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ScenarioError(f"shadow.{name}: must be in [0, 1]")
        if self.delay_median_s < 0 or self.delay_sigma < 0:
            raise ScenarioError("shadow: delays must be non-negative")


@dataclass
class Injection:
    """A change of one metric in one cohort, for some arms, from ``start_s`` (to ``end_s``).

    ``cohort`` filters segments (``{"input_class": "coding"}``; empty = the whole rollout; several
    keys = their intersection). ``arms`` defaults to the new version wherever it serves (canary and
    shadow): a regression. Use all three arms for a baseline drift (e.g. an upstream outage).

    ``value`` meaning by ``mode``: ``set`` = new absolute value (rates, eval mean), ``add`` = shift,
    ``multiply`` = factor. For ``latency_tail`` the latency above the cohort's baseline quantile
    ``tail_from_quantile`` is stretched progressively so that the ``tail_at_quantile`` latency (and
    everything above) is multiplied by ``value`` while quantiles below ``tail_from_quantile`` (the
    median) do not move at all. ``params`` is free-form for hooks (e.g. the response-text generator).
    """

    metric: str
    value: float
    start_s: float
    end_s: float | None = None
    cohort: dict[str, str] = field(default_factory=dict)
    arms: list[str] = field(default_factory=lambda: ["canary", "shadow"])
    mode: str | None = None
    tail_from_quantile: float = 0.6
    tail_at_quantile: float = 0.95
    label: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def effective_mode(self) -> str:
        return self.mode if self.mode is not None else INJECTION_METRICS.get(self.metric, "set")

    def active(self, t: float) -> bool:
        return t >= self.start_s and (self.end_s is None or t < self.end_s)

    def validate(self, where: str, dims: Mapping[str, Dimension]) -> None:
        if self.metric not in INJECTION_METRICS:
            known = sorted(INJECTION_METRICS)
            raise ScenarioError(f"{where}.metric: unknown {self.metric!r}; one of {known}")
        if self.effective_mode not in _MODES[self.metric]:
            raise ScenarioError(
                f"{where}.mode: {self.effective_mode!r} not allowed for {self.metric}; "
                f"one of {sorted(_MODES[self.metric])}"
            )
        if not math.isfinite(self.value):
            raise ScenarioError(f"{where}.value: must be finite")
        if self.effective_mode == "multiply" and self.value < 0:
            raise ScenarioError(f"{where}.value: a factor must be non-negative")
        if self.metric in RATE_METRICS and self.effective_mode == "set" and not 0 <= self.value <= 1:
            raise ScenarioError(f"{where}.value: a rate must be in [0, 1]")
        if self.end_s is not None and self.end_s < self.start_s:
            raise ScenarioError(f"{where}.end_s: before start_s")
        if not self.arms or any(a not in ARMS for a in self.arms):
            raise ScenarioError(f"{where}.arms: a non-empty list of {list(ARMS)}")
        for key, value in self.cohort.items():
            if key not in dims:
                raise ScenarioError(f"{where}.cohort: unknown dimension {key!r}; one of {sorted(dims)}")
            if value not in dims[key].values:
                raise ScenarioError(f"{where}.cohort: {key}={value!r} is not a value of {key}")
        if self.metric == "latency_tail" and not 0.0 < self.tail_from_quantile < self.tail_at_quantile < 1.0:
            raise ScenarioError(f"{where}: needs 0 < tail_from_quantile < tail_at_quantile < 1")


@dataclass
class TextSpec:
    """Response texts (off unless set): ``kind`` names a generator registered in ``rollguard.sim.text``."""

    kind: str = "templates"
    share: float = 1.0  # share of served (ok/refusal) responses that carry response_text
    params: dict[str, Any] = field(default_factory=dict)


def default_dimensions() -> list[Dimension]:
    """input_class with uneven shares (legal is the rare ~3% cohort), tenant t1..t6 with Zipf shares."""
    zipf = [1.0 / k for k in range(1, 7)]
    total = sum(zipf)
    return [
        Dimension(
            "input_class",
            ["chat", "coding", "summarization", "billing", "legal"],
            [0.45, 0.27, 0.15, 0.10, 0.03],
        ),
        Dimension(
            "tenant", [f"t{k}" for k in range(1, 7)], [round(z / total, 4) for z in zipf], per_unit=True
        ),
    ]


def default_segment_behaviour() -> dict[str, dict[str, float]]:
    """Per-segment departures from :class:`Behaviour` defaults (applied in order, later keys win)."""
    return {
        "input_class=chat": {
            "tokens_in_median": 350.0,
            "tokens_out_median": 180.0,
            "eval_mean": 0.82,
            "error_rate": 0.005,
            "refusal_rate": 0.01,
        },
        "input_class=coding": {
            "tokens_in_median": 1500.0,
            "tokens_in_sigma": 1.0,
            "tokens_out_median": 420.0,
            "tokens_out_sigma": 0.9,
            "error_rate": 0.01,
            "timeout_rate": 0.004,
            "refusal_rate": 0.003,
            "format_invalid_rate": 0.015,
            "eval_mean": 0.74,
        },
        "input_class=summarization": {
            "tokens_in_median": 3000.0,
            "tokens_in_sigma": 0.8,
            "tokens_out_median": 200.0,
            "tokens_out_sigma": 0.5,
            "eval_mean": 0.8,
        },
        "input_class=billing": {
            "tokens_in_median": 600.0,
            "tokens_out_median": 150.0,
            "refusal_rate": 0.02,
            "eval_mean": 0.85,
            "format_invalid_rate": 0.008,
        },
        "input_class=legal": {
            "tokens_in_median": 2500.0,
            "tokens_out_median": 500.0,
            "refusal_rate": 0.03,
            "eval_mean": 0.7,
            "eval_concentration": 10.0,
            "error_rate": 0.008,
        },
        "tenant=t4": {"price_in_per_1k": 0.0004, "price_out_per_1k": 0.0012},  # a negotiated discount
        "tenant=t6": {"ttft_median_ms": 450.0},  # a far-away region
    }


@dataclass
class Scenario:
    """One simulated rollout. See the module docstring; ``generate(scenario)`` yields its events."""

    name: str = "scenario"
    seed: int = 0
    rollout_id: str = "rollout-1"
    start_ts: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    duration_s: float = 1800.0
    control_variant: str = "v1"
    canary_variant: str = "v2"
    weights: list[WeightStep] = field(default_factory=lambda: [WeightStep(0.0, 0.1)])
    # The canary starts here: before it the router sends every unit to control (a control-only period,
    # so that each cohort has a baseline before any traffic moves); the weight schedule applies after.
    control_only_s: float = 0.0
    promote_at_s: float | None = None  # from then on only the new version serves (arm canary, weight 1)
    # salt of the router's unit hash; None = derived from the seed, so that scenarios with the same seed
    # route every unit the same way (paired A/A vs injected comparisons)
    routing_salt: str | None = None
    arrivals: Arrivals = field(default_factory=Arrivals)
    units: Units = field(default_factory=Units)
    dimensions: list[Dimension] = field(default_factory=default_dimensions)
    behaviour: Behaviour = field(default_factory=Behaviour)
    segment_behaviour: dict[str, dict[str, float]] = field(default_factory=default_segment_behaviour)
    injections: list[Injection] = field(default_factory=list)
    shadow: Shadow | None = None
    response_text: TextSpec | None = None
    variant_parts: VariantParts | None = None
    chunk_size: int = 32_768  # generation batch (part of the random stream: keep it for reproducibility)

    # ---- derived helpers -------------------------------------------------------------------------
    def weight_at(self, t: float) -> float:
        """The canary weight the router applies at scenario time ``t`` (0 in the control-only period, 1.0
        after promotion)."""
        if t < self.control_only_s:
            return 0.0
        if self.promote_at_s is not None and t >= self.promote_at_s:
            return 1.0
        w = 0.0
        for step in sorted(self.weights, key=lambda s: s.at_s):
            if step.at_s <= t:
                w = step.weight
        return w

    def dimension(self, name: str) -> Dimension:
        for d in self.dimensions:
            if d.name == name:
                return d
        raise KeyError(name)

    def validate(self) -> None:
        if not self.rollout_id:
            raise ScenarioError("rollout_id: must be a non-empty string")
        if not self.duration_s > 0:
            raise ScenarioError("duration_s: must be positive")
        if self.chunk_size < 16:
            raise ScenarioError("chunk_size: must be at least 16")
        if not self.weights:
            raise ScenarioError("weights: at least one step")
        for i, s in enumerate(self.weights):
            if not 0.0 <= s.weight <= 1.0:
                raise ScenarioError(f"weights[{i}].weight: must be in [0, 1]")
        if not 0.0 <= self.control_only_s < self.duration_s:
            raise ScenarioError("control_only_s: must be at least 0 and shorter than duration_s")
        if self.promote_at_s is not None and self.promote_at_s < self.control_only_s:
            raise ScenarioError("promote_at_s: before the canary starts (control_only_s)")
        if self.variant_parts is not None:
            self.variant_parts.validate()
        self.arrivals.validate()
        self.units.validate()
        names = [d.name for d in self.dimensions]
        if len(set(names)) != len(names):
            raise ScenarioError("dimensions: names must be distinct")
        for i, d in enumerate(self.dimensions):
            d.validate(f"dimensions[{i}]")
        dims = {d.name: d for d in self.dimensions}
        self.behaviour.validate()
        for key, overrides in self.segment_behaviour.items():
            conds = parse_conditions(key, dims, f"segment_behaviour[{key!r}]")
            del conds
            self.behaviour.replace(overrides, f"segment_behaviour[{key!r}]").validate(
                f"segment_behaviour[{key!r}]"
            )
        for i, inj in enumerate(self.injections):
            inj.validate(f"injections[{i}]", dims)
        if self.shadow is not None:
            self.shadow.validate()
        if self.response_text is not None and not 0.0 <= self.response_text.share <= 1.0:
            raise ScenarioError("response_text.share: must be in [0, 1]")

    # ---- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        scenario: Scenario = _build(cls, data, "scenario")
        scenario.validate()
        return scenario

    def to_json(self, indent: bool = True) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 if indent else 0)

    @classmethod
    def from_json(cls, text: str | bytes) -> Scenario:
        data = orjson.loads(text)
        if not isinstance(data, dict):
            raise ScenarioError("scenario: a JSON object expected")
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_json() + b"\n")

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        return cls.from_json(Path(path).read_bytes())

    def copy(self) -> Scenario:
        return Scenario.from_dict(self.to_dict())


def parse_conditions(key: str, dims: Mapping[str, Dimension], where: str) -> dict[str, str]:
    """``"input_class=coding,tenant=t3"`` -> ``{"input_class": "coding", "tenant": "t3"}`` (validated)."""
    out: dict[str, str] = {}
    for part in key.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name not in dims or value not in dims[name].values:
            raise ScenarioError(f"{where}: {part!r} is not DIMENSION=VALUE of a known dimension and value")
        out[name] = value
    return out


# ---- generic dataclass <-> plain JSON --------------------------------------------------------------
def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_to_plain(v) for v in obj]
    return obj


# The field types the scenario model uses, spelled as strings (``from __future__ import annotations``).
_NESTED: Final[dict[str, type]] = {
    "Arrivals": Arrivals,
    "Units": Units,
    "Behaviour": Behaviour,
    "Shadow | None": Shadow,
    "TextSpec | None": TextSpec,
    "VariantParts | None": VariantParts,
}
_LISTS: Final[dict[str, type]] = {
    "list[WeightStep]": WeightStep,
    "list[Dimension]": Dimension,
    "list[Injection]": Injection,
    "list[Burst]": Burst,
}


def _build(cls: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{where}: an object expected, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        ftype = str(fields[name].type)
        here = f"{where}.{name}"
        if value is None:
            kwargs[name] = None
        elif ftype in _NESTED:
            kwargs[name] = _build(_NESTED[ftype], value, here)
        elif ftype in _LISTS:
            if not isinstance(value, list):
                raise ScenarioError(f"{here}: a list expected")
            kwargs[name] = [_build(_LISTS[ftype], v, f"{here}[{i}]") for i, v in enumerate(value)]
        elif ftype == "float" or ftype == "float | None":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ScenarioError(f"{here}: a number expected, got {value!r}")
            kwargs[name] = float(value)
        elif ftype == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ScenarioError(f"{here}: an integer expected, got {value!r}")
            kwargs[name] = value
        elif ftype == "str" or ftype == "str | None":
            if not isinstance(value, str):
                raise ScenarioError(f"{here}: a string expected, got {value!r}")
            kwargs[name] = value
        elif ftype == "bool":
            if not isinstance(value, bool):
                raise ScenarioError(f"{here}: a boolean expected, got {value!r}")
            kwargs[name] = value
        elif ftype.startswith("list["):
            if not isinstance(value, list):
                raise ScenarioError(f"{here}: a list expected")
            kwargs[name] = list(value)
        elif ftype.startswith("dict["):
            if not isinstance(value, Mapping):
                raise ScenarioError(f"{here}: an object expected")
            kwargs[name] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in value.items()}
        else:  # pragma: no cover - a field type this table does not know is a bug here
            raise ScenarioError(f"{here}: unsupported field type {ftype}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
