"""``rollguard demo``: simulate a rollout with a known regression, replay it, and tell the story.

The demo is the smallest end-to-end run of the product on this machine: a built-in scenario from the
simulator (by default a canary whose error rate in ``input_class=coding`` rises at minute 10) is
written as v1 events, replayed through the core exactly as ``rollguard replay`` would, and the
verdict changes that matter are printed as a timeline, with the files left in the output directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from rollguard.adapters.replay import replay
from rollguard.settings.config import Config
from rollguard.sim import generate, get_scenario, write_jsonl

INTERESTING = {"regressed", "unhealthy", "drifted", "post_rollout", "reset"}
# The demo's default story: a clear regression in one cohort (coding errors 1% -> 8% at minute 10)
# that must be caught in that cohort and not blamed on the others.
DEMO_KNOBS: dict[str, dict[str, Any]] = {"error_spike_coding": {"error_rate": 0.08}}


def run_demo(
    scenario: str, minutes: float, seed: int, out_dir: str | Path, config: Config | None = None
) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sc = get_scenario(scenario, seed=seed, duration_s=minutes * 60.0, **DEMO_KNOBS.get(scenario, {}))
    events_path = out / "events.jsonl"
    n = write_jsonl(generate(sc), events_path)
    print(f"scenario {sc.name!r}: {n} events over {minutes:g} simulated minutes -> {events_path}")
    for inj in sc.injections:
        print(
            f"  injected: {inj.label or inj.metric} at minute {inj.start_s / 60:g} in {inj.cohort or 'all'}"
        )
    summary = replay(events_path, config or Config(), out)
    print(
        f"replayed: {summary.events} events, {summary.verdict_changes} verdict changes"
        f" -> {out / 'verdicts.jsonl'}"
    )
    start = sc.start_ts
    shown = 0
    with open(out / "verdicts.jsonl", "rb") as fh:
        for line in fh:
            change: dict[str, Any] = orjson.loads(line)
            if change["state"] not in INTERESTING:
                continue
            shown += 1
            minute = (change["ts"] - start) / 60.0
            ev = change["evidence"]
            effect = ev.get("relative_effect")
            if effect is None and isinstance(ev.get("control"), float) and ev["control"]:
                effect = ev["canary"] / ev["control"] - 1.0
            detail = f"effect {effect:+.1%}" if isinstance(effect, float) else ""
            print(
                f"  t+{minute:5.1f} min  {change['kind']:<7} {change['state']:<10} {change['cohort']:<28} "
                f"{change['metric']:<22} {detail}"
            )
    if shown == 0:
        print("  no regression, drift or sample-ratio problem detected")
    return 0
