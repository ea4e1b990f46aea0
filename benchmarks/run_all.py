"""Run every benchmark in ``benchmarks/`` one after the other (``make bench``), each printing its figures
next to the baseline it measures in the same run.

By default each runs at a size that finishes in minutes on 2 cores; ``--full`` uses each benchmark's own
defaults (the sizes quoted in closing notes: ~30 minutes or more). ``--only`` picks some by name.

    .venv/bin/python benchmarks/run_all.py [--full] [--only throughput,detection]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name -> (script, quick arguments): the quick size keeps a baseline beside every figure.
BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "throughput": ("throughput_bench.py", ["--events", "200000", "--repeat", "2"]),
    "detection": ("detection_bench.py", ["--aa", "20", "--seeds", "3", "--post", "4"]),
    "scenarios": ("replay_scenarios.py", []),
    "srm_bound": ("srm_power_bound.py", ["--seeds", "2"]),
    "embeddings": ("embeddings_bench.py", ["--runs", "5", "--delay-runs", "3", "--texts", "128"]),
    "controller": ("controller_bench.py", ["--commands", "100"]),
    "bridge": ("bridge_bench.py", ["--alerts", "200"]),
    "otlp": ("otlp_bench.py", ["--requests", "10000", "--repeat", "2"]),
    # The latency part paces four minutes of traffic at 2,000 events/s: only with --full.
    "worker": ("worker_bench.py", ["--events", "20000", "--recovery-rollouts", "30", "--only", "1,3,4"]),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="each benchmark at its own default size")
    ap.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated: " + ", ".join(BENCHMARKS))
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}")
    failed: list[str] = []
    for name in names:
        script, quick = BENCHMARKS[name]
        cmd = [sys.executable, str(HERE / script), *([] if args.full else quick)]
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"=== {name}: exit {rc} after {time.perf_counter() - start:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
