"""Rollout traffic simulator: realistic v1 events (control/canary/shadow, segments, units, injections).

Pure numpy + stdlib. ``generate(scenario)`` yields event dicts in event-time order; ``write_jsonl``
stores them; ``rollguard.sim.scenarios`` holds the named benchmark scenarios.

>>> from rollguard.sim import generate, get_scenario
>>> events = list(generate(get_scenario("error_spike_coding", seed=1, duration_s=60)))
>>> events[0]["arm"] in ("control", "canary"), len(events) > 2000
(True, True)
"""

from rollguard.sim.generator import (
    ARM_NAMES,
    STATUS_NAMES,
    EventBatch,
    Plan,
    batch_to_dicts,
    generate,
    generate_batches,
    merge_streams,
    read_jsonl,
    sample_requests,
    write_jsonl,
)
from rollguard.sim.scenario import (
    INJECTION_METRICS,
    Arrivals,
    Behaviour,
    Burst,
    Dimension,
    Injection,
    Scenario,
    ScenarioError,
    Shadow,
    TextSpec,
    Units,
    VariantParts,
    WeightStep,
    default_dimensions,
    default_segment_behaviour,
)
from rollguard.sim.scenarios import SCENARIOS, get_scenario
from rollguard.sim.text import TextContext, register_text_generator

__all__ = [
    "ARM_NAMES",
    "INJECTION_METRICS",
    "SCENARIOS",
    "STATUS_NAMES",
    "Arrivals",
    "Behaviour",
    "Burst",
    "Dimension",
    "EventBatch",
    "Injection",
    "Plan",
    "Scenario",
    "ScenarioError",
    "Shadow",
    "TextContext",
    "TextSpec",
    "Units",
    "VariantParts",
    "WeightStep",
    "batch_to_dicts",
    "default_dimensions",
    "default_segment_behaviour",
    "generate",
    "generate_batches",
    "get_scenario",
    "merge_streams",
    "read_jsonl",
    "register_text_generator",
    "sample_requests",
    "write_jsonl",
]
