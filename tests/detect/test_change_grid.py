"""Change detectors fold evidence on an event-time grid, and their thresholds count grid cells.

The false-alarm bounds count updates: h = log(H/α) (onset, Shiryaev–Roberts mixture) or log(K·H/α)
(drift and post-rollout CUSUMs) is only right if the detector makes at most H updates within its
horizon, whatever the batch pace. These tests pin the horizon computation, the thresholds per cohort
slot (its share of the budget), the cadence (at most one fold per grid cell), the exactness of folding
(a cell's pending sum is the sum of its batches' log-likelihood ratios) and the state round trip.
"""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from rollguard.detect.batch_columns import ARM_CANARY, ARM_CONTROL
from rollguard.detect.drift import MULTIPLIERS as DRIFT_ALTERNATIVES
from rollguard.detect.drift import CusumBank, cusum_threshold, grid_updates
from rollguard.detect.monitor import RolloutMonitor
from rollguard.detect.onset import MULTIPLIERS, PairedChangeDetector, split_llr
from rollguard.settings.config import Config, parse_config
from rollguard.settings.engine import EngineSettings


def test_grid_updates_counts_cells_in_a_horizon() -> None:
    assert grid_updates(14400.0, 30.0) == 481.0
    assert grid_updates(30.0, 30.0) == 2.0  # a 30-s window can meet two cells
    assert grid_updates(10.0, 30.0) == 1.0
    with pytest.raises(ValueError):
        grid_updates(100.0, 0.0)


def test_monitor_thresholds_charge_for_grid_cells_not_batches() -> None:
    cfg = Config()
    assert cfg.engine.cusum_step_s == 30.0
    mon = RolloutMonitor("r", cfg)
    assert mon.onset_horizon == 481.0  # 4 h / 30 s + 1, not 4 h / 5 s
    mon.budget.assign(1, 0.25, 2)
    t = mon.means.tests["error_rate"]
    onset = mon.mean_onset.banks["error_rate"]
    whole, segment = mon.budget.alpha(t.spec, 0), mon.budget.alpha(t.spec, 1)
    thresholds = onset.threshold(t.alphas() / 2)
    assert thresholds[0] == pytest.approx(math.log(481.0 / (whole / 2)))
    assert thresholds[1] == pytest.approx(math.log(481.0 / (segment / 2)))
    assert thresholds[2] == math.inf  # a slot not created yet has no alpha
    k = DRIFT_ALTERNATIVES.size  # the drift charts' own ladder
    drift = mon.baselines.drift["error_rate"]
    drift.arm(1, 0.01, 0.005, segment / 2)
    drift_h = cusum_threshold(grid_updates(cfg.engine.drift_horizon_s, 30.0), segment / 2) + math.log(k)
    assert drift.threshold[1] == pytest.approx(drift_h)
    post = mon.baselines.post["error_rate"]
    post.arm(1, 0.01, 0.005, segment / 2)
    post_h = cusum_threshold(grid_updates(cfg.engine.post_rollout_period_s, 30.0), segment / 2) + math.log(k)
    assert post.threshold[1] == pytest.approx(post_h)
    tail = mon.tail_onset.banks["latency_ms.p95"]
    p95 = mon.tails.specs[0]
    assert tail.step_s == 30.0 and tail.threshold(mon.tails.alphas(p95, 2) / 2)[1] == pytest.approx(
        math.log(481.0 / (mon.budget.alpha(p95, 1) / 2))
    )


def test_the_grid_is_at_least_a_batch_and_is_configurable() -> None:
    assert EngineSettings(batch_seconds=60.0).cusum_grid_s == 60.0
    cfg = parse_config("engine: {cusum_step_s: 60}")
    assert RolloutMonitor("r", cfg).onset_horizon == grid_updates(14400.0, 60.0)
    with pytest.raises(ValueError, match="cusum_step_s"):
        parse_config("engine: {cusum_step_s: 0}")


ALPHAS = np.array([0.01, 0.01, 0.01])
NO_OBS = np.zeros((3, 4))


def test_the_paired_detector_folds_at_most_once_per_cell_and_sums_the_cell() -> None:
    bank = PairedChangeDetector(2, 100.0, step_s=30.0)
    use = np.array([True, True])
    rng = np.random.default_rng(1)
    folds = 0
    for now in np.arange(1000.0, 1120.0, 5.0):  # 24 batches of 5 s over five 30-s cells
        llr = rng.normal(0.2, 1.0, (2, MULTIPLIERS.size))
        due = bank.due(now)
        before = bank.updates.copy()
        bank.update_llr(use, llr, NO_OBS[:2], float(now), ALPHAS[:2])
        if due:
            folds += 1
            assert (bank.updates == before + 1).all()
            assert not bank.pending.any()
        else:
            assert (bank.updates == before).all()
    assert folds == 5  # cells 33 (990-1020 s) to 37
    # The folds are the cells' sums: the CUSUM window's evidence is everything folded so far.
    one = PairedChangeDetector(1, 100.0, step_s=30.0)
    for now, x in [(0.0, 1.0), (10.0, 2.0), (20.0, -0.5), (31.0, 0.25)]:
        one.update_llr(np.array([True]), np.full((1, MULTIPLIERS.size), x), np.ones((1, 4)), now, ALPHAS[:1])
    assert one.sr.cusum[0, 0] == pytest.approx(1.0 + 2.0 - 0.5 + 0.25)  # folded at 0 s and 31 s
    assert one.updates[0] == 2 and one.sr.window_of(0).tolist() == [4.0, 4.0, 4.0, 4.0]
    # Shiryaev-Roberts: R_1 = e^1, R_2 = (1 + e^1)·e^(1.75), the same for every alternative
    assert one.sr.log_m[0] == pytest.approx(math.log((1 + math.e) * math.exp(1.75)))


def test_mean_blocks_complete_only_on_the_grid() -> None:
    bank = PairedChangeDetector(1, 100.0, step_s=30.0)
    sums = np.zeros((1, 2, 3))
    sums[0, :, 0] = 40.0
    use = np.array([True])
    assert bank.add_to_block(use, sums, 30, 0.0)[0]  # first cell: due
    bank.update(use, np.array([0.0]), np.array([1.0]), np.array([1.0]), NO_OBS[:1], 0.0, ALPHAS[:1])
    bank.clear_block(use)
    assert not bank.add_to_block(use, sums, 30, 10.0)[0]  # same cell: keeps pooling
    assert bank.block[0, 0, 0] == 40.0
    assert not bank.add_to_block(use, sums, 30, 20.0)[0]
    assert bank.add_to_block(use, sums, 30, 30.0)[0]  # next cell
    assert bank.block[0, 0, 0] == 120.0


def test_drift_bank_grid_and_state_round_trip() -> None:
    bank = CusumBank("bernoulli", 2, 5.0, step_s=30.0)
    bank.arm(0, 0.01, 0.005, 0.01)
    bank.arm(1, 0.02, 0.005, 0.01)
    n = np.array([100.0, 100.0])
    bank.update(np.array([3.0, 1.0]), n, 0.0)
    after_first = bank.stat.copy()
    bank.update(np.array([4.0, 0.0]), n, 10.0)  # same cell: pending only
    assert (bank.stat == after_first).all() and bank.waiting.all()
    restored = CusumBank.from_state(orjson.loads(orjson.dumps(bank.to_state())))
    for b in (bank, restored):
        b.update(np.array([2.0, 2.0]), n, 31.0)
    np.testing.assert_allclose(restored.stat, bank.stat)
    assert restored.last_cell == bank.last_cell == 1.0
    # the folded cell is exactly the sum of its two batches' log LRs
    assert restored.window[0].sum(axis=0).tolist() == bank.window[0].sum(axis=0).tolist()
    reference = CusumBank("bernoulli", 2, 5.0)
    reference.arm(0, 0.01, 0.005, 0.01)
    reference.arm(1, 0.02, 0.005, 0.01)
    reference.update(np.array([3.0, 1.0]), n)
    llr = reference._llr(reference.active, np.array([4.0, 0.0]), n) + reference._llr(
        reference.active, np.array([2.0, 2.0]), n
    )
    np.testing.assert_allclose(bank.stat, np.maximum(0.0, reference.stat + llr))


def test_the_paired_detectors_state_round_trip_keeps_pending_evidence() -> None:
    bank = PairedChangeDetector(3, 481.0, step_s=30.0)
    use = np.array([True, False, True])
    bank.update_llr(use, np.ones((3, MULTIPLIERS.size)), NO_OBS, 0.0, ALPHAS)
    bank.update_llr(use, np.full((3, MULTIPLIERS.size), 0.5), NO_OBS, 10.0, ALPHAS)
    restored = PairedChangeDetector.from_state(orjson.loads(orjson.dumps(bank.to_state())))
    assert orjson.dumps(restored.to_state()) == orjson.dumps(bank.to_state())
    for b in (bank, restored):
        b.update_llr(use, np.full((3, MULTIPLIERS.size), 0.25), NO_OBS, 40.0, ALPHAS)
    np.testing.assert_allclose(restored.sr.log1p_r, bank.sr.log1p_r)
    assert restored.sr.cusum[0, 0] == pytest.approx(1.75)
    assert restored.step_s == 30.0 and (restored.updates == bank.updates).all()


def test_tail_exceedances_are_counted_exactly_not_by_bucket() -> None:
    """Canary values just above T = 1.1·q̂ count as exceedances (a 2%-bucket rounding would drop them)."""
    mon = RolloutMonitor("r", Config())
    spec = next(s for s in mon.tails.specs if s.name == "latency_ms.p95")
    rng = np.random.default_rng(0)
    for arm in (ARM_CONTROL, ARM_CANARY):
        mon.arrays.hist("latency_ms", 0, arm).update_many(rng.lognormal(7.0, 0.5, 2000))
    q = mon.arrays.hists["latency_ms"][0][ARM_CONTROL].quantile(0.95)
    t_bar = 1.1 * q
    # 10 canary values at T·(1 + 1e-6), 90 at T / 2; 200 control values, 20 above q
    canary = [t_bar * (1 + 1e-6)] * 10 + [t_bar / 2] * 90
    control = [q * 1.0001] * 20 + [q / 2] * 180
    values = np.array(canary + control)
    arms = np.array([ARM_CANARY] * 100 + [ARM_CONTROL] * 200)
    rows = arms.astype(np.int64)  # slot 0
    members = np.arange(values.size)
    live = np.zeros(mon.arrays.cap, dtype=bool)
    live[0] = True
    continuous = {
        f: np.full(values.size, np.nan)
        for f in ("latency_ms", "ttft_ms", "tpot_ms", "tokens_out", "cost_usd")
    }
    continuous["latency_ms"] = values
    bank = mon.tail_onset.banks[spec.name]
    mon.tail_onset.update(1000.0, live, rows, members, continuous, mon.arrays, mon.tails, 100)
    expected = split_llr(
        np.array([10.0]), np.array([20.0]), np.array([100.0]), np.array([200.0]), np.ones(1),
        (1.0 + 0.5 * MULTIPLIERS)[None, :],
    )  # fmt: skip
    np.testing.assert_allclose(bank.sr.cusum[0], np.maximum(0.0, expected[0]))
    # 10 of 30 exceedances in the canary is its traffic share: no evidence, the window stays empty
    assert (bank.sr.cusum[0] == 0.0).all() and bank.sr.window_of(0).tolist() == [0.0, 0.0, 0.0, 0.0]
