"""A progress bar for work over a file (replay, report): bytes done, events/s, time left — on
stderr, and only when stderr is a terminal (a pipe or a log file gets nothing)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

Tick = Callable[[int, int], None]
"""``(bytes read, lines read)``, called now and then by the work."""


class _Rate(ProgressColumn):
    """Lines (events) per second since the start."""

    def render(self, task: Task) -> Text:
        lines = int(task.fields.get("lines", 0))
        elapsed = task.elapsed or 0.0
        rate = lines / elapsed if elapsed > 0 else 0.0
        return Text(f"{lines:,} events · {rate:,.0f}/s", style="progress.data.speed")


@contextmanager
def file_progress(path: str | Path, label: str, stream: TextIO | None = None) -> Iterator[Tick | None]:
    """Yield a tick to pass to the work, or None when ``stream`` (stderr) is not a terminal."""
    out = stream if stream is not None else sys.stderr
    if not out.isatty():
        yield None
        return
    try:
        total = os.path.getsize(path)
    except OSError:
        total = 0
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        _Rate(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=Console(file=out),
        transient=False,
        refresh_per_second=4,
    )
    task = progress.add_task(label, total=total or None, lines=0)
    last = [0.0]

    def tick(done: int, lines: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.1 or (total and done >= total):
            last[0] = now
            progress.update(task, completed=done, lines=lines)

    with progress:
        yield tick
