"""``make demo`` (``rollguard demo``): the whole story in the terminal in under a minute, with no setup —
plain lines when stdout is not a terminal, a live table when it is."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from terminal_kit import run_on_terminal

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def test_the_demo_tells_the_story_in_plain_lines_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    t0 = time.monotonic()
    # `make demo`, the README's first command (the environment exists: `make env` is a no-op then).
    proc = subprocess.run(
        ["make", "--no-print-directory", "demo", f"DEMO_ARGS=--out={out}"],
        cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=120, check=False,
    )  # fmt: skip
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.split("rollguard demo", 1)[1]  # after make's echo of the command
    assert "\x1b[" not in text  # no escape codes in a pipe
    assert wall < 60
    assert "10% of units on the canary" in text and "input_class (chat 45%, coding 27%" in text
    assert re.search(r"injected .*error_rate set to 0.08 from minute 10 in input_class=coding", text)
    alert = (
        r"t\+\d\d:\d\d  ALERT critical → oncall \(now\): \[error_spike_coding-7\] error_rate regressed in "
    )
    assert re.search(alert + "input_class=coding", text)
    assert re.search(r"COMMAND disable_scope for input_class=coding \(cmd-[0-9a-f]+, unsigned", text)
    assert re.search(r"ACK applied by the demo's controller \(auto-ack\): disable_scope cmd-", text)
    assert "the canary is off for input_class=coding only" in text
    assert re.search(r"Stayed on the canary: input_class=billing \(\d[\d,]* canary requests\)", text)
    table = [line for line in text.splitlines() if line.startswith("input_class=coding ")]
    assert table and " off " in table[-1] and "✗" in table[-1]
    assert "Where everything went:" in text and str(out / "report.html") in text
    for name in ("events.jsonl", "verdicts.jsonl", "alerts.jsonl", "commands.jsonl", "timeline.jsonl"):
        assert (out / name).stat().st_size > 0


def test_on_a_terminal_the_demo_plays_a_live_table_through_simulated_time(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run = run_on_terminal(["demo", "--out", str(out), "--story-seconds", "3"],
                          ENV | {"COLUMNS": "160", "LINES": "50", "TERM": "xterm-256color"})  # fmt: skip
    assert run.exit_code == 0
    assert run.wall_s < 60
    assert "\x1b[" in run.raw  # styled and redrawn in place
    text = run.text
    assert "simulated time" in text and "t+19:" in text
    assert "ALERT critical" in text and "ACK applied" in text and "Where everything went:" in text
