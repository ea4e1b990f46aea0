"""``rollguard demo --kafka``: the full loop on a real broker — simulator → worker → alert and control
topics → the reference controller (a flagd flags file) → acks — told as the same story as the demo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(420)]
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _demo(out: Path, *extra: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "rollguard.cli", "demo", "--kafka", "--speed", "60", "--out", str(out),
         *extra],
        capture_output=True, text=True, env=ENV, timeout=400, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def _assert_the_story(text: str, out: Path) -> None:
    assert re.search(r"ALERT critical → oncall \(now\): \[error_spike_coding-7-\d+\] error_rate regressed in "
                     r"input_class=coding", text)  # fmt: skip
    assert re.search(r"COMMAND disable_scope for input_class=coding \(cmd-[0-9a-f]+, signed", text)
    assert re.search(r"ACK applied by rollguard controller flagd: disable_scope cmd-", text)
    assert "input_class=coding → control; everything else → canary 10%, control 90%" in text
    assert "Stayed on the canary: input_class=billing" in text and "Where everything went:" in text
    flags = json.loads((out / "flags.json").read_text())["flags"]
    (flag,) = flags.values()
    assert flag["metadata"]["version"] == "2" and flag["targeting"]["if"][1] == "control"
    page = (out / "dashboard.html").read_text()
    assert 'data-cohort="input_class=coding" data-state="regressed"' in page and "<script>" not in page


def test_the_full_loop_on_the_projects_local_broker(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    text = _demo(out)
    assert "the project's local broker at 127.0.0.1:" in text
    _assert_the_story(text, out)


def test_the_full_loop_on_an_existing_cluster_with_topics_of_its_own(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    out = tmp_path / "demo"
    text = _demo(out, "--bootstrap", kafka_bootstrap)
    assert f"{kafka_bootstrap} (topics prefixed for this run)" in text
    _assert_the_story(text, out)
