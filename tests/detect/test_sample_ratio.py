"""The sample-ratio checks: units counted once, on a real split; requests per unit over a follow-up; each
turns the rollout unhealthy once."""

from __future__ import annotations

import numpy as np
import orjson

from core_traffic import T0, request
from rollguard.detect.batch_columns import EventColumns
from rollguard.detect.sample_ratio import FOLLOW_UP_S, SCORE_CAP, SampleRatio
from rollguard.domain.events import Event


def checker(intended: float | None = None, bits: int = 1 << 12) -> SampleRatio:
    return SampleRatio(srm_alpha=0.001, intended_weight=intended, unit_filter_bits=bits, request_alpha=0.001)


def units(arms: list[str], weight: float | None = 0.5, ids: list[str | None] | None = None) -> EventColumns:
    ids = ids if ids is not None else [f"u{i}" for i in range(len(arms))]
    return EventColumns.of([request(float(i), arm, unit_id=u, canary_weight=weight)
                            for i, (arm, u) in enumerate(zip(arms, ids, strict=True))])  # fmt: skip


def test_only_the_first_request_of_each_unit_counts() -> None:
    check = checker()
    check.update(units(["canary", "canary", "control"], ids=["a", "a", "b"]), T0)
    check.update(units(["canary"], ids=["b"]), T0)
    assert (check.test.n, check.test.observed_canary) == (2, 1)


def test_units_on_no_real_split_or_without_an_id_are_not_counted() -> None:
    check = checker()
    check.update(units(["canary", "control"], weight=1.0), T0)
    check.update(units(["control"], weight=0.0, ids=["x"]), T0)
    check.update(units(["control"], ids=[None]), T0)
    check.update(units(["control"], weight=None, ids=["y"]), T0)  # no weight in the event, none configured
    assert check.test.n == 0 and not check.requests.followed


def test_the_configured_weight_stands_in_when_events_carry_none() -> None:
    check = checker(intended=0.2)
    check.update(units(["canary", "control"], weight=None), T0)
    assert check.test.n == 2 and check.test.expected_canary == 0.4


def test_a_wrong_split_marks_the_rollout_unhealthy_once() -> None:
    check = checker(bits=1 << 16)
    rng = np.random.default_rng(1)
    found = []
    for b in range(20):
        arms = ["canary" if x < 0.7 else "control" for x in rng.random(500)]  # 70% canary at weight 0.5
        found += check.update(units(arms, ids=[f"u{b}-{i}" for i in range(500)]), T0)
    assert [(c.kind, c.slot, c.metric, c.state, c.previous) for c in found] == [
        ("srm", 0, "sample_ratio", "unhealthy", "healthy")
    ]
    assert found[0].evidence["p_value"] < 0.001 and check.health.value == "unhealthy"
    assert check.view()["units"] == check.test.n and check.view()["alpha"] == 0.001


def test_a_correct_split_stays_healthy() -> None:
    check = checker(bits=1 << 16)
    rng = np.random.default_rng(2)
    for b in range(20):
        arms = ["canary" if x < 0.5 else "control" for x in rng.random(500)]
        assert check.update(units(arms, ids=[f"u{b}-{i}" for i in range(500)]), T0) == []


def test_the_check_survives_a_state_round_trip() -> None:
    check = checker()
    check.update(units(["canary", "control", "control"]), T0)
    state = orjson.loads(orjson.dumps(check.to_state()))
    assert list(state) == ["srm", "health", "units", "srm_requests"]
    restored = SampleRatio.from_state(state, 0.001, None, 1 << 12, 0.001)
    assert restored.to_state() == check.to_state()
    restored.update(units(["canary"], ids=["u0"]), T0)  # known unit: not counted again
    assert restored.test.n == 3


def traffic(seconds: float, lost: float, seed: int, n_units: int = 20000, sigma: float = 2.0,
            rate: float = 60.0) -> list[list[Event]]:  # fmt: skip
    """30-s batches of requests from units with lognormal(sigma) activity (a few send thousands), a
    tenth of the units on the canary, ``lost`` of the canary's events never logged."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, sigma, n_units)
    canary = rng.random(n_units) < 0.1
    batches = []
    for start in np.arange(0.0, seconds, 30.0):
        n = rng.poisson(rate * 30.0)
        who = rng.choice(n_units, size=n, p=activity / activity.sum())
        ts = np.sort(rng.uniform(start, start + 30.0, n))
        keep = ~canary[who] | (rng.random(n) >= lost)
        arm = ["canary" if canary[u] else "control" for u in who]
        batches.append([request(float(t), a, unit_id=f"u{u}", canary_weight=0.1)
                        for t, u, a, k in zip(ts, who, arm, keep, strict=True) if k])  # fmt: skip
    return batches


def run_requests(batches: list[list[Event]]) -> tuple[SampleRatio, list]:
    check = checker(bits=1 << 20)
    found = []
    for events in batches:
        found += check.update(EventColumns.of(events), events[-1].ts)
    return check, found


def test_heavy_users_on_a_working_split_never_look_like_lost_requests() -> None:
    """A user with thousands of requests is one draw: counting requests as draws would flag this."""
    for seed in range(3):
        check, found = run_requests(traffic(3600.0, 0.0, seed))
        assert found == [] and check.requests.test.n > 10000 and check.health.value == "healthy"


def test_canary_units_that_lose_requests_make_the_rollout_unhealthy() -> None:
    check, found = run_requests(traffic(3 * 3600.0, 0.4, seed=5, sigma=1.0))
    requests = [c for c in found if c.metric == "sample_ratio_requests"]
    assert [c.state for c in requests] == ["unhealthy"]  # (units that lost every request count too)
    ev = requests[0].evidence
    assert (
        ev["requests_per_canary_unit"] < ev["requests_per_control_unit"]
        and ev["p_value"] < ev["alpha"] == 0.001
    )
    assert ev["follow_up_s"] == FOLLOW_UP_S and check.health.value == "unhealthy"


def test_a_units_requests_count_within_its_follow_up_and_up_to_the_cap() -> None:
    check = checker()
    many = [request(float(i), "canary", unit_id="heavy", canary_weight=0.5) for i in range(30)]
    late = [request(FOLLOW_UP_S + 1.0, "canary", unit_id="late", canary_weight=0.5)]
    check.update(EventColumns.of(many + late), T0 + 31.0)
    key = next(iter(check.requests.followed))
    assert check.requests.followed[key][3] == SCORE_CAP
    check.update(EventColumns.of([request(FOLLOW_UP_S + 2.0, "control", unit_id="x", canary_weight=0.5)]),
                 T0 + FOLLOW_UP_S + 2.0)  # fmt: skip
    assert check.requests.test.n == 1 and check.requests.counted[0] == SCORE_CAP  # capped score


def _per_request_traffic(rng: np.random.Generator, n: int, drop_canary: float) -> list[str]:
    """Arms of ``n`` requests split on their own at 10% canary, a share of the canary's lost."""
    arms = ["canary" if x < 0.1 else "control" for x in rng.random(n)]
    keep = rng.random(n)
    return [a for a, k in zip(arms, keep, strict=True) if a == "control" or k >= drop_canary]


def test_a_router_splitting_each_request_makes_requests_without_unit_id_units_of_their_own() -> None:
    rng = np.random.default_rng(4)
    per_request = SampleRatio(0.001, None, 1 << 12, 0.001, per_request=True)
    by_unit = checker()
    found = []
    for _ in range(30):  # 30 minutes at 40 requests/s, 10% of the canary's events lost
        arms = _per_request_traffic(rng, 2400, drop_canary=0.1)
        cols = units(arms, weight=0.1, ids=[None] * len(arms))
        found += per_request.update(cols, T0)
        by_unit.update(cols, T0)
    assert [c.metric for c in found] == ["sample_ratio"], "the lost canary events are seen"
    assert found[0].evidence["observed_ratio"] < 0.95
    assert by_unit.test.n == 0, "by default, requests without unit_id are not counted (a sticky router)"


def test_per_request_units_on_a_working_split_stay_healthy() -> None:
    rng = np.random.default_rng(5)
    check = SampleRatio(0.001, None, 1 << 12, 0.001, per_request=True)
    for _ in range(30):
        arms = _per_request_traffic(rng, 2400, drop_canary=0.0)
        assert not check.update(units(arms, weight=0.1, ids=[None] * len(arms)), T0)
    assert check.test.n > 70_000 and check.health.value == "healthy"
