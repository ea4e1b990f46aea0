"""The simulator's control-only period before the canary starts, and variant parts on its events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from rollguard.cli import main
from rollguard.sim import Scenario, ScenarioError, Shadow, VariantParts, generate, get_scenario

CONTROL = {"model": "m-1", "prompt": "p6", "tools": "t3"}
CANARY = {"model": "m-2", "prompt": "p7", "tools": "t3"}


def scenario(**changes: Any) -> Scenario:
    sc = get_scenario("aa", seed=5, duration_s=600.0, rate_per_s=20.0, canary_weight=0.3)
    for name, value in changes.items():
        setattr(sc, name, value)
    sc.validate()
    return sc


def test_no_canary_event_comes_before_the_control_only_period_ends_and_control_events_fill_it() -> None:
    sc = scenario(control_only_s=240.0, shadow=Shadow(share=0.2))
    events = list(generate(sc))
    before = [e for e in events if e["ts"] - sc.start_ts < 240.0]
    after = [e for e in events if e["ts"] - sc.start_ts >= 240.0]
    assert {e["arm"] for e in before} == {"control", "shadow"}  # shadow copies are not live canary traffic
    assert len([e for e in before if e["arm"] == "control"]) > 20 * 240 * 0.9
    assert all(e["canary_weight"] == 0.0 for e in before if e["arm"] == "control")
    canary = [e for e in after if e["arm"] == "canary"]
    assert canary and min(e["ts"] for e in canary) - sc.start_ts < 250.0  # the canary starts on time
    assert 0.2 < len(canary) / len([e for e in after if e["arm"] != "shadow"]) < 0.4
    assert [sc.weight_at(t) for t in (0.0, 239.9, 240.0)] == [0.0, 0.0, 0.3]


def test_without_a_control_only_period_the_events_are_those_of_before() -> None:
    sc = scenario()
    assert sc.control_only_s == 0.0
    assert list(generate(scenario(control_only_s=0.0))) == list(generate(sc))
    assert "variant_parts" not in next(generate(sc))


def test_after_the_control_only_period_the_traffic_is_the_same_draw_as_without_it() -> None:
    """Only the routing before the canary starts changes: arrivals, units and later arms are the same."""
    plain = list(generate(scenario()))
    late = list(generate(scenario(control_only_s=120.0)))
    assert [(e["ts"], e["unit_id"]) for e in plain] == [(e["ts"], e["unit_id"]) for e in late]
    assert [e["arm"] for e in plain if e["ts"] - 1_767_225_600 >= 120] == [
        e["arm"] for e in late if e["ts"] - 1_767_225_600 >= 120
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"control_only_s": -1.0}, "control_only_s: must be at least 0"),
        ({"control_only_s": 600.0}, "shorter than duration_s"),
        ({"control_only_s": 300.0, "promote_at_s": 200.0}, "promote_at_s: before the canary starts"),
        ({"variant_parts": VariantParts(CONTROL, {})}, "variant_parts.canary: at least one part"),
        ({"variant_parts": VariantParts({"my model": "m"}, CANARY)}, "variant_parts.control: part name"),
        (
            {"variant_parts": VariantParts(CONTROL, {"model": ""})},
            "variant_parts.canary.model: must be a non",
        ),
    ],
)
def test_a_bad_control_only_period_or_bad_parts_are_refused_with_the_field(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario(**changes)


def test_control_and_canary_parts_are_written_on_every_event_shadow_copies_carry_the_canary_s() -> None:
    sc = scenario(variant_parts=VariantParts(CONTROL, CANARY), shadow=Shadow(share=0.2))
    parts = {e["arm"]: e["variant_parts"] for e in generate(sc)}
    assert parts == {"control": CONTROL, "canary": CANARY, "shadow": CANARY}
    again = Scenario.from_json(sc.to_json())
    assert again == sc and again.variant_parts == VariantParts(CONTROL, CANARY)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_simulate_takes_a_control_only_period_and_parts_and_a_replay_shows_the_bundled_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", "--duration", "12m", "--rate", "30", "--canary-weight", "0.3",
            "--control-only", "4m", "--control-parts", "model=m-1,prompt=p6,tools=t3",
            "--canary-parts", "model=m-2,prompt=p7,tools=t3", "--inject", "error_rate=0.3@6m",
            "--out", str(tmp_path / "e.jsonl")]  # fmt: skip
    assert main(argv) == 0
    assert "canary weight 0.3 from minute 4 (control only before)" in capsys.readouterr().out
    events = _lines(tmp_path / "e.jsonl")
    start = events[0]["ts"]
    assert min(e["ts"] for e in events if e["arm"] == "canary") - start >= 240.0
    assert {(e["arm"], tuple(e["variant_parts"].values())) for e in events} == {
        ("control", ("m-1", "p6", "t3")), ("canary", ("m-2", "p7", "t3"))
    }  # fmt: skip
    assert main(["replay", str(tmp_path / "e.jsonl"), "--out", str(tmp_path / "out")]) == 0
    summary = orjson.loads((tmp_path / "out" / "summary.json").read_bytes())
    view = next(iter(summary["variant_parts"].values()))
    assert view["changed"] == ["model", "prompt"] and view["bundled_change"] is True
    alerts = _lines(tmp_path / "out" / "alerts.jsonl")
    regression = [a for a in alerts if a["rule"] == "guardrail_regression" and a["status"] == "firing"]
    assert regression and "bundled change: model and prompt changed together" in regression[0]["summary"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--canary-parts", "model=m-2"], "give both --control-parts and --canary-parts"),
        (["--control-only", "30m"], "control_only_s: must be at least 0 and shorter than duration_s"),
        (
            ["--control-parts", "my model=m-1", "--canary-parts", "model=m-2"],
            "variant_parts.control: part name",
        ),
    ],
)
def test_simulate_refuses_half_the_parts_bad_parts_or_a_control_only_period_longer_than_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["simulate", "--duration", "10m", *extra, "--out", str(tmp_path / "e.jsonl")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "e.jsonl").exists()


def test_simulate_parts_that_are_not_name_value_pairs_are_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--control-parts", "model", "--out", str(tmp_path / "x")])
    assert info.value.code == 2 and "NAME=VALUE[,NAME=VALUE]" in capsys.readouterr().err
