"""``deploy/alertmanager.yml`` as the README tells people to use it: amtool accepts it, Alertmanager runs
it as it is, and the tests' Alertmanager runs the very same routing tree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kafka_broker import free_port
from readme import readme_command, with_options
from services import DEPLOY_ALERTMANAGER, ROOT, Service, alertmanager_config, am_alerts, am_post, wait_until

pytestmark = pytest.mark.timeout(120)


def test_amtool_accepts_the_routing_file_with_its_three_receivers() -> None:
    argv = readme_command("amtool check-config")
    assert shutil.which(argv[0]), "amtool comes with prometheus-alertmanager: run `make services`"
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout and " - 3 receivers" in proc.stdout


def test_alertmanager_runs_the_file_as_the_readme_starts_it_and_pages_oncall_for_critical(
    tmp_path: Path,
) -> None:
    port = free_port()
    argv = with_options(
        readme_command("prometheus-alertmanager"),
        {"--storage.path": str(tmp_path / "data"), "--web.listen-address": f"127.0.0.1:{port}"},
    )
    assert (
        f"--config.file={DEPLOY_ALERTMANAGER.relative_to(ROOT)}" in argv
        and "--cluster.listen-address=" in argv
    )
    service = Service("alertmanager-readme", lambda _port: argv, tmp_path, port=port)
    service.start()
    try:
        alerts = [
            {"labels": {"alertname": "RollguardX", "severity": sev, "rollout": f"r-{sev}", "cohort": "*"}}
            for sev in ("critical", "warning", "info")
        ]
        am_post(service.url, "/api/v2/alerts", alerts)
        wait_until(lambda: len(am_alerts(service.url)) == 3, what="three alerts")
        routed = {
            a["labels"]["severity"]: [r["name"] for r in a["receivers"]] for a in am_alerts(service.url)
        }
        assert routed == {"critical": ["oncall-pager"], "warning": ["team-chat"], "info": ["digest"]}
    finally:
        service.stop()


def _without_timings(route: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in route.items() if k not in ("group_wait", "group_interval", "routes")}
    out["routes"] = [_without_timings(r) for r in route.get("routes", [])]
    return out


def test_the_tests_alertmanager_runs_the_deployed_routing_tree() -> None:
    deployed = yaml.safe_load(DEPLOY_ALERTMANAGER.read_text())
    tested = alertmanager_config("http://127.0.0.1:1")
    assert _without_timings(tested["route"]) == _without_timings(deployed["route"])
    assert tested["inhibit_rules"] == deployed["inhibit_rules"]
    assert [r["name"] for r in tested["receivers"]] == [r["name"] for r in deployed["receivers"]]
    hooks = [h for r in tested["receivers"] for h in r["webhook_configs"]]
    assert all(h["url"].startswith("http://127.0.0.1:1/") and h["send_resolved"] for h in hooks)
