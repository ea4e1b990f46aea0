"""A rollout's status shows the canary's variant parts against control's; its saved state keeps them."""

from __future__ import annotations

import orjson

from core_traffic import request
from rollguard.adapters.worker.observability import rollout_status
from rollguard.detect.engine import Engine
from rollguard.detect.monitor import STATE_LAYOUT
from rollguard.domain.variant_parts import bundled_parts
from rollguard.pipeline.pipelines import Pipelines
from rollguard.pipeline.rollout import RolloutPipeline
from rollguard.settings import Config

CONTROL = {"model": "m-1", "prompt": "p6", "tools": "t3"}
CANARY = {"model": "m-2", "prompt": "p7", "tools": "t3"}


def test_the_pipeline_and_worker_status_show_the_changed_parts_and_the_bundled_change_flag() -> None:
    pipelines = Pipelines(Config())
    pipelines.process(request(0.0, "control", variant_parts=CONTROL))
    pipeline = pipelines.get("r")
    assert pipeline.status()["variant_parts"] == {"control": CONTROL, "canary": None, "changed": None,
                                                  "bundled_change": False}  # fmt: skip
    pipelines.process(request(1.0, "canary", variant_parts=CANARY))
    expected = {"control": CONTROL, "canary": CANARY, "changed": ["model", "prompt"], "bundled_change": True}
    assert pipeline.status()["variant_parts"] == expected
    assert rollout_status(pipeline)["variant_parts"] == expected
    assert bundled_parts(rollout_status(pipeline)) == bundled_parts(pipeline.status()) == ["model", "prompt"]


def test_a_rollout_whose_events_name_no_parts_shows_none() -> None:
    pipelines = Pipelines(Config())
    pipelines.process(request(0.0, "control"))
    pipelines.process(request(1.0, "canary"))
    pipeline = pipelines.get("r")
    assert "variant_parts" not in pipeline.status()
    assert rollout_status(pipeline)["variant_parts"] is None
    assert bundled_parts(rollout_status(pipeline)) == []


def test_a_reset_by_new_canary_parts_keeps_what_is_known_of_control_parts() -> None:
    engine = Engine()
    engine.process(request(0.0, "control", variant_parts=CONTROL))
    engine.process(request(1.0, "canary", variant_parts=CANARY))
    changes = engine.process(request(2.0, "canary", variant_parts={**CANARY, "prompt": "p6"}))
    assert [c.state for c in changes if c.kind == "rollout"] == ["reset"]
    assert engine.monitors["r"].parts.changed == ("model",)


def test_the_saved_state_keeps_the_parts_and_stays_byte_stable_without_them() -> None:
    engine = Engine()
    engine.process(request(0.0, "control"))
    assert list(engine.to_state()["monitors"]["r"]) == list(STATE_LAYOUT)
    engine.process(request(1.0, "control", variant_parts=CONTROL))
    engine.process(request(2.0, "canary", variant_parts=CANARY))
    state = orjson.loads(orjson.dumps(engine.to_state()))
    assert state["monitors"]["r"]["variant_parts"] == {"control": CONTROL, "canary": CANARY}
    restored = Engine.from_state(state)
    assert restored.monitors["r"].parts == engine.monitors["r"].parts
    # A restored canary with the same parts continues; new parts restart it, as before the restart.
    assert not [
        c for c in restored.process(request(3.0, "canary", variant_parts=CANARY)) if c.kind == "rollout"
    ]
    assert [c.kind for c in restored.process(request(4.0, "canary", variant_parts=CONTROL))
            if c.kind == "rollout"] == ["rollout"]  # fmt: skip


def test_a_restored_pipeline_shows_the_same_parts() -> None:
    pipelines = Pipelines(Config())
    pipelines.process(request(0.0, "control", variant_parts=CONTROL))
    pipelines.process(request(1.0, "canary", variant_parts=CANARY))
    pipeline = pipelines.get("r")
    state = orjson.loads(orjson.dumps(pipeline.to_state()))
    restored = RolloutPipeline.from_state(state, Config(), pipelines.shared)
    assert restored.variant_parts() == pipeline.variant_parts()


def test_a_new_variant_with_the_same_parts_resets_for_its_variant_and_names_no_parts() -> None:
    engine = Engine()
    engine.process(request(0.0, "canary", variant="v1", variant_parts=CANARY))
    changes = engine.process(request(1.0, "canary", variant="v2", variant_parts=CANARY))
    (reset,) = [c for c in changes if c.kind == "rollout"]
    assert reset.evidence == {"reason": "canary variant changed", "from": "v1", "to": "v2"}
    changes = engine.process(request(2.0, "canary", variant="v2", variant_parts=CONTROL))
    (reset,) = [c for c in changes if c.kind == "rollout"]
    assert reset.evidence["reason"] == "canary variant parts changed" and reset.evidence["to"] == "v2"
    assert reset.evidence["changed_parts"] == ["model", "prompt"]
