"""Replay a file of v1 events through the core: the offline twin of the streaming worker.

``rollguard replay EVENTS.jsonl --out DIR`` writes ``DIR/verdicts.jsonl`` (every verdict change with its
evidence and the event time at which it happened), ``DIR/rejected.jsonl`` (malformed lines with the
line number, field and reason — never their content) and ``DIR/summary.json``. The same input gives the
same output byte for byte: nothing here reads the clock, and JSON keys are written sorted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from rollguard.config import Config
from rollguard.engine import Engine
from rollguard.events import EventError, parse_event
from rollguard.verdicts import VerdictChange

_DUMP = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


@dataclass(slots=True)
class ReplaySummary:
    lines: int = 0
    events: int = 0
    rejected: int = 0
    verdict_changes: int = 0
    late_events: int = 0
    rollouts: int = 0


def replay(events_path: str | Path, config: Config, out_dir: str | Path) -> ReplaySummary:
    """Run the engine over ``events_path`` and write the outputs into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    engine = Engine(config)
    summary = ReplaySummary()
    with (
        open(events_path, "rb") as source,
        open(out / "verdicts.jsonl", "wb") as verdicts,
        open(out / "rejected.jsonl", "wb") as rejected,
    ):

        def emit(changes: list[VerdictChange]) -> None:
            for change in changes:
                verdicts.write(orjson.dumps(change.to_dict(), option=_DUMP))
            summary.verdict_changes += len(changes)

        for lineno, line in enumerate(source, 1):
            summary.lines += 1
            if not line.strip():
                continue
            ev = parse_event(line)
            if isinstance(ev, EventError):
                summary.rejected += 1
                rejected.write(orjson.dumps({"line": lineno, **ev.to_dict()}, option=_DUMP))
                continue
            summary.events += 1
            changes = engine.process(ev)
            if changes:
                emit(changes)
        emit(engine.flush())
    summary.late_events = engine.late_events
    summary.rollouts = len(engine.monitors)
    report: dict[str, Any] = asdict(summary)
    report["counters"] = {rid: m.counters for rid, m in sorted(engine.monitors.items())}
    (out / "summary.json").write_bytes(orjson.dumps(report, option=_DUMP | orjson.OPT_INDENT_2))
    return summary
