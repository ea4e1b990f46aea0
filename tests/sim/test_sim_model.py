"""Scenario model: JSON round trips, validation messages, built-in scenarios."""

from __future__ import annotations

import pytest

from rollguard.sim import SCENARIOS, Injection, Scenario, ScenarioError, get_scenario


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_builtin_scenarios_round_trip_through_json(name: str) -> None:
    sc = get_scenario(name, seed=3)
    again = Scenario.from_json(sc.to_json())
    assert again.to_dict() == sc.to_dict()
    assert again == sc


def test_save_and_load(tmp_path) -> None:
    sc = get_scenario("post_rollout_regression", seed=9)
    path = tmp_path / "scenario.json"
    sc.save(path)
    assert Scenario.load(path) == sc


def test_unknown_keys_are_rejected_with_their_path() -> None:
    data = get_scenario("aa").to_dict()
    data["arrivals"]["rate_per_sec"] = 10
    with pytest.raises(ScenarioError, match=r"scenario\.arrivals: unknown key\(s\) \['rate_per_sec'\]"):
        Scenario.from_dict(data)


@pytest.mark.parametrize(
    ("injection", "message"),
    [
        (
            Injection("error_rate", 0.03, 0.0, cohort={"input_klass": "coding"}),
            "unknown dimension 'input_klass'",
        ),
        (
            Injection("error_rate", 0.03, 0.0, cohort={"input_class": "poetry"}),
            "is not a value of input_class",
        ),
        (Injection("latency_p95", 1.3, 0.0), "metric: unknown 'latency_p95'"),
        (Injection("error_rate", 3.0, 0.0), "a rate must be in"),
        (Injection("latency", 1.3, 0.0, mode="add"), "not allowed for latency"),
        (Injection("error_rate", 0.03, 0.0, arms=["blue"]), "arms"),
    ],
)
def test_bad_injections_are_rejected(injection: Injection, message: str) -> None:
    sc = get_scenario("aa")
    sc.injections.append(injection)
    with pytest.raises(ScenarioError, match=message):
        sc.validate()


def test_segment_behaviour_keys_are_checked() -> None:
    data = get_scenario("aa").to_dict()
    data["segment_behaviour"]["input_class=poetry"] = {"error_rate": 0.1}
    with pytest.raises(ScenarioError, match="input_class=poetry"):
        Scenario.from_dict(data)
    data = get_scenario("aa").to_dict()
    data["segment_behaviour"]["input_class=chat"]["error_rte"] = 0.1
    with pytest.raises(ScenarioError, match="unknown behaviour parameter 'error_rte'"):
        Scenario.from_dict(data)


def test_weight_schedule_and_promotion() -> None:
    sc = get_scenario("ramp", steps=(0.01, 0.05, 0.5), step_s=100.0, promote_at_s=250.0)
    assert [sc.weight_at(t) for t in (0.0, 99.9, 100.0, 200.0, 249.0, 250.0, 1000.0)] == [
        0.01, 0.01, 0.05, 0.5, 0.5, 1.0, 1.0,
    ]  # fmt: skip


def test_unknown_scenario_name() -> None:
    with pytest.raises(KeyError, match="unknown scenario"):
        get_scenario("nope")
