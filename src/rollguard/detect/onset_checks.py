"""Onset checks of the canary phase: each metric's paired change detector fed from every closed batch.

The statistic is :class:`~rollguard.detect.onset.PairedChangeDetector` (see :mod:`rollguard.detect.onset` for
why it catches a regression that starts mid-canary and why a shift that hits both arms cancels). This
module turns a batch into its evidence, before the batch joins the running statistics (the plug-in
control rate, the tail threshold and the block variance are read first, so each increment is a
conditional likelihood ratio):

- :class:`MeanOnset`, means and rates: how a batch's events split between the arms given the control's
  running rate (rates), or blocks of at least ``BLOCK_MIN`` values per arm (means);
- :class:`TailOnset`, tails: exceedances of the control's quantile, counted exactly, event by event.

An alarm marks the metric regressed in that cohort (sticky), with half of the test's α in that cohort,
and its evidence quotes the recent window that decided: canary and control over the same seconds.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from rollguard.detect.arrays import BatchArrays, RolloutArrays
from rollguard.detect.batch_columns import ARM_CANARY, ARM_CONTROL, FloatArray, IntArray
from rollguard.detect.comparisons import absolute_margin
from rollguard.detect.mean_tests import REGRESSED, MeanTest, MeanTests
from rollguard.detect.onset import MULTIPLIERS, PairedChangeDetector, split_llr
from rollguard.detect.slot_change import SlotChange, round_evidence
from rollguard.detect.tail_tests import TailTests

# Mean contrasts of the onset CUSUM are formed from blocks of at least this many values per arm.
BLOCK_MIN: Final = 30

BoolArray = npt.NDArray[np.bool_]


class DetectorBanks:
    """Per-metric onset detectors, each with a row per cohort slot: they grow and forget slots together."""

    banks: dict[str, PairedChangeDetector]

    def grow(self, cap: int) -> None:
        for bank in self.banks.values():
            bank.grow(cap)

    def forget(self, slot: int) -> None:
        for bank in self.banks.values():
            bank.reset(slot)


class MeanOnset(DetectorBanks):
    """The paired onset detector of every mean-type metric, by metric name."""

    def __init__(self, horizon_updates: float, grid_s: float) -> None:
        self.horizon = horizon_updates
        self.grid_s = grid_s
        self.banks: dict[str, PairedChangeDetector] = {}

    def add(self, test: MeanTest, cap: int) -> None:
        self.banks[test.spec.name] = PairedChangeDetector(cap, self.horizon, self.grid_s)

    def update(
        self,
        now: float,
        live: BoolArray,
        batch: BatchArrays,
        arrays: RolloutArrays,
        tests: MeanTests,
        min_n: int,
    ) -> list[SlotChange]:
        """Fold one batch (not yet in ``arrays``) into every test's CUSUM; the slots that regressed."""
        out: list[SlotChange] = []
        for name, t in tests.tests.items():
            spec = t.spec
            bank = self.banks[name]
            kt, nt_b = batch.values(spec, ARM_CANARY)
            kc, nc_b = batch.values(spec, ARM_CONTROL)
            n_t, mean_t, var_t = arrays.read(spec, ARM_CANARY)
            n_c, mean_c, var_c = arrays.read(spec, ARM_CONTROL)
            use = live & (nt_b > 0) & (nc_b > 0) & (n_t >= min_n) & (n_c >= min_n) & ~np.isnan(t.tau2)
            use &= t.state != REGRESSED
            if not use.any():
                continue
            s = 1.0 if spec.higher_is_worse else -1.0
            lam = 1.0 + s * (spec.margin if spec.relative else 0.0)
            m_abs = absolute_margin(spec)
            step = np.sqrt(np.where(np.isnan(t.tau2), 1.0, t.tau2))
            alphas = t.alphas() / 2
            if spec.kind == "rate":
                # How this batch's events split between the arms, given the control's running rate.
                p_c = (mean_c * n_c + 1.0) / (n_c + 2.0)
                base = lam * p_c + m_abs
                r0 = base / p_c
                r_alt = (base[:, None] + step[:, None] * MULTIPLIERS[None, :]) / p_c[:, None]
                obs = np.stack([nt_b, kt, nc_b, kc], axis=1)
                fired = bank.update_llr(use, split_llr(kt, kc, nt_b, nc_b, r0, r_alt), obs, now, alphas)
            else:
                ready = bank.add_to_block(use, batch.sums(spec), BLOCK_MIN, now)
                if not ready.any():
                    continue
                contrast, variance = _block_contrast(bank.block, s, lam, m_abs, var_t, var_c)
                block = bank.block
                obs = np.stack([block[:, ARM_CANARY, 0], block[:, ARM_CANARY, 1], block[:, ARM_CONTROL, 0],
                                block[:, ARM_CONTROL, 1]], axis=1)  # fmt: skip
                fired = bank.update(ready, contrast, variance, step, obs, now, alphas)
                bank.clear_block(ready)
            for slot in np.flatnonzero(fired).tolist():
                prev = t.mark_regressed(slot)
                ev = bank.evidence(slot, float(step[slot]), float(alphas[slot]))
                ev.update({
                    "n_control": int(n_c[slot]), "n_canary": int(n_t[slot]),
                    "control": float(mean_c[slot]), "canary": float(mean_t[slot]),
                    "alpha": float(alphas[slot]), "margin": spec.margin,
                    "margin_relative": spec.relative,
                })  # fmt: skip
                out.append(SlotChange("verdict", slot, name, "regressed", prev, round_evidence(ev)))
        return out

    def to_state(self) -> dict[str, dict[str, Any]]:
        return {name: bank.to_state() for name, bank in self.banks.items()}

    @classmethod
    def from_state(cls, state: dict[str, dict[str, Any]], horizon_updates: float, grid_s: float) -> MeanOnset:
        onset = cls(horizon_updates, grid_s)
        onset.banks = {name: PairedChangeDetector.from_state(saved) for name, saved in state.items()}
        return onset


def _block_contrast(
    block: FloatArray, s: float, lam: float, m_abs: float, var_t: FloatArray, var_c: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Each completed block's oriented paired contrast and its variance, σ² being the larger of the
    arms' running variances and the block's own pooled variance."""
    with np.errstate(divide="ignore", invalid="ignore"):
        nb_c, nb_t = block[:, ARM_CONTROL, 0], block[:, ARM_CANARY, 0]
        xc = block[:, ARM_CONTROL, 1] / np.maximum(nb_c, 1.0)
        xt = block[:, ARM_CANARY, 1] / np.maximum(nb_t, 1.0)
        contrast = s * xt - s * lam * xc - m_abs
        n_all = nb_c + nb_t
        s_all = block[:, :, 1].sum(axis=1)
        pooled = (block[:, :, 2].sum(axis=1) - s_all * s_all / np.maximum(n_all, 1.0)) / np.maximum(
            n_all - 1.0, 1.0
        )
        sigma2 = np.maximum(np.maximum(var_t, var_c), pooled)
        variance = sigma2 * (1.0 / nb_t + lam * lam / nb_c)
    return contrast, variance


class TailOnset(DetectorBanks):
    """The paired onset detector of every tail metric on exceedances, by metric name.

    Per batch, canary responses above T = (1 + r)·q̂_p(control) + m against control responses above
    q̂_p(control): under "canary tail no worse than the margin" the canary exceeds T no more often than
    the control exceeds q̂, so how the batch's exceedances split between the arms is binomial with the
    canary's traffic share at most (rate ratio 1); a shift that hits both arms raises the control's
    count at least as much. q̂ is read from the control's histogram as it stood before this batch (a
    predictable threshold); the batch's raw values are then compared with q̂ and T exactly, so
    histogram bucketing costs this test nothing: the effective margin is exactly the configured one.
    Alternatives: exceedance ratios 1 + 0.5·{1, 2, 4, …, 32}.
    """

    def __init__(self, banks: dict[str, PairedChangeDetector]) -> None:
        self.banks = banks

    @classmethod
    def for_tails(cls, tails: TailTests, horizon_updates: float, grid_s: float, cap: int) -> TailOnset:
        """One detector per tail metric, each at half the tail's α (the other half: its cumulative
        test)."""
        return cls({spec.name: PairedChangeDetector(cap, horizon_updates, grid_s) for spec in tails.specs})

    def update(
        self,
        now: float,
        live: BoolArray,
        rows: IntArray,
        members: IntArray,
        continuous: dict[str, FloatArray],
        arrays: RolloutArrays,
        tails: TailTests,
        min_n: int,
    ) -> list[SlotChange]:
        """Fold one batch (``rows``/``members``: its cohort memberships, ``continuous``: its value
        columns, NaN where the request did not succeed) before it joins the histograms."""
        out: list[SlotChange] = []
        cap = live.size
        slot_of = rows // 2
        is_canary = (rows % 2) == ARM_CANARY
        n_rows = cap * 2
        for spec in tails.specs:
            assert spec.quantile is not None
            bank = self.banks[spec.name]
            r = spec.margin if spec.relative else 0.0
            m = absolute_margin(spec)
            q = np.full(cap, np.inf)
            for slot in np.flatnonzero(live).tolist():
                pair = arrays.hists[spec.field][slot]
                if pair is None or tails.is_regressed(slot, spec.name):
                    continue
                if pair[ARM_CONTROL].count < min_n or pair[ARM_CANARY].count < min_n:
                    continue
                q[slot] = pair[ARM_CONTROL].quantile(spec.quantile)
            if not np.isfinite(q).any():
                continue
            values = continuous[spec.field][members]
            present = ~np.isnan(values)
            bar = np.where(is_canary, (1.0 + r) * q[slot_of] + m, q[slot_of])
            hit = (present & (values > bar)).astype(np.float64)
            above = np.bincount(rows, weights=hit, minlength=n_rows).astype(np.float64).reshape(cap, 2)
            n = np.bincount(rows, weights=present, minlength=n_rows).astype(np.float64).reshape(cap, 2)
            use = np.isfinite(q) & (n[:, ARM_CANARY] > 0) & (n[:, ARM_CONTROL] > 0)
            if not use.any():
                continue
            # Under H0 the canary exceeds T no more often than the control exceeds q: ratio 1.
            r_alt = np.broadcast_to(1.0 + 0.5 * MULTIPLIERS, (cap, MULTIPLIERS.size))
            llr = split_llr(
                above[:, ARM_CANARY], above[:, ARM_CONTROL], n[:, ARM_CANARY], n[:, ARM_CONTROL],
                np.ones(cap), r_alt,
            )  # fmt: skip
            obs = np.stack([n[:, ARM_CANARY], above[:, ARM_CANARY], n[:, ARM_CONTROL], above[:, ARM_CONTROL]],
                           axis=1)  # fmt: skip
            alphas = tails.alphas(spec, cap) / 2
            fired = bank.update_llr(use, llr, obs, now, alphas)
            for slot in np.flatnonzero(fired).tolist():
                pair = arrays.hists[spec.field][slot]
                assert pair is not None
                prev = tails.mark_regressed(slot, spec.name)
                ev = bank.evidence(slot, 0.5, float(alphas[slot]))
                # The window's estimates are exceedance shares: canary above T, control above q.
                ev["recent_exceed_canary"] = ev.pop("recent_canary")
                ev["recent_exceed_control"] = ev.pop("recent_control")
                ev.update({
                    "n_control": int(pair[ARM_CONTROL].count), "n_canary": int(pair[ARM_CANARY].count),
                    "control": pair[ARM_CONTROL].quantile(spec.quantile),
                    "canary": pair[ARM_CANARY].quantile(spec.quantile), "quantile": spec.quantile,
                    "threshold_value": float(q[slot]),
                    "alpha": float(alphas[slot]), "margin": spec.margin,
                    "margin_relative": spec.relative, "observation": "tail exceedance share",
                })  # fmt: skip
                out.append(SlotChange("verdict", slot, spec.name, "regressed", prev, round_evidence(ev)))
        return out

    def to_state(self) -> dict[str, dict[str, Any]]:
        return {name: bank.to_state() for name, bank in self.banks.items()}

    @classmethod
    def from_state(cls, state: dict[str, dict[str, Any]]) -> TailOnset:
        return cls({name: PairedChangeDetector.from_state(saved) for name, saved in state.items()})
