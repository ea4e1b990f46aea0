"""Replay benchmark of alerts and commands: simulator scenarios through ``rollguard replay``.

For each scenario: the injected change, the first alert (minutes after the start of traffic, severity,
rule and scope) and the first command (minutes, action, scope), the number of alert notifications and
commands, and the **new firing notifications per injected incident** (issue 15: what a person is told;
the first notification of every firing, rollguard's own command alerts, repeats, digests and resolves
not counted; goal 1). What it should show: no alert on the A/A scenario, no command when both arms
degrade (an upstream outage), scoped commands for cohort regressions, lower tiers for latency, quality
and cost, and one notification per incident. A simulated controller acks every command ``--auto-ack``
seconds after it is issued.

    .venv/bin/python benchmarks/replay_scenarios.py [--seed 1] [--jobs 2] [--scenarios aa,error_spike_coding]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from rollguard.adapters.replay import replay
from rollguard.settings.config import Config, parse_config
from rollguard.sim import generate, get_scenario, write_jsonl
from rollguard.sim.scenario import Dimension, Injection, Scenario


def whole_latency(sc: Scenario) -> Scenario:
    """The issue-15 storm: the canary's whole latency +50% everywhere from minute 5."""
    sc.injections = [Injection("latency", 1.5, 300.0, label="whole-rollout latency x1.5")]
    return sc


def both_arms_latency(sc: Scenario) -> Scenario:
    """An upstream slowdown from minute 10: latency x1.3 in control and canary alike (drift only)."""
    sc.injections = [
        Injection("latency", 1.3, 600.0, arms=["control", "canary", "shadow"], label="both arms latency x1.3")
    ]
    return sc


def other_segments(sc: Scenario) -> Scenario:
    """Segments named otherwise (product per request, region per unit); errors 1% -> 8% in product=code
    from minute 10."""
    sc.dimensions = [
        Dimension("product", ["search", "assist", "code", "docs"], [0.4, 0.3, 0.2, 0.1]),
        Dimension("region", ["eu", "us", "apac"], [0.5, 0.3, 0.2], per_unit=True),
    ]
    sc.segment_behaviour = {"product=code": {"tokens_out_median": 400.0}}
    sc.behaviour = sc.behaviour.replace({"error_rate": 0.01})
    sc.injections = [
        Injection("error_rate", 0.08, 600.0, cohort={"product": "code"}, label="product=code error 1% -> 8%")
    ]
    return sc


PREPARE = {
    "whole_latency": whole_latency,
    "both_arms_latency": both_arms_latency,
    "other_segments": other_segments,
}

# (label, scenario, builder kwargs, extra config): the default config unless stated.
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("aa", "aa", {}, ""),
    ("error_spike_coding", "error_spike_coding", {}, ""),
    ("error_spike_coding x10", "error_spike_coding", {"error_rate": 0.10}, ""),
    ("format_break_coding", "format_break_coding", {}, ""),
    ("refusal_spike_legal", "refusal_spike_legal", {}, ""),
    ("latency_tail_chat", "latency_tail_billing", {"input_class": "chat"}, ""),
    ("latency_shift_tenant", "latency_shift_tenant", {}, ""),
    ("quality_drop", "quality_drop", {}, ""),
    ("verbose_canary", "verbose_canary", {}, ""),
    ("cost_increase", "cost_increase", {}, ""),
    ("srm_drop", "srm_drop", {}, ""),
    ("latency x1.5 whole rollout", "aa:whole_latency", {}, ""),
    ("both arms latency x1.3", "aa:both_arms_latency", {}, ""),
    ("product=code errors", "aa:other_segments", {}, ""),
    ("both_arms_outage", "both_arms_outage", {}, ""),
    ("both_arms_outage x4", "both_arms_outage", {"timeout_rate": 0.2}, ""),
    ("post_rollout_regression", "post_rollout_regression", {}, ""),
    (
        "ramp (promotion opt-in)",
        "ramp",
        {"promote_at_s": None},
        "promotion: {enabled: true, ramp: [0.01, 0.05, 0.1, 0.25, 0.5, 1.0], min_step_s: 300, cohorts: whole,"
        " metrics: ['*_rate', quality.eval_score.mean]}",
    ),
]


def run_case(
    label: str, name: str, kwargs: dict[str, Any], extra: str, seed: int, auto_ack: float, root: str
) -> dict[str, Any]:
    base, _, prepare = name.partition(":")
    sc = get_scenario(base, seed=seed, **kwargs)
    if prepare:
        sc = PREPARE[prepare](sc)
    d = Path(root) / label.replace(" ", "_").replace("(", "").replace(")", "")
    d.mkdir(parents=True, exist_ok=True)
    write_jsonl(generate(sc), d / "events.jsonl")
    config = parse_config(extra) if extra else Config()
    t = time.perf_counter()
    summary = replay(d / "events.jsonl", config, d, signing_key=b"benchmark-key", auto_ack_s=auto_ack)
    elapsed = time.perf_counter() - t
    alerts = [orjson.loads(x) for x in (d / "alerts.jsonl").read_bytes().splitlines()]
    records = [orjson.loads(x) for x in (d / "commands.jsonl").read_bytes().splitlines()]
    # The pre-flight revert rehearsal (a dry run at the first event) is no decision about the canary.
    commands = [c for c in records if not c.get("rehearsal")]
    regression_alerts = [
        a for a in alerts if a["status"] == "firing" and not a["rule"].startswith("command_")
    ]
    injected = ", ".join(f"{i.label} @ {i.start_s / 60:g} min" for i in sc.injections) or "-"
    new = [a for a in alerts if is_new_firing(a)]
    return {
        "label": label,
        "injected": injected,
        "start": sc.start_ts,
        "events": summary.events,
        "seconds": elapsed,
        "alerts": alerts,
        "first_alert": regression_alerts[0] if regression_alerts else None,
        "commands": commands,
        "first_command": commands[0] if commands else None,
        "incidents": len(sc.injections),
        "new": new,
    }


def is_new_firing(alert: dict[str, Any]) -> bool:
    """The first notification of a firing of a regression, drift or sample-ratio alert: what tells a
    person about something new (repeats, digests, resolves and rollguard's command alerts do not)."""
    return (
        alert["status"] == "firing"
        and alert["notification"]["seq"] == 1
        and alert["notification"]["reason"] != "digest"
        and not alert["rule"].startswith("command_")
    )


def _scope(scope: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(scope.items())) or "*"


def per_incident(r: dict[str, Any]) -> str:
    if not r["incidents"]:
        return "-" if not r["new"] else f"{len(r['new'])} false"
    return f"{len(r['new']) / r['incidents']:g}" if r["new"] else "undetected"


def render(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'scenario':<26} {'injected':<46} {'first alert':<52} {'first command':<40} "
        f"{'alerts':>6} {'cmds':>5} {'new':>4} {'new/incident':>12}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        a, c = r["first_alert"], r["first_command"]
        alert = "none"
        if a is not None:
            minutes = (a["starts_at"] - r["start"]) / 60
            alert = f"t+{minutes:5.1f} {a['severity']:<8} {a['rule']} {_scope(a['scope'])}"
        cmd = "none"
        if c is not None:
            weight = f" w={c['target_weight']:g}" if "target_weight" in c else ""
            cmd = f"t+{(c['issued_at'] - r['start']) / 60:5.1f} {c['action']} {_scope(c['scope'])}{weight}"
        lines.append(
            f"{r['label']:<26} {r['injected'][:46]:<46} {alert[:52]:<52} {cmd[:40]:<40} "
            f"{len(r['alerts']):>6} {len(r['commands']):>5} {len(r['new']):>4} {per_incident(r):>12}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--auto-ack", type=float, default=30.0, help="simulated controller ack delay (s)")
    parser.add_argument("--scenarios", default=None, help="comma-separated labels (default: all)")
    parser.add_argument("--out", default=None, help="keep the replay outputs here")
    args = parser.parse_args(argv)
    wanted = set(args.scenarios.split(",")) if args.scenarios else None
    cases = [c for c in CASES if wanted is None or c[0] in wanted]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or tmp
        t = time.perf_counter()
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [pool.submit(run_case, *c, args.seed, args.auto_ack, root) for c in cases]
            rows = [f.result() for f in futures]
        print(render(rows))
        events = sum(r["events"] for r in rows)
        print(
            f"\n{len(rows)} scenarios, {events} events, seed {args.seed}, {time.perf_counter() - t:.0f} s "
            f"(first alert: condition start; alerts = notifications incl. resolves, repeats, digests)"
        )
    detected = [r for r in rows if r["incidents"] and r["new"]]
    if detected:
        ratios = [len(r["new"]) / r["incidents"] for r in detected]
        print(
            f"new firing notifications per injected incident (goal 1): mean {sum(ratios) / len(ratios):.2f}, "
            f"max {max(ratios):g} over {len(detected)} detected scenarios; "
            f"{sum(1 for r in rows if r['incidents'] and not r['new'])} with an incident not alerted"
        )
        # What one person is told: alerts are routed by audience (on-call, engineering, finance, ...),
        # so an incident that moves two metrics owned by two audiences reaches each of them once.
        heard = [
            max(Counter(str(a.get("audience")) for a in r["new"]).values()) / r["incidents"] for r in detected
        ]
        print(
            f"  the same per audience (the audience told most about one incident): mean "
            f"{sum(heard) / len(heard):.2f}, max {max(heard):g}"
        )
        for r in detected:
            if len(r["new"]) > r["incidents"]:
                print(
                    f"  {r['label']}: "
                    + "; ".join(
                        f"{a['severity']} {a['rule']} {a['labels']['cohort']} → {a.get('audience')}"
                        for a in r["new"][:12]
                    )
                )
    aa = [r for r in rows if r["label"] == "aa"]
    outage = [r for r in rows if r["label"].startswith("both_arms_outage")]
    ok = all(r["first_alert"] is None for r in aa) and all(not r["commands"] for r in outage)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
