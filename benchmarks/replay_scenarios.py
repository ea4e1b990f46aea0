"""Replay benchmark of alerts and commands: simulator scenarios through ``rollguard replay``.

For each scenario: the injected change, the first alert (minutes after the start of traffic, severity,
rule and scope) and the first command (minutes, action, scope), plus the number of alert notifications
and commands. What it should show: no alert on the A/A scenario, no command when both arms degrade
(an upstream outage), scoped commands for cohort regressions, and lower tiers for latency, quality and
cost. A simulated controller acks every command ``--auto-ack`` seconds after it is issued.

    .venv/bin/python benchmarks/replay_scenarios.py [--seed 1] [--jobs 2] [--scenarios aa,error_spike_coding]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from rollguard.adapters.replay import replay
from rollguard.settings.config import Config, parse_config
from rollguard.sim import generate, get_scenario, write_jsonl

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
    sc = get_scenario(name, seed=seed, **kwargs)
    d = Path(root) / label.replace(" ", "_").replace("(", "").replace(")", "")
    d.mkdir(parents=True, exist_ok=True)
    write_jsonl(generate(sc), d / "events.jsonl")
    config = parse_config(extra) if extra else Config()
    t = time.perf_counter()
    summary = replay(d / "events.jsonl", config, d, signing_key=b"benchmark-key", auto_ack_s=auto_ack)
    elapsed = time.perf_counter() - t
    alerts = [orjson.loads(x) for x in (d / "alerts.jsonl").read_bytes().splitlines()]
    commands = [orjson.loads(x) for x in (d / "commands.jsonl").read_bytes().splitlines()]
    regression_alerts = [
        a for a in alerts if a["status"] == "firing" and not a["rule"].startswith("command_")
    ]
    injected = ", ".join(f"{i.label} @ {i.start_s / 60:g} min" for i in sc.injections) or "-"
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
    }


def _scope(scope: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(scope.items())) or "*"


def render(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'scenario':<26} {'injected':<46} {'first alert':<52} {'first command':<40} "
        f"{'alerts':>6} {'cmds':>5}"
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
            f"{len(r['alerts']):>6} {len(r['commands']):>5}"
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
    aa = [r for r in rows if r["label"] == "aa"]
    outage = [r for r in rows if r["label"].startswith("both_arms_outage")]
    ok = all(r["first_alert"] is None for r in aa) and all(not r["commands"] for r in outage)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
