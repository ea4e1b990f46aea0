"""Replay a file of v1 events through the core: the offline twin of the streaming worker.

``rollguard replay EVENTS.jsonl --out DIR`` writes ``DIR/verdicts.jsonl`` (every verdict change with its
evidence and the event time at which it happened), ``DIR/rejected.jsonl`` (malformed lines with the
line number, field and reason — never their content; from the inputs file also the stray operator
actions, which the worker dead-letters with the same reason) and ``DIR/summary.json``. The same input
gives the same output byte for byte: nothing here reads the clock, and JSON keys are written sorted.

Each rollout runs through its own :class:`~rollguard.pipeline.rollout.RolloutPipeline` (detection, policy,
its own event-time clock), exactly as in the streaming worker:
``DIR/alerts.jsonl`` holds every alert notification (firing, repeat, resolve, digest), ``DIR/commands.jsonl``
every rollout command (the revert rehearsal too: ``dry_run`` and ``rehearsal`` true), ``DIR/readiness.jsonl``
every readiness record (``kind: readiness``: the other record type of the control topic, written whenever a
rollout's pre-flight readiness changed), ``DIR/audit.jsonl`` what was done with acks and operator actions.
``summary.json`` ends with each rollout's readiness. An eval gate report the config names for a rollout
(``readiness.eval_gate_reports``) is read before the first event (:mod:`.eval_gate_reports`). Acks and
operator actions can be replayed too (``inputs``: JSON lines, each applied at its ``at``/``issued_at``), and
``auto_ack_s`` plays a controller that applies every command that many seconds after it was issued.
With ``timeline_every_s``, ``DIR/timeline.jsonl`` also holds each rollout's dashboard point (snapshot,
policy status, verdict states) every that many seconds of its event time, and a last one at the end
(:mod:`rollguard.pipeline.timeline`); ``progress`` is told the bytes and lines read so far (progress
bars).

The file may also hold OpenTelemetry traces instead of v1 events: one OTLP JSON export request per line,
as the Collector's file exporter writes them (``fmt="otlp-json"``, or ``"auto"``: told by the first
line). Its GenAI inference spans are translated to v1 events by :mod:`rollguard.otlp` — the translator
the streaming worker runs on the OTLP topic — with the config's ``otlp`` section; a line that is not an
OTLP payload, and a span that cannot be read or mapped, go to ``rejected.jsonl`` (line, trace and span
ids, field, reason), and ``summary.json`` counts what became of the spans under ``otlp``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from rollguard.adapters.eval_gate_reports import read_eval_gates
from rollguard.domain.events import Event, EventError, excerpt, parse_event
from rollguard.otlp.translate import OtlpTranslator, Translation
from rollguard.pipeline.pipelines import Pipelines
from rollguard.pipeline.rollout import Step
from rollguard.pipeline.timeline import Timeline, timeline_point
from rollguard.settings.config import Config

_DUMP = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
FORMATS = ("auto", "v1", "otlp-json")


@dataclass(slots=True)
class ReplaySummary:
    lines: int = 0
    events: int = 0
    rejected: int = 0
    verdict_changes: int = 0
    late_events: int = 0
    rollouts: int = 0
    alerts: int = 0
    commands: int = 0
    readiness_records: int = 0
    inputs_rejected: int = 0
    duplicates: int = 0
    otlp: dict[str, int] | None = None  # OTLP input: what became of the spans (translator counters)


#: Sets aside one line of the inputs file: (line, field, reason, contract — or None when no worker's
#: dead letter has an equivalent).
Reject = Callable[[int, str, str, str | None], None]


class _Inputs:
    """Acks and operator actions waiting for their event time (from a file, or auto-acks)."""

    def __init__(self, auto_ack_s: float | None, reject: Reject) -> None:
        self.auto_ack_s = auto_ack_s
        self.reject = reject
        self.heap: list[tuple[float, int, int, dict[str, Any]]] = []  # (at, seq, line, item)
        self.seq = 0

    def load(self, path: str | Path) -> None:
        """Queue the file's acks and operator actions; a line that is neither is rejected with a reason.

        What an ack or action *says* is judged by the policy (which audits what it ignored); here only
        the shape that lets it be queued: a JSON object that is an operator action or an ack.
        """
        with open(path, "rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                item, field, reason = _input_item(line)
                if item is None:
                    self.reject(lineno, field, reason, None)
                    continue
                at = item.get("issued_at") if "action" in item else item.get("at")
                # Applied at its own time; one without a usable time is applied at once.
                when = float(at) if isinstance(at, int | float) and not isinstance(at, bool) else -math.inf
                self.push(when if math.isfinite(when) else -math.inf, item, lineno)

    def push(self, at: float, item: dict[str, Any], lineno: int = 0) -> None:
        heapq.heappush(self.heap, (at, self.seq, lineno, item))
        self.seq += 1

    def on_command(self, command: dict[str, Any]) -> None:
        if self.auto_ack_s is None or command.get("requires_approval") or "command_id" not in command:
            return
        at = float(command["issued_at"]) + self.auto_ack_s
        status = "dry_run_ok" if command.get("dry_run") else "applied"
        self.push(
            at,
            {
                "schema_version": 1,
                "command_id": command["command_id"],
                "rollout_id": command["rollout_id"],
                "status": status,
                "at": at,
                "controller": "replay-auto-ack",
            },
        )

    def due(self, now: float, pipelines: Pipelines) -> Step:
        """Apply every input whose time has come (in time order), each to its own rollout.

        An operator action for a rollout with no state yet that the policy would reject anyway is bad
        input, not a decision: rejected with the reason the worker dead-letters it with (contract
        ``operator``), and not audited — as in the worker."""
        step = Step()
        while self.heap and self.heap[0][0] <= now:
            at, _, lineno, item = heapq.heappop(self.heap)
            stray = pipelines.stray_rejection(item, at)
            if stray is not None:
                self.reject(lineno, stray.field, stray.reason, "operator")
                continue
            step += pipelines.on_input(item, at)
        return step


def _input_item(line: bytes) -> tuple[dict[str, Any] | None, str, str]:
    """One line of the inputs file as an ack or operator action, or (None, field, reason)."""
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return None, "", f"not valid JSON: {excerpt(str(exc), 120, quote=False)}"
    if not isinstance(item, dict):
        return None, "", f"must be a JSON object, got {type(item).__name__}"
    if "action" in item:
        if not isinstance(item["action"], str):
            return None, "action", f"must be a string, got {excerpt(item['action'])}"
        return item, "", ""
    for name in ("command_id", "status"):
        if name not in item:
            return None, name, "required field is missing (an ack needs command_id, rollout_id, status, at)"
    return item, "", ""


def replay(
    events_path: str | Path,
    config: Config,
    out_dir: str | Path,
    *,
    signing_key: bytes | None = None,
    inputs: str | Path | None = None,
    auto_ack_s: float | None = None,
    timeline_every_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    fmt: str = "auto",
) -> ReplaySummary:
    """Run every rollout's pipeline over ``events_path`` and write the outputs into ``out_dir``.

    ``fmt``: ``v1`` (events), ``otlp-json`` (OTLP trace payloads, one per line) or ``auto``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown input format {fmt!r} (expected one of {', '.join(FORMATS)})")
    if fmt == "auto":
        fmt = detect_format(events_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timeline = Timeline(timeline_every_s) if timeline_every_s else None
    read = 0
    pipelines = Pipelines(config, signing_key=signing_key)
    pipelines.shared.eval_gates.update(read_eval_gates(config))
    summary = ReplaySummary()
    last_ts = float("-inf")
    with (
        open(events_path, "rb") as source,
        open(out / "verdicts.jsonl", "wb") as verdicts,
        open(out / "rejected.jsonl", "wb") as rejected,
        open(out / "alerts.jsonl", "wb") as alerts,
        open(out / "commands.jsonl", "wb") as commands,
        open(out / "readiness.jsonl", "wb") as readiness,
        open(out / "audit.jsonl", "wb") as audit,
        open(out / "timeline.jsonl", "wb") if timeline is not None else nullcontext() as points,
    ):

        def publish(step: Step) -> None:
            for change in step.verdicts:
                verdicts.write(orjson.dumps(change.to_dict(), option=_DUMP))
            for alert in step.alerts:
                alerts.write(orjson.dumps(alert, option=_DUMP))
            for command in step.commands:
                commands.write(orjson.dumps(command, option=_DUMP))
                pending.on_command(command)
            for record in step.readiness:
                readiness.write(orjson.dumps(record, option=_DUMP))
            for record in step.audit:
                audit.write(orjson.dumps(record, option=_DUMP))
            summary.verdict_changes += len(step.verdicts)
            summary.alerts += len(step.alerts)
            summary.commands += len(step.commands)
            summary.readiness_records += len(step.readiness)

        def reject_input(lineno: int, field: str, reason: str, contract: str | None) -> None:
            summary.inputs_rejected += 1
            record = {"file": "inputs", "line": lineno, "field": field, "reason": reason}
            if contract is not None:  # the contract of the worker's dead letter for the same message
                record["contract"] = contract
            rejected.write(orjson.dumps(record, option=_DUMP))

        pending = _Inputs(auto_ack_s, reject_input)
        if inputs is not None:
            pending.load(inputs)
        lineno = blank = 0
        process = pipelines.process
        translator = OtlpTranslator(config.otlp, "otlp_json") if fmt == "otlp-json" else None
        if translator is not None:

            def apply(translation: Translation) -> None:
                nonlocal last_ts
                if translation.problem is not None:
                    summary.rejected += 1
                    bad = translation.problem
                    record = {"line": lineno, "field": bad.field, "reason": bad.reason}
                    rejected.write(orjson.dumps(record, option=_DUMP))
                for problem in translation.rejected:
                    summary.rejected += 1
                    record = {"line": problem.source, "field": problem.field, "reason": problem.reason,
                              "trace_id": problem.trace_id, "span_id": problem.span_id}  # fmt: skip
                    rejected.write(orjson.dumps(record, option=_DUMP))
                for ev in translation.events:
                    summary.events += 1
                    if pending.heap:
                        publish(pending.due(ev.ts, pipelines))
                    step = process(ev)
                    if step:
                        publish(step)
                    if (
                        timeline is not None
                        and points
                        and (point := timeline.due(pipelines.get(ev.rollout_id)))
                    ):
                        points.write(orjson.dumps(point, option=_DUMP))
                    if ev.ts > last_ts:
                        last_ts = ev.ts

            for lineno, line in enumerate(source, 1):
                if progress is not None:
                    read += len(line)
                    progress(read, lineno)
                if line.strip():
                    apply(translator.payload(line, lineno))
            apply(translator.flush())
        else:
            for lineno, line in enumerate(source, 1):
                if progress is not None:
                    read += len(line)
                    if not lineno & 63:
                        progress(read, lineno)
                ev = parse_event(line)
                if type(ev) is not Event:
                    assert isinstance(ev, EventError)
                    if not line.strip():
                        blank += 1
                        continue
                    summary.rejected += 1
                    rejected.write(orjson.dumps({"line": lineno, **ev.to_dict()}, option=_DUMP))
                    continue
                ts = ev.ts
                if pending.heap:
                    publish(pending.due(ts, pipelines))
                step = process(ev)
                if step:
                    publish(step)
                if timeline is not None and points and (point := timeline.due(pipelines.get(ev.rollout_id))):
                    points.write(orjson.dumps(point, option=_DUMP))
                if ts > last_ts:
                    last_ts = ts
        summary.lines = lineno
        if translator is None:
            summary.events = lineno - summary.rejected - blank
        # The end of the file: every open batch closes, inputs up to the last event time apply, and
        # each rollout's policy catches up with its own newest event.
        publish(pipelines.flush())
        publish(pending.due(last_ts, pipelines))
        publish(pipelines.advance_each())
        if progress is not None:
            progress(read, lineno)
        if points is not None:
            for p in pipelines:
                at = p.last_ts if math.isfinite(p.last_ts) else None
                points.write(orjson.dumps(timeline_point(p, at, final=True), option=_DUMP))
    summary.rollouts = len(pipelines)
    summary.late_events = sum(p.engine.late_events for p in pipelines)
    summary.duplicates = sum(p.duplicates for p in pipelines)
    if translator is not None:  # what became of the spans: events, unjoined, skipped, rejected
        summary.otlp = translator.counters()
    report: dict[str, Any] = asdict(summary)
    if report["otlp"] is None:
        del report["otlp"]
    report["counters"] = {rid: m.counters for p in pipelines for rid, m in sorted(p.engine.monitors.items())}
    # Each rollout's readiness at its own last event time (ready, blocking and warning checks, evidence).
    report["readiness"] = {p.rollout_id: p.status()["readiness"] for p in pipelines}
    semantic = {p.rollout_id: p.engine.semantic.counters() for p in pipelines if p.engine.semantic}
    if semantic:  # per rollout: embeddings sampled and embedded, shadow pairs and losses (issue 6)
        report["semantic"] = semantic
    parts = {p.rollout_id: view for p in pipelines if (view := p.variant_parts()) is not None}
    if parts:  # per rollout: the canary's variant parts against control's, and a bundled change
        report["variant_parts"] = parts
    (out / "summary.json").write_bytes(orjson.dumps(report, option=_DUMP | orjson.OPT_INDENT_2))
    return summary


def detect_format(path: str | Path) -> str:
    """``otlp-json`` when the first non-blank line is an OTLP export request (``resourceSpans``), else
    ``v1``."""
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                first = orjson.loads(line)
            except orjson.JSONDecodeError:
                return "v1"
            return "otlp-json" if isinstance(first, dict) and "resourceSpans" in first else "v1"
    return "v1"
