"""``rollguard demo``: a rollout with a known regression, told as a story on the terminal.

The smallest end-to-end run of the product on this machine, with nothing to set up: a built-in scenario
from the simulator (by default a 10% canary whose error rate in ``input_class=coding`` rises from 1% to
8% at minute 10) is written as v1 events and replayed through the core exactly as ``rollguard replay``
would, with a controller that acknowledges every command 30 s after it was issued (replay's
``--auto-ack``). The story is then told from replay's outputs in event-time order: simulated time
passing with a live table of cohorts × key metrics (state, effect and interval), alerts as they fire,
the scoped command and its ack, which segments stayed on the canary, and where every output went —
including the HTML report (``rollguard report``). ``--kafka`` runs the same loop on a real broker
(:mod:`rollguard.demo_kafka`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console

from rollguard.adapters.replay import replay
from rollguard.report import write_report
from rollguard.settings.config import Config
from rollguard.sim import Scenario, generate, get_scenario, write_jsonl
from rollguard.terminal.progress import file_progress
from rollguard.terminal.story import Intro, StoryTeller, play, replay_story, story_console

# The demo's default story: a clear regression in one cohort (coding errors 1% -> 8% at minute 10)
# that must be caught in that cohort and not blamed on the others.
DEMO_KNOBS: dict[str, dict[str, Any]] = {"error_spike_coding": {"error_rate": 0.08}}
AUTO_ACK_S = 30.0  # the demo's controller applies each command this long after it was issued
TIMELINE_EVERY_S = 30.0
STORY_WALL_S = 20.0  # on a terminal, simulated time is played back over about this many seconds


def demo_scenario(scenario: str, minutes: float, seed: int, **knobs: Any) -> Scenario:
    return get_scenario(
        scenario, seed=seed, duration_s=minutes * 60.0, **{**DEMO_KNOBS.get(scenario, {}), **knobs}
    )


def intro_of(sc: Scenario, n_events: int, where: str, *, approximate: bool = False) -> Intro:
    """What the story says about the scenario before anything happens."""
    segments = []
    for d in sc.dimensions:
        shares = (f"{v} {s / sum(d.shares):.0%}" for v, s in zip(d.values, d.shares, strict=True))
        segments.append(f"{d.name} ({', '.join(shares)})")
    injections = []
    for inj in sc.injections:
        where_ = ",".join(f"{k}={v}" for k, v in sorted(inj.cohort.items())) or "every segment"
        change = {"set": f"set to {inj.value:g}", "multiply": f"×{inj.value:g}", "add": f"{inj.value:+g}"}
        injections.append(
            f"{inj.label or inj.metric}: {inj.metric} {change[inj.effective_mode]} from minute "
            f"{inj.start_s / 60:g} in {where_}, {' and '.join(inj.arms)} only"
        )
    weight = sc.weights[0].weight if sc.weights else 0.0
    return Intro(
        rollout_id=sc.rollout_id,
        control=sc.control_variant,
        canary=sc.canary_variant,
        canary_weight=weight,
        segments=segments,
        injections=injections or ["nothing (an A/A rollout: any alarm is a false one)"],
        traffic=f"{sc.arrivals.rate_per_s:g} requests/s for {sc.duration_s / 60:g} simulated minutes "
        f"({'about ' if approximate else ''}{n_events:,} events) -> {where}",
        start_ts=sc.start_ts,
        duration_s=sc.duration_s,
    )


def outputs_of(out: Path, report: Path | None) -> list[tuple[str, str]]:
    """Every file the demo wrote, with what it holds."""
    described = [
        ("events.jsonl", "the simulated traffic (v1 events)"),
        ("verdicts.jsonl", "every verdict change, with its evidence"),
        ("alerts.jsonl", "alert notifications (firing, repeat, resolve)"),
        ("commands.jsonl", "rollout commands (command v1)"),
        ("audit.jsonl", "acks and operator actions applied"),
        ("timeline.jsonl", "each rollout's snapshot every 30 s of event time"),
        ("rejected.jsonl", "malformed lines (none expected)"),
        ("summary.json", "counts"),
    ]
    rows = []
    for name, what in described:
        path = out / name
        if path.exists():
            rows.append((what, f"{path} ({path.stat().st_size:,} bytes)"))
    if report is not None:
        rows.append(("the HTML report (open it in a browser)", f"{report} ({report.stat().st_size:,} bytes)"))
    return rows


def run_demo(
    scenario: str,
    minutes: float,
    seed: int,
    out_dir: str | Path,
    config: Config | None = None,
    *,
    console: Console | None = None,
    wall_s: float = STORY_WALL_S,
) -> int:
    # Plain lines when stdout is not a terminal: wide enough that a table row stays one line.
    console = console or story_console()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    sc = demo_scenario(scenario, minutes, seed)
    events_path = out / "events.jsonl"
    with console.status("simulating the rollout's traffic", spinner="dots"):
        n = write_jsonl(generate(sc), events_path)
    teller = StoryTeller(
        console,
        intro_of(sc, n, str(events_path)),
        controller="the demo's controller (auto-ack)",
        replayed=True,
    )
    with file_progress(events_path, "replaying through the core") as tick:
        summary = replay(
            events_path,
            config or Config(),
            out,
            auto_ack_s=AUTO_ACK_S,
            timeline_every_s=TIMELINE_EVERY_S,
            progress=tick,
        )
    report = write_report(out)
    teller.start()
    play(teller, replay_story(out), wall_s=wall_s)
    teller.finish(outputs_of(out, report))
    console.print(
        f"\nreplayed {summary.events:,} events: {summary.verdict_changes} verdict changes, "
        f"{summary.alerts} alert notification(s), {summary.commands} command(s); "
        f"{time.monotonic() - started:.1f} s"
    )
    return 0
