"""Throughput and memory of the core (issue 4, "Prove it" 3 and 4).

Throughput: ``rollguard replay`` over a 1M-event file (4 concurrent rollouts of the simulator's default
traffic at 100 requests/s each, every default cohort and metric on), next to a loop that only parses
the same file with the same JSON library (msgspec, or orjson if faster) — the floor. Both run in this
process, one after the other, so the printed ratio is robust to how busy the machine is; the absolute
figures are not.

Memory: bytes per (cohort, metric) state after the same 1M events, both as JSON state (what a changelog
topic would carry) and as resident numpy arrays and histograms.

Both rates are printed by wall clock and by this process's CPU time: on a shared machine the CPU time
is the fairer "one core" figure, since waiting for the core is not the replay's cost.

Usage: ``python benchmarks/throughput_bench.py [--events 1000000] [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import msgspec
import orjson

from rollguard.adapters.replay import replay
from rollguard.detect.engine import Engine
from rollguard.domain.events import Event, parse_event
from rollguard.settings.config import Config
from rollguard.sim import generate, get_scenario, merge_streams, write_jsonl


def make_file(path: Path, n_events: int, rollouts: int = 4, rate: float = 100.0) -> int:
    duration = n_events / (rollouts * rate) * 1.02
    streams = [
        generate(get_scenario("aa", seed=100 + i, duration_s=duration, rate_per_s=rate))
        for i in range(rollouts)
    ]
    events = merge_streams(*streams)

    def capped() -> object:
        for i, ev in enumerate(events):
            if i >= n_events:
                return
            yield ev

    return write_jsonl(capped(), path)  # type: ignore[arg-type]


Rate = tuple[float, float]  # events per second of wall time, and of this process's CPU time


def _timed(run: Callable[[], int]) -> Rate:
    wall, cpu = time.perf_counter(), time.process_time()
    n = run()
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def floor(path: Path, loads: Callable[[bytes], object] = msgspec.json.decode) -> Rate:
    """Lines per second of a loop that only decodes each line (msgspec: what the event path uses)."""

    def run() -> int:
        n = 0
        with open(path, "rb") as fh:
            for line in fh:
                loads(line)
                n += 1
        return n

    return _timed(run)


def replay_rate(path: Path, out: Path, n: int) -> Rate:
    def run() -> int:
        summary = replay(path, Config(), out)
        assert summary.events == n, summary
        return n

    return _timed(run)


def memory(path: Path) -> None:
    engine = Engine(Config())
    with open(path, "rb") as fh:
        for line in fh:
            ev = parse_event(line)
            assert isinstance(ev, Event)
            engine.process(ev)
    engine.flush()
    cohort_metrics = 0
    json_bytes = 0
    resident = 0
    for monitor in engine.monitors.values():
        cohorts = len(list(monitor.membership.live()))
        metrics = len(monitor.means.tests) + len(monitor.tails.specs)
        cohort_metrics += cohorts * metrics
        json_bytes += len(orjson.dumps(monitor.to_state()))
        stats = monitor.arrays
        arrays: list[Any] = [stats.counts, stats.moments, *stats.quality.values()]
        for name, t in monitor.means.tests.items():
            drift, post = monitor.baselines.drift[name], monitor.baselines.post[name]
            arrays += [t.state, t.tau2, drift.stat, post.stat, monitor.mean_onset.banks[name].stat]
        resident += sum(a.nbytes for a in arrays)
        resident += sum(
            h.counts.nbytes for pairs in stats.hists.values() for pair in pairs if pair for h in pair
        )
        resident += monitor.sample_ratio.units.to_state()["bits"] // 8
    print(f"  rollouts {len(engine.monitors)}, (cohort, metric) states {cohort_metrics}")
    print(
        f"  JSON state: {json_bytes / 1e6:.2f} MB in all = "
        f"{json_bytes / cohort_metrics:,.0f} bytes per (cohort, metric)"
    )
    print(
        f"  resident arrays + histograms + unit filters: {resident / 1e6:.2f} MB = "
        f"{resident / cohort_metrics:,.0f} bytes per (cohort, metric) "
        f"(incl. the fixed 128 KiB unit filter of each rollout)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2, help="alternate floor/replay runs; the best of each")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        t0 = time.perf_counter()
        n = make_file(path, args.events)
        print(
            f"rollguard throughput: {n} events ({path.stat().st_size / 1e6:.0f} MB) written in "
            f"{time.perf_counter() - t0:.0f}s; 4 rollouts x 100 req/s, all default cohorts and metrics"
        )
        floors: list[Rate] = []
        rates: list[Rate] = []
        for i in range(args.repeat):
            # The floor is the faster of the two JSON libraries rollguard uses (the event path
            # decodes with msgspec and falls back on orjson), so the ratio is never flattered.
            floors.append(max(floor(path), floor(path, orjson.loads)))
            rates.append(replay_rate(path, Path(tmp) / f"out{i}", n))
            print(
                f"  run {i + 1}: parse-only floor {floors[-1][0]:,.0f} events/s "
                f"({floors[-1][1]:,.0f} per CPU-second), rollguard replay {rates[-1][0]:,.0f} events/s "
                f"({rates[-1][1]:,.0f} per CPU-second), ratio {rates[-1][0] / floors[-1][0]:.3f}"
            )
        for j, clock in enumerate(("wall clock", "CPU time of this process (one core)")):
            best_floor, best = max(f[j] for f in floors), max(r[j] for r in rates)
            print(
                f"  best by {clock}: floor {best_floor:,.0f} events/s; replay {best:,.0f} events/s "
                f"(ratio {best / best_floor:.3f}; goal 50,000 events/s)"
            )
        print("memory after the same events:")
        memory(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
