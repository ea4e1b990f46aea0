"""``rollguard report``: one self-contained HTML file from a replay's outputs, saying what happened to
every cohort and metric, with charts over event time and each verdict explained in words."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest

from rollguard.cli import main
from rollguard.report import render_report

DETAILS = r'<details class="cohort" id="[^"]+" data-cohort="([^"]+)" data-state="(\w+)"'


class _Elements(HTMLParser):
    """Every element's tag and attributes, and the text inside elements carrying ``data-metric``."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def _elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.elements


def _metric_block(html: str, cohort: str, metric: str) -> str:
    """The HTML of one metric of one cohort's details."""
    start = html.index('<details class="cohort" id=')
    details = html[start:]
    at = details.index(f'data-cohort="{cohort}"')
    block = details[at:]
    m = block.index(f'data-metric="{metric}"')
    end = block.find('<div class="metric', m + 1)
    return block[m : end if end > 0 else None]


def test_the_regressed_cohort_is_shown_regressed_with_its_chart_and_explanation(replayed: Path) -> None:
    html = render_report(replayed)
    states = dict(re.findall(DETAILS, html))
    assert states["input_class=coding"] == "regressed"
    block = _metric_block(html, "input_class=coding", "error_rate")
    assert 'data-state="regressed"' in block
    assert '<svg class="chart"' in block and "<polygon" in block and 'class="margin"' in block
    assert "Regressed." in block and "margin" in block
    # The other input classes are not blamed (the whole rollout and tenants hold coding traffic too).
    classes = {c: s for c, s in states.items() if c.startswith("input_class=")}
    assert [c for c, s in classes.items() if s == "regressed"] == ["input_class=coding"] and len(classes) == 5


def test_the_report_tells_the_alert_the_command_its_ack_and_who_kept_the_canary(replayed: Path) -> None:
    html = render_report(replayed)
    assert "guardrail_regression" in html and "critical" in html and "oncall" in html
    row = re.search(r'<tr class="command (\w+)" data-command="(cmd-[0-9a-f]+)">(.*?)</tr>', html, re.S)
    assert row and row.group(1) == "applied"
    assert "disable_scope" in row.group(3) and "applied at" in row.group(3)
    assert "Canary off for</dt><dd>input_class=coding; every other segment stays on the canary" in html


def test_the_report_is_one_file_that_needs_nothing_else(replayed: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    shutil.copytree(replayed, out)
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    for tag, attrs in _elements(html):
        assert tag not in ("script", "link", "img", "iframe"), f"<{tag}> would load something"
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not value or value.startswith("#"), f"<{tag} {name}={value!r}> points outside the page"
    assert "http://" not in html and "https://" not in html
    assert (out / "report.html").stat().st_size < 1_000_000


def test_without_a_timeline_the_report_still_tells_alerts_and_commands(
    replayed: Path, tmp_path: Path
) -> None:
    out = tmp_path / "no-timeline"
    shutil.copytree(replayed, out)
    (out / "timeline.jsonl").unlink()
    html = render_report(out)
    assert "No timeline.jsonl" in html and "disable_scope" in html and "guardrail_regression" in html


def test_report_of_a_directory_without_replay_outputs_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rollguard: report stopped:") and "no replay outputs" in err[0]


def test_the_report_shows_each_rollouts_pre_flight_checklist(replayed: Path) -> None:
    html = render_report(replayed)
    assert re.search(r'<dt>Pre-flight</dt><dd class="ok" data-ready="ready">ready</dd>', html)
    checks = dict(re.findall(r'<tr class="check" data-check="(\w+)" data-state="(\w+)">', html))
    # The rehearsal was answered (auto-ack); the canary started with control: a thin baseline, a warning.
    assert checks["revert"] == "met" and checks["baselines"] == "unmet" and checks["eval_gate"] == "off"
    revert = r'data-check="revert" data-state="met"><td>revert</td><td>block</td><td>met</td><td>(.*?)<'
    row = re.search(revert, html)
    assert row and "answered dry_run_ok" in row.group(1)
    # ... and the alerts of a cohort whose control history was thin when the canary started say so.
    alerts = [orjson.loads(x) for x in (replayed / "alerts.jsonl").read_bytes().splitlines()]
    critical = next(a for a in alerts if a["severity"] == "critical" and a["status"] == "firing")
    words = critical["annotations"]
    assert "It compares against a thin baseline: the control history of" in words["description"]
    assert "thin baseline" not in words["summary"]  # the page stays short
    # The cohorts say they compare against a thin baseline (the canary started with the first request).
    thin = r'<span class="pill warn thin" title="when the canary started: no control traffic">'
    assert re.search(r'data-cohort="input_class=coding"[^>]*>\s*<summary>.*?' + thin, html, re.S)
