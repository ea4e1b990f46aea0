"""HTML from the view model: one template (``templates/page.html.j2``) for the report file and the
live dashboard. The page is self-contained: its style is inline and its charts are inline SVG, so a
report opens from disk, offline, anywhere; the live page adds a few lines of script that re-read it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path

import jinja2

from rollguard.report.records import RolloutRecords, read_replay_outputs
from rollguard.report.view import page_view
from rollguard.report.words import fmt_time

REFRESH_S = 5


def _asset(name: str) -> str:
    return resources.files("rollguard.report").joinpath("templates", name).read_text(encoding="utf-8")


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(_asset),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_page(rollouts: Iterable[RolloutRecords], *, title: str, subtitle: str, live: bool) -> str:
    """The page for these rollouts (``live``: with the refresh script of the worker's dashboard)."""
    page = page_view(rollouts, title=title, subtitle=subtitle, live=live)
    template = _environment().get_template("page.html.j2")
    return template.render(
        page=page,
        css=_asset("page.css"),
        live_js=_asset("live.js").replace("REFRESH_MS", str(REFRESH_S * 1000)),
        refresh_s=REFRESH_S,
    )


def render_report(out_dir: str | Path) -> str:
    """The report of a replay's output directory."""
    outputs = read_replay_outputs(out_dir)
    events = outputs.summary.get("events")
    first = [r.points[0].at for r in outputs.rollouts if r.points]
    last = [r.points[-1].at for r in outputs.rollouts if r.points]
    span = f", event time {fmt_time(min(first))} to {fmt_time(max(last))}" if first else ""
    subtitle = f"Replay of {events if events is not None else '?'} events in {outputs.directory}{span}."
    if not outputs.has_timeline:
        subtitle += " No timeline.jsonl: replay with --timeline-every SECONDS for the charts over time."
    return render_page(outputs.rollouts, title="rollguard report", subtitle=subtitle, live=False)


def write_report(out_dir: str | Path, dest: str | Path | None = None) -> Path:
    """Write the report of ``out_dir`` to ``dest`` (default ``out_dir/report.html``), atomically."""
    target = Path(dest) if dest is not None else Path(out_dir) / "report.html"
    html = render_report(out_dir)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, target)
    return target
