"""How much a request-level sample-ratio check *can* see when units persist: the information bound.

Issue 15 asks for 10% of canary events lost (the simulator's ``srm_drop``) to be caught within the
scenario when events carry a ``unit_id``. Units, not requests, are the independent draws (a unit's
arm is fixed; its requests are not independent of each other), so any valid test is a randomisation
test over units: with the arms' assignment the only randomness it may use, a score per unit g(N_i)
from its request count, and the statistic

    z = Σ_canary (g_i − ḡ) / sqrt(π(1 − π) Σ (g_i − ḡ)²).

This prints that z at the *end* of each run — a fixed-sample test that knows when to look, which a
sequential check can only approach — for the raw count (the locally most powerful score for a thinned
Poisson with gamma-distributed activity), log(1 + N) and a count capped at 20 (the shape rollguard's
check uses), on ``srm_drop`` and, as the baseline from the same run, on A/A streams of the same shape.
When |z| stays below ~3 on ``srm_drop``, no valid test at a per-rollout α of 0.001 can catch the loss
within the scenario, whatever its design: the bound is set by how unevenly units send requests.

Usage: ``python benchmarks/srm_power_bound.py [--seeds 6] [--minutes 30]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from rollguard.sim import generate, get_scenario

SCORES = {
    "count": lambda n: n,
    "log(1+N)": np.log1p,
    "min(N, 20)": lambda n: np.minimum(n, 20.0),
}


def unit_counts(scenario: str, seed: int, minutes: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Requests per unit, whether each unit is on the canary, and the canary weight."""
    sc = get_scenario(scenario, seed=seed, duration_s=minutes * 60.0)
    units: dict[str, list[int]] = {}
    for e in generate(sc):
        if e.get("arm") not in ("canary", "control") or e.get("unit_id") is None:
            continue
        entry = units.setdefault(str(e["unit_id"]), [0, int(e["arm"] == "canary")])
        entry[0] += 1
    counts = np.array([v[0] for v in units.values()], dtype=float)
    canary = np.array([v[1] for v in units.values()], dtype=bool)
    return counts, canary, float(sc.weights[0].weight)


def randomisation_z(score: np.ndarray, canary: np.ndarray, pi: float) -> float:
    centred = score - score.mean()
    return float(centred[canary].sum() / np.sqrt(pi * (1.0 - pi) * (centred**2).sum()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--minutes", type=float, default=30.0)
    args = ap.parse_args(argv)
    print(f"srm information bound: end-of-run randomisation z over units ({args.minutes:g} min, 40 req/s, "
          f"10% canary, {args.seeds} seeds; srm_drop loses 10% of canary events)")  # fmt: skip
    for scenario in ("srm_drop", "aa"):
        rows: dict[str, list[float]] = {name: [] for name in SCORES}
        for seed in range(args.seeds):
            counts, canary, pi = unit_counts(scenario, seed, args.minutes)
            for name, fn in SCORES.items():
                rows[name].append(randomisation_z(fn(counts), canary, pi))
        print(f"  {scenario:9s} ({len(counts):,} units, {int(canary.sum()):,} on the canary in the last run)")
        for name, zs in rows.items():
            z = np.array(zs)
            extreme = z[np.argmax(np.abs(z))]
            print(f"    {name:11s} z: median {np.median(z):+.2f}, most extreme {extreme:+.2f}, "
                  f"|z| >= 3.29 (two-sided 0.001) in {int((np.abs(z) >= 3.29).sum())}/{len(z)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
