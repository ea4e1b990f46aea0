"""`rollguard worker` as ops run it: it refuses to start without its topics, then runs, reports ready on
its health page, serves /metrics (Prometheus text) and /status (JSON) but not Faust's table and router
pages, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
import yaml
from worker_kit import get_json, produce, rollout_key, wait_ready, worker_command, write_contracts

from kafka_broker import free_port, record_timing
from readme import readme_command, with_options
from rollguard.adapters.topics_admin import run_topics_apply
from rollguard.adapters.worker import WorkerTopics

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_the_worker_process_starts_serves_its_pages_and_stops(kafka_bootstrap: str, tmp_path: Path) -> None:
    topics = WorkerTopics.prefixed(f"cli{time.monotonic_ns()}", 2)
    contracts = write_contracts(topics, tmp_path / "topics")
    port = free_port()
    config = tmp_path / "rollguard.yaml"
    config.write_text(yaml.safe_dump({"worker": {"web_port": port}}))
    cmd = worker_command(kafka_bootstrap, config, contracts, f"cli-{topics.events}", tmp_path / "data")

    missing = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 1 and "topics apply" in missing.stderr

    assert run_topics_apply(kafka_bootstrap, str(contracts), dry_run=False) == 0
    events = [
        orjson.dumps(
            {
                "event_id": f"e{i}",
                "request_id": f"r{i}",
                "ts": 1767225600.0 + i,
                "rollout_id": "cli-r",
                "arm": ("control", "canary")[i % 2],
                "status": "ok",
                "latency_ms": 100.0,
            }
        )
        for i in range(50)
    ]
    produce(kafka_bootstrap, topics.events, events, rollout_key)
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        t0 = time.monotonic()
        wait_ready(proc, port, 90)
        record_timing("`rollguard worker` process: start to ready", time.monotonic() - t0)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while get_json(f"{base}/status")["worker"]["applied"] < len(events):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        status = get_json(f"{base}/status?rollout=cli-r")
        assert [r["rollout_id"] for r in status["rollouts"]] == ["cli-r"]
        # Its pre-flight checklist from the worker: no controller answered the revert rehearsal.
        readme = readme_command("rollguard preflight checkout-v2 --status-url")
        argv = with_options(readme, {"--status-url": base})
        argv[2] = "cli-r"
        checklist = subprocess.run(
            [sys.executable, "-m", "rollguard.cli", *argv[1:], "--config", str(config)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert checklist.returncode == 1, checklist.stdout + checklist.stderr
        assert "cli-r: NOT READY" in checklist.stdout and f"from the worker at {base}" in checklist.stdout
        assert "revert (block, pending)" in checklist.stdout
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            metrics = response.read().decode()
        assert 'rollguard_events_consumed_total{arm="canary",rollout="cli-r"} 25.0' in metrics
        assert "rollguard_consumer_lag" in metrics
        # Faust's own pages would serve table contents and cluster internals: they are off.
        assert _http_status(f"{base}/table/") == 404 and _http_status(f"{base}/router/") == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.close()
    assert code == 0, (tmp_path / "worker.log").read_text()[-3000:]
