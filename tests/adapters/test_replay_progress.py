"""A long replay shows its progress — bytes done, events/s, time left — on stderr when stderr is a
terminal, and writes nothing extra when it is not (logs and pipes stay clean)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rollguard.sim import generate, get_scenario, write_jsonl
from terminal_kit import run_on_terminal

pytestmark = pytest.mark.timeout(120)


def _events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    write_jsonl(generate(get_scenario("aa", seed=3, duration_s=600, rate_per_s=40)), path)
    return path


def test_on_a_terminal_replay_shows_a_progress_bar_with_events_per_second_and_time_left(
    tmp_path: Path,
) -> None:
    events = _events(tmp_path)
    run = run_on_terminal(["replay", str(events), "--out", str(tmp_path / "out")],
                          {"COLUMNS": "140", "TERM": "xterm", "OPENBLAS_NUM_THREADS": "1"})  # fmt: skip
    assert run.exit_code == 0
    text = run.text
    assert re.search(r"replay .*100%.*\d[\d,]* events · [\d,]+/s.*elapsed.*left", text), text[-800:]
    assert "replayed 2" in text  # the summary line follows the bar


def test_when_stderr_is_not_a_terminal_replay_prints_no_progress(tmp_path: Path) -> None:
    events = _events(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "rollguard.cli", "replay", str(events), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("replayed ")
