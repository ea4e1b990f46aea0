"""The test services are real and behave as the tests that use them assume: ``scripts/services.sh``
installs them (and says so clearly when it cannot), Alertmanager routes by severity with the deployed
tree and forgets its alerts (not its silences) on restart, Prometheus scrapes real endpoints,
answers queries and keeps its data across a restart."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import prometheus_client
import pytest

from services import (
    RECEIVERS,
    Service,
    WebhookSink,
    am_alerts,
    am_get,
    am_post,
    am_silence,
    prom_query,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
SERVICES_SH = ROOT / "scripts" / "services.sh"

pytestmark = pytest.mark.timeout(120)


def _alert(severity: str, rollout: str = "r1") -> dict[str, object]:
    return {
        "labels": {"alertname": "SelfTest", "severity": severity, "rollout": rollout, "cohort": "*"},
        "annotations": {"summary": f"{severity} self-test"},
        "startsAt": "2026-01-01T00:00:00Z",
    }


def test_services_script_is_silent_when_everything_is_installed() -> None:
    proc = subprocess.run(["bash", str(SERVICES_SH)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root and setpriv")
def test_services_script_without_root_names_the_missing_packages_and_the_command() -> None:
    # dpkg reports nothing installed; the script runs as nobody: it must not try apt-get, and say why.
    # (A directory nobody can read: pytest's tmp_path lives under a root-only directory.)
    where = Path(tempfile.mkdtemp(prefix="rollguard-services-"))
    try:
        where.chmod(0o755)
        fake = where / "bin"
        fake.mkdir()
        (fake / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")
        (fake / "apt-get").write_text("#!/bin/sh\necho apt-get was called >&2\nexit 1\n")
        for tool in (fake, *fake.iterdir()):
            tool.chmod(0o755)
        script = where / "services.sh"
        shutil.copy2(SERVICES_SH, script)
        script.chmod(0o755)
        proc = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "bash", str(script)],
            env={"PATH": f"{fake}:/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=where,
        )
    finally:
        shutil.rmtree(where)
    assert proc.returncode == 1, proc.stderr
    missing = "missing Debian packages: prometheus-alertmanager prometheus chromium chromium-driver"
    assert missing in proc.stderr
    assert "needs root" in proc.stderr
    assert "apt-get install -y --no-install-recommends" in proc.stderr
    assert "apt-get was called" not in proc.stderr


def test_services_script_names_the_failing_step(tmp_path: Path) -> None:
    # Packages missing and apt-get failing (as with no network): the ERR trap names line and command.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")
    (fake / "apt-get").write_text("#!/bin/sh\necho 'E: could not reach the mirror' >&2\nexit 100\n")
    for tool in fake.iterdir():
        tool.chmod(0o755)
    if os.geteuid() != 0:
        pytest.skip("the install path runs as root only")
    proc = subprocess.run(
        ["bash", str(SERVICES_SH)],
        env={"PATH": f"{fake}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 100
    assert "[services] failed (exit 100) at scripts/services.sh:" in proc.stderr
    assert "apt-get" in proc.stderr.splitlines()[-1]


def test_alertmanager_routes_each_severity_to_its_deployed_receiver(
    alertmanager: Service, webhook_sink: WebhookSink
) -> None:
    # One rollout each: a critical inhibits its own rollout's warnings (next test).
    tiers = ("critical", "warning", "info")
    am_post(alertmanager.url, "/api/v2/alerts", [_alert(s, f"r-{s}") for s in tiers])
    wait_until(lambda: len(am_alerts(alertmanager.url)) == 3, what="three alerts")
    active = am_alerts(alertmanager.url)
    routed = {a["labels"]["severity"]: [r["name"] for r in a["receivers"]] for a in active}
    assert routed == {"critical": ["oncall-pager"], "warning": ["team-chat"], "info": ["digest"]}
    for receiver in RECEIVERS:
        webhook_sink.wait_for(lambda n, r=receiver: n.receiver == r and n.body["status"] == "firing")


def test_alertmanager_inhibits_a_rollout_cohorts_warning_while_it_pages(alertmanager: Service) -> None:
    alerts = [_alert("critical"), _alert("warning"), _alert("warning", "r2")]
    am_post(alertmanager.url, "/api/v2/alerts", alerts)
    wait_until(lambda: len(am_alerts(alertmanager.url)) == 3)
    states = {
        (a["labels"]["severity"], a["labels"]["rollout"]): a["status"]["state"]
        for a in am_alerts(alertmanager.url)
    }
    assert states == {
        ("critical", "r1"): "active",
        ("warning", "r1"): "suppressed",  # inhibited by the critical of the same rollout and cohort
        ("warning", "r2"): "active",
    }


def test_alertmanager_restart_keeps_port_and_silences_but_forgets_alerts(alertmanager: Service) -> None:
    port = alertmanager.port
    am_post(alertmanager.url, "/api/v2/alerts", [_alert("critical")])
    wait_until(lambda: am_alerts(alertmanager.url), what="the alert")
    silence = am_silence(alertmanager.url, {"rollout": "r9"})
    alertmanager.restart()
    assert alertmanager.port == port and alertmanager.running
    assert am_alerts(alertmanager.url) == []  # alerts live in memory: clients must post them again
    silences = am_get(alertmanager.url, "/api/v2/silences")
    assert [(s["id"], s["status"]["state"]) for s in silences] == [(silence, "active")]


def test_prometheus_scrapes_real_endpoints_and_answers_queries_across_a_restart(
    alertmanager: Service, prometheus_for: Callable[[list[str]], Service]
) -> None:
    # Two real endpoints in the Prometheus text format: Alertmanager's own /metrics and one served by
    # prometheus_client, as rollguard's worker will serve it.
    registry = prometheus_client.CollectorRegistry()
    counter = prometheus_client.Counter("selftest_events", "events seen", ["arm"], registry=registry)
    counter.labels(arm="canary").inc(7)
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        exporter = f"127.0.0.1:{server.server_address[1]}"
        prometheus = prometheus_for([alertmanager.address, exporter])

        def up() -> dict[str, float]:
            return {r["metric"]["instance"]: float(r["value"][1]) for r in prom_query(prometheus.url, "up")}

        wait_until(lambda: up() == {alertmanager.address: 1.0, exporter: 1.0}, what="both targets up")
        (sample,) = wait_until(lambda: prom_query(prometheus.url, 'selftest_events_total{arm="canary"}'))
        assert float(sample["value"][1]) == 7.0 and sample["metric"]["instance"] == exporter
        (build,) = prom_query(prometheus.url, "alertmanager_build_info")
        assert build["metric"]["version"].startswith("0.")

        before = time.time()
        prometheus.restart()
        # Samples scraped before the restart come back from the write-ahead log.
        samples = prom_query(prometheus.url, f"count_over_time(selftest_events_total[1h] @ {before:.3f})")
        assert samples and float(samples[0]["value"][1]) >= 1
    finally:
        server.shutdown()
        thread.join(5)
