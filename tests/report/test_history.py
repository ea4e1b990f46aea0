"""The worker's dashboard history stays bounded however long a rollout runs, and its page is the report's."""

from __future__ import annotations

from pathlib import Path

from rollguard.domain.events import Event, parse_event
from rollguard.pipeline.pipelines import Pipelines
from rollguard.report.history import History
from rollguard.report.render import render_page
from rollguard.settings import Config


def _feed(history: History, events: Path) -> Pipelines:
    pipelines = Pipelines(Config())
    with open(events, "rb") as fh:
        for line in fh:
            ev = parse_event(line)
            assert isinstance(ev, Event)
            step = pipelines.process(ev)
            history.observe(pipelines.get(ev.rollout_id), step)
    return pipelines


def test_points_thin_out_to_span_the_whole_rollout_within_the_bound(replayed: Path) -> None:
    history = History(every_s=10.0, max_points=8, max_records=2)
    _feed(history, replayed.parent / "events.jsonl")
    (r,) = history.rollouts.values()
    points = r.series.points()
    assert 4 <= len(points) <= 8 and r.every_s > 10.0  # 8 minutes at 10 s would be 48 points
    times = [p.at for p in points]
    assert times == sorted(times) and times[-1] - times[0] >= 300  # still the whole rollout
    assert len(r.alerts) <= 2 and len(r.commands) <= 2
    coding = points[-1].metrics["input_class=coding"]["error_rate"]
    assert coding[0] == "regressed" and all(isinstance(v, float) for v in coding[1:])


def test_the_live_page_is_the_report_design_with_the_refresh_script(replayed: Path) -> None:
    history = History(every_s=30.0)
    pipelines = _feed(history, replayed.parent / "events.jsonl")
    (records,) = history.records(pipelines)
    assert records.latest is not None and records.points[-1].at == records.latest["at"]
    html = render_page([records], title="rollguard dashboard", subtitle="live", live=True)
    assert 'data-cohort="input_class=coding" data-state="regressed"' in html and "<svg" in html
    assert "<script>" in html and "fetch(window.location.href" in html
    assert "<script>" not in render_page([records], title="r", subtitle="", live=False)


def test_packed_points_read_back_as_they_were_taken() -> None:
    from rollguard.report.history import _Series
    from rollguard.report.records import ChartPoint

    taken = [
        ChartPoint(60.0, {"*": {"error_rate": ("insufficient", None, None, None)}}),
        ChartPoint(
            120.0,
            {
                "*": {"error_rate": ("regressed", 0.02, 0.01, 0.03)},
                "tenant=t1": {"latency_ms.p95": ("non_inferior", -0.01, -0.05, 0.04)},
            },
        ),
    ]
    series = _Series()
    for point in taken:
        series.append(point)
    assert series.points() == taken
