"""A rollout's decisions depend only on its own events and inputs, survive a checkpoint, and count a
duplicate delivery once; silences are the only thing rollouts share."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import orjson
import pytest

from rollguard.domain.events import Event, parse_event
from rollguard.pipeline.pipelines import Pipelines
from rollguard.pipeline.rollout import RolloutPipeline, Step
from rollguard.pipeline.shared import SharedState
from rollguard.settings import Config, parse_config
from rollguard.sim import generate, get_scenario

CONFIG = Config()


def _events(dicts: Iterable[dict[str, Any]]) -> list[Event]:
    out = []
    for d in dicts:
        ev = parse_event(orjson.dumps(d))
        assert isinstance(ev, Event)
        out.append(ev)
    return out


@pytest.fixture(scope="module")
def regression() -> list[Event]:
    sc = get_scenario("error_spike_coding", seed=7, duration_s=20 * 60.0, error_rate=0.08)
    return _events(generate(sc))


@pytest.fixture(scope="module")
def neighbour() -> list[Event]:
    """Another rollout whose clock runs 15 minutes ahead, with shadow copies and a regression of its own."""
    sc = get_scenario("latency_shift_tenant", seed=3, duration_s=20 * 60.0)
    sc = dataclasses.replace(sc, start_ts=sc.start_ts + 900.0)
    return _events(generate(sc))


def _outputs(steps: Iterable[Step], rollout_id: str) -> dict[str, list[bytes]]:
    got: dict[str, list[bytes]] = {"verdicts": [], "alerts": [], "commands": [], "readiness": [], "audit": []}
    for step in steps:
        got["verdicts"] += [orjson.dumps(v.to_dict()) for v in step.verdicts if v.rollout_id == rollout_id]
        for name in ("alerts", "commands", "readiness", "audit"):
            got[name] += [orjson.dumps(x) for x in getattr(step, name) if x.get("rollout_id") == rollout_id]
    return got


def _drive(pipelines: Pipelines, events: Iterable[Event]) -> list[Step]:
    steps = [pipelines.process(ev) for ev in events]
    steps += [pipelines.flush(), pipelines.advance_each()]
    return steps


def test_a_rollouts_decisions_do_not_depend_on_other_rollouts(
    regression: list[Event], neighbour: list[Event]
) -> None:
    rid = regression[0].rollout_id
    alone = _outputs(_drive(Pipelines(CONFIG), regression), rid)
    mixed_events = sorted([*regression, *neighbour], key=lambda ev: ev.ts)
    together = _outputs(_drive(Pipelines(CONFIG), mixed_events), rid)
    assert alone == together
    assert alone["commands"], "the regression is acted on"
    assert any(b'"regressed"' in v for v in alone["verdicts"])


def test_a_restored_pipeline_decides_exactly_as_one_that_never_stopped(regression: list[Event]) -> None:
    shared = SharedState()
    whole = RolloutPipeline(regression[0].rollout_id, CONFIG, shared)
    straight = [whole.process(ev) for ev in regression]
    cut = len(regression) // 2 + 17  # mid-batch
    first = RolloutPipeline(regression[0].rollout_id, CONFIG, shared)
    before = [first.process(ev) for ev in regression[:cut]]
    state = orjson.loads(orjson.dumps(first.to_state()))
    restored = RolloutPipeline.from_state(state, CONFIG, shared)
    assert orjson.dumps(restored.to_state()) == orjson.dumps(first.to_state())
    after = [restored.process(ev) for ev in regression[cut:]]
    rid = regression[0].rollout_id
    assert _outputs(before + after, rid) == _outputs(straight, rid)


def test_an_event_delivered_twice_is_counted_once(regression: list[Event]) -> None:
    rid = regression[0].rollout_id
    once = _drive(Pipelines(CONFIG), regression)
    twice_events: list[Event] = []
    for i, ev in enumerate(regression):
        twice_events.append(ev)
        if i % 7 == 0:
            twice_events.append(ev)  # an at-least-once producer's retry, right behind the original
    pipelines = Pipelines(CONFIG)
    twice = _drive(pipelines, twice_events)
    assert _outputs(once, rid) == _outputs(twice, rid)
    assert pipelines.get(rid).duplicates == len(twice_events) - len(regression)
    monitor = pipelines.get(rid).engine.monitors[rid]
    assert monitor.counters["events"] == len(regression)


def test_ids_older_than_the_window_are_forgotten_and_counted_again() -> None:
    config = parse_config("engine: {dedup_window_s: 60}")
    p = RolloutPipeline("r", config, SharedState())
    base = {"request_id": "q", "rollout_id": "r", "arm": "control", "status": "ok"}
    for ts, eid in [(1767225600.0, "a"), (1767225610.0, "a"), (1767225800.0, "a")]:
        ev = parse_event({**base, "event_id": eid, "ts": ts})
        assert isinstance(ev, Event)
        p.process(ev)
    assert p.duplicates == 1


def test_a_silence_issued_for_one_rollout_silences_matching_alerts_of_another(
    regression: list[Event], neighbour: list[Event]
) -> None:
    rid = regression[0].rollout_id
    baseline = _outputs(_drive(Pipelines(CONFIG), regression), rid)
    assert [a for a in baseline["alerts"] if b'"firing"' in a], "the regression alerts when not silenced"
    pipelines = Pipelines(CONFIG)
    pipelines.process(neighbour[0])
    start = neighbour[0].ts
    action = {
        "action": "silence", "command_id": "sil-1", "rollout_id": neighbour[0].rollout_id, "issued_by": "ana",
        "issued_at": start, "operator": {"matchers": {"rollout": rid}, "duration_s": 86400},
    }  # fmt: skip
    step = pipelines.on_input(action, start)
    assert step.audit[0]["result"].startswith("ok: silence sil-1")
    silenced = _outputs(_drive(pipelines, regression), rid)
    firing = [orjson.loads(a) for a in silenced["alerts"] if b'"firing"' in a]
    # Only the revert rehearsal's warning (300 s after the rollout's first event) fires: before the silence.
    assert [a["rule"] for a in firing] == ["revert_not_rehearsed"] and firing[0]["starts_at"] < start
    assert silenced["commands"] == baseline["commands"], "a silence quiets people, not controllers"


def _hold(rollout_id: str, command_id: str) -> dict[str, Any]:
    return {"action": "hold", "command_id": command_id, "rollout_id": rollout_id, "issued_by": "ana",
            "issued_at": 1_767_225_600.0, "operator": {}}  # fmt: skip


def test_a_rejected_operator_action_for_an_unknown_rollout_leaves_no_rollout_state_behind() -> None:
    pipelines = Pipelines(CONFIG, signing_key=b"the-command-key")
    forged = {**_hold("nobody-1", "op-1"), "signature": "00" * 32}
    why = pipelines.stray_rejection(forged, 1_767_225_600.0)
    assert why is not None and why.field == "action"
    assert why.reason.startswith("for a rollout with no state here, rejected: signature check failed")
    assert not pipelines.on_input(forged, 1_767_225_600.0), "bad input, set aside by the caller: no audit"
    malformed = {k: v for k, v in _hold("nobody-2", "op-2").items() if k != "issued_by"}
    why = pipelines.stray_rejection(malformed)
    assert why is not None
    assert why.reason == "for a rollout with no state here, rejected: issued_by is required"
    assert not pipelines.on_input(malformed)
    assert len(pipelines) == 0, "nothing a message says can make rollguard hold state for a rollout"


def test_an_accepted_operator_action_may_come_before_the_rollouts_first_event() -> None:
    pipelines = Pipelines(CONFIG)  # no signing key: actions are not verified
    assert pipelines.stray_rejection(_hold("early", "op-3"), 1_767_225_600.0) is None
    step = pipelines.on_input(_hold("early", "op-3"), 1_767_225_600.0)
    assert step.audit[0]["result"].startswith("ok") and len(pipelines) == 1
