"""The demo's story on a terminal: the rollout, simulated time passing with a live table of cohorts ×
key metrics, alerts as they fire, commands and their acks, and where every output went.

A story is told from :class:`StoryEvent`s in event-time order — read back from a replay's outputs
(:func:`replay_story`) or taken from Kafka as they happen (``rollguard demo --kafka``) — so both demos
print the same story. On a terminal the table is live (``rich``); otherwise every line is plain text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from rollguard.domain.cohorts import WHOLE, parse_cohort_key
from rollguard.report.records import combined_state
from rollguard.report.words import fmt_effect, fmt_interval, metric_label

KEY_METRICS: Final = ("error_rate", "latency_ms.p95", "quality.eval_score.mean", "cost_usd.mean")
STYLE: Final = {"regressed": "bold red", "non_inferior": "green", "insufficient": "dim"}
GLYPH: Final = {"regressed": "✗", "non_inferior": "✓", "insufficient": "·"}


@dataclass(frozen=True, slots=True)
class StoryEvent:
    """Something that happened at event time ``at``: a timeline ``point``, an ``alert``, a ``command``,
    a ``readiness`` record (pre-flight), an ``audit`` record (an ack or an operator action)."""

    at: float
    kind: str
    record: Mapping[str, Any]


@dataclass(slots=True)
class Intro:
    """What the story says before anything happens."""

    rollout_id: str
    control: str
    canary: str
    canary_weight: float
    segments: list[str]
    injections: list[str]
    traffic: str
    start_ts: float
    duration_s: float


@dataclass(slots=True)
class _State:
    point: Mapping[str, Any] | None = None
    disabled: dict[str, str] = field(default_factory=dict)  # cohort -> command id (applied)
    commands: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    alerts: int = 0
    acks: int = 0


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def replay_story(out_dir: str | Path) -> list[StoryEvent]:
    """A replay's outputs as story events in event-time order (points before what they explain)."""
    d = Path(out_dir)
    order = {"point": 0, "alert": 1, "command": 2, "readiness": 3, "audit": 4}
    events: list[StoryEvent] = []
    for point in _lines(d / "timeline.jsonl"):
        at = point.get("at")
        if isinstance(at, int | float):
            events.append(StoryEvent(float(at), "point", point))
    for alert in _lines(d / "alerts.jsonl"):
        events.append(StoryEvent(float((alert.get("notification") or {}).get("at") or 0.0), "alert", alert))
    for cmd in _lines(d / "commands.jsonl"):
        events.append(StoryEvent(float(cmd["issued_at"]), "command", cmd))
    for rec in _lines(d / "readiness.jsonl"):
        events.append(StoryEvent(float(rec.get("at") or 0.0), "readiness", rec))
    for rec in _lines(d / "audit.jsonl"):
        at = rec.get("at")
        events.append(StoryEvent(float(at) if isinstance(at, int | float) else 0.0, "audit", rec))
    return sorted(events, key=lambda e: (e.at, order[e.kind]))


class StoryTeller:
    """Prints a story to ``console``: live (a table that changes in place) when it is a terminal."""

    def __init__(
        self, console: Console, intro: Intro, *, controller: str = "the controller", replayed: bool = False
    ) -> None:
        self.console = console
        self.replayed = replayed
        self.intro = intro
        self.controller = controller
        self.live_mode = console.is_terminal
        self.state = _State()
        self.progress = Progress(
            TextColumn("[bold]simulated time[/]"), BarColumn(), TextColumn("{task.description}"),
            console=console, auto_refresh=False,
        )  # fmt: skip
        self.task = self.progress.add_task(self._clock(intro.start_ts), total=intro.duration_s)
        self.live: Live | None = None
        self._last_plain_table = -math.inf

    # ------------------------------------------------------------------ framing
    def _t(self, at: float) -> str:
        s = max(at - self.intro.start_ts, 0.0)
        return f"t+{int(s // 60):02d}:{int(s % 60):02d}"

    def _clock(self, at: float) -> str:
        return f"{self._t(at)} of {self.intro.duration_s / 60:g} min"

    def start(self) -> None:
        i = self.intro
        c = self.console
        c.print(
            Text("rollguard demo", style="bold"), Text("— a canary rollout with a regression in one segment")
        )
        c.print(f"[bold]rollout[/] {i.rollout_id}: {i.control} (control) → {i.canary} (canary), "
                f"{i.canary_weight:.0%} of units on the canary")  # fmt: skip
        c.print(f"[bold]segments[/] {'; '.join(i.segments)}")
        for inj in i.injections:
            c.print(f"[bold]injected[/] {inj}")
        c.print(f"[bold]traffic[/] {i.traffic}")
        c.print()
        if self.live_mode:
            self.live = Live(self._render(), console=c, refresh_per_second=8, transient=False)
            self.live.start()

    def stop(self) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.stop()
            self.live = None
        elif self.state.point is not None:
            self.console.print(self._table())

    def say(self, text: str | Text) -> None:
        """A line of the story, above the live table."""
        self.console.print(text)

    # ------------------------------------------------------------------ events
    def on(self, ev: StoryEvent) -> None:
        if ev.kind == "point":
            self._point(ev)
        elif ev.kind == "alert":
            self._alert(ev)
        elif ev.kind == "command":
            self._command(ev)
        elif ev.kind == "audit":
            self._audit(ev)
        elif ev.kind == "readiness":
            self._readiness(ev)
        if self.live is not None:
            self.live.update(self._render())

    def _point(self, ev: StoryEvent) -> None:
        self.state.point = ev.record
        self.progress.update(self.task, completed=ev.at - self.intro.start_ts, description=self._clock(ev.at))
        if not self.live_mode and ev.at - self._last_plain_table >= 300.0 and not ev.record.get("final"):
            self._last_plain_table = ev.at
            self.console.print(f"{self._t(ev.at)}  {self._summary_line()}")

    def _alert(self, ev: StoryEvent) -> None:
        a = ev.record
        self.state.alerts += 1
        status = str(a.get("status"))
        note = a.get("notification") or {}
        style = {"critical": "bold red", "warning": "yellow", "info": "cyan"}.get(str(a.get("severity")), "")
        head = "ALERT" if status == "firing" else f"ALERT {status}"
        line = Text(f"{self._t(ev.at)}  ")
        line.append(f"{head} {a.get('severity')}", style=style)
        delivery = str((a.get("labels") or {}).get("delivery", ""))
        reason = note.get("reason")
        if reason not in (None, "new"):
            delivery += f", {reason}"
        line.append(f" → {a.get('audience')} ({delivery}): ")
        line.append(str(a.get("summary", "")))
        self.say(line)

    def _command(self, ev: StoryEvent) -> None:
        c = ev.record
        cid = str(c.get("command_id"))
        if not c.get("rehearsal"):
            self.state.commands[cid] = c
        scope = ",".join(f"{k}={v}" for k, v in sorted((c.get("scope") or {}).items())) or "the whole rollout"
        line = Text(f"{self._t(ev.at)}  ")
        if c.get("rehearsal"):  # pre-flight: a dry run that changes nothing, not a decision about the canary
            line.append("REHEARSAL", style="bold blue")
            line.append(f" dry-run {c.get('action')} ({cid}): answered dry_run_ok, nothing changes")
            self.say(line)
            return
        line.append("PROPOSAL" if c.get("requires_approval") else "COMMAND", style="bold magenta")
        signed = "signed" if c.get("signature") else "unsigned"
        line.append(
            f" {c.get('action')} for {scope} ({cid}, {signed}, expires {self._t(float(c['expires_at']))})"
        )
        if c.get("approved_by"):
            line.append(f", approved by {c['approved_by']}")
        reason = (c.get("evidence") or {}).get("reason")
        self.say(line)
        if reason:
            self.say(Text(f"           why: {reason}", style="dim"))

    def _readiness(self, ev: StoryEvent) -> None:
        r = ev.record
        line = Text(f"{self._t(ev.at)}  ")
        if r.get("ready"):
            line.append("READY", style="bold green")
            warned = f" (warnings: {', '.join(r['warnings'])})" if r.get("warnings") else ""
            line.append(f" pre-flight checks met{warned}")
        else:
            line.append("NOT READY", style="bold yellow")
            line.append(f" pre-flight: {', '.join(r.get('blocking') or [])} not met")
        self.say(line)

    def _audit(self, ev: StoryEvent) -> None:
        r = ev.record
        if r.get("type") == "ack":
            self.state.acks += 1
            cid = str(r.get("command_id"))
            cmd = self.state.commands.get(cid, {})
            status = str(r.get("status"))
            line = Text(f"{self._t(ev.at)}  ")
            line.append("ACK", style="bold green" if status == "applied" else "bold yellow")
            line.append(f" {status} by {self.controller}: {cmd.get('action', '')} {cid}")
            self.say(line)
            if status == "applied" and cmd.get("action") == "disable_scope":
                scope = ",".join(f"{k}={v}" for k, v in sorted((cmd.get("scope") or {}).items()))
                self.state.disabled[scope] = cid
                kept = "every other segment stays on it"
                self.say(Text(f"           the canary is off for {scope} only; {kept}", style="green"))
                if self.replayed:
                    note = (
                        "           (the simulated traffic was generated in advance and does not follow "
                        "commands; `rollguard demo --kafka` runs a real controller on a flag)"
                    )
                    self.say(Text(note, style="dim"))
        elif r.get("type") == "operator":
            self.say(Text(f"{self._t(ev.at)}  OPERATOR {r.get('by')} {r.get('action')}: {r.get('result')}",
                          style="bold cyan"))  # fmt: skip

    # ------------------------------------------------------------------ views
    def _cohorts(self) -> list[Mapping[str, Any]]:
        snap = (self.state.point or {}).get("snapshot") or {}
        cohorts = list(snap.get("cohorts") or [])
        return sorted(cohorts, key=lambda c: (c["cohort"] != WHOLE, c["cohort"].count(","), c["cohort"]))

    def _cell(self, cohort: str, m: Mapping[str, Any] | None) -> Text:
        if m is None:
            return Text("")
        signals = ((self.state.point or {}).get("signals") or {}).get(cohort, {}).get(m["metric"])
        state, window = combined_state(str(m.get("state")), signals)
        rel, metric = bool(m.get("margin_relative")), str(m["metric"])
        eff = fmt_effect(m.get("effect"), relative=rel, metric=metric)
        interval = fmt_interval(m.get("effect_lo"), m.get("effect_hi"), relative=rel, metric=metric)
        body = f"{GLYPH[state]} {eff}" + (f" {interval}" if interval else "")
        if window == "recent":
            body += " (recent)"
        return Text(body, style=STYLE[state])

    def _table(self) -> Table:
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        table.add_column("cohort", no_wrap=True)
        table.add_column("canary", justify="right", no_wrap=True)
        table.add_column("n ctl/can", justify="right", no_wrap=True)
        for metric in KEY_METRICS:
            table.add_column(metric_label(metric) + " Δ [interval]", no_wrap=True)
        for c in self._cohorts():
            key = c["cohort"]
            if "," in key:
                continue
            by_metric = {m["metric"]: m for m in c["metrics"]}
            off = [d for d in self.state.disabled if _within(key, d)]
            canary = Text("off", style="bold red") if off else Text("on", style="green")
            table.add_row(
                key if key != WHOLE else "whole rollout",
                canary,
                f"{c['n_control']:,}/{c['n_canary']:,}",
                *(self._cell(key, by_metric.get(m)) for m in KEY_METRICS),
            )
        return table

    def _render(self) -> Group:
        return Group(self.progress.get_renderable(), self._table())

    def _summary_line(self) -> str:
        counts: dict[str, int] = {}
        regressed = []
        for c in self._cohorts():
            signals = ((self.state.point or {}).get("signals") or {}).get(c["cohort"], {})
            for m in c["metrics"]:
                state, _ = combined_state(str(m.get("state")), signals.get(m["metric"]))
                counts[state] = counts.get(state, 0) + 1
                if state == "regressed":
                    regressed.append(f"{m['metric']} in {c['cohort']}")
        snap = (self.state.point or {}).get("snapshot") or {}
        text = (f"{len(self._cohorts())} cohorts, {snap.get('phase', '?')}, {snap.get('health', '?')}: "
                f"{counts.get('regressed', 0)} regressed, {counts.get('non_inferior', 0)} non-inferior, "
                f"{counts.get('insufficient', 0)} undecided")  # fmt: skip
        return text + (f" ({'; '.join(regressed)})" if regressed else "")

    # ------------------------------------------------------------------ the end
    def kept_on_canary(self) -> list[str]:
        """The segments that kept the canary, with the canary requests each got."""
        out = []
        for c in self._cohorts():
            key = c["cohort"]
            if key == WHOLE or "," in key or any(_within(key, d) for d in self.state.disabled):
                continue
            out.append(f"{key} ({c['n_canary']:,} canary requests)")
        return out

    def finish(self, outputs: Sequence[tuple[str, str]]) -> None:
        self.stop()
        c = self.console
        c.print()
        if self.state.disabled:
            c.print(f"[bold]Scoped:[/] the canary was turned off for {', '.join(self.state.disabled)} only.")
            kept = self.kept_on_canary()
            if kept:
                c.print(f"[bold]Stayed on the canary:[/] {', '.join(kept)}.")
        elif self.state.commands:
            c.print("[bold]Commands were issued[/] but none was acknowledged as applied.")
        else:
            c.print("[bold]No command:[/] nothing regressed enough to act on.")
        c.print(f"[bold]Final state:[/] {self._summary_line()}")
        c.print()
        c.print("[bold]Where everything went:[/]")
        width = max((len(label) for label, _ in outputs), default=0)
        for label, path in outputs:
            c.print(f"  {label.ljust(width)}  {path}", highlight=False, soft_wrap=True)


def story_console() -> Console:
    """A console for the story: styled on a terminal; plain and wide enough elsewhere that a table row
    stays on one line."""
    if Console().is_terminal:
        return Console(highlight=False)
    return Console(width=200, soft_wrap=True, highlight=False)


def _within(cohort: str, disabled: str) -> bool:
    scope, ds = parse_cohort_key(cohort), parse_cohort_key(disabled)
    return all(scope.get(k) == v for k, v in ds.items())


def play(teller: StoryTeller, events: Iterable[StoryEvent], *, wall_s: float) -> None:
    """Tell ``events`` (sorted) over about ``wall_s`` seconds on a terminal (elsewhere at once)."""
    evs = list(events)
    if not evs:
        return
    span = max(evs[-1].at - teller.intro.start_ts, 1.0)
    pace = wall_s / span if teller.live_mode and wall_s > 0 else 0.0
    started = time.monotonic()
    for ev in evs:
        if pace:
            delay = started + (ev.at - teller.intro.start_ts) * pace - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        teller.on(ev)
