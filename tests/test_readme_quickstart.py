"""The README's first sections, run as written (with this test's broker, Alertmanager, ports and paths
swapped in): the offline commands, the quickstart against a Kafka cluster — topics, worker, reference
controller, Alertmanager bridge, simulated traffic — and every operator command."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from kafka_broker import free_port
from services import Service, am_alerts

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def section_lines(title: str) -> list[str]:
    """The command lines of the ```sh blocks of one README section, comments dropped."""
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.index("\n## ", start + 1)
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text[start:end], flags=re.S):
        lines += [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    return lines


def argv_of(line: str, swaps: dict[str, str] | None = None) -> list[str]:
    for old, new in (swaps or {}).items():
        line = line.replace(old, new)
    argv = shlex.split(line)
    assert argv[0] == "rollguard", line
    return [sys.executable, "-m", "rollguard.cli", *argv[1:]]


def run(line: str, cwd: Path, swaps: dict[str, str] | None = None, env: dict[str, str] | None = None,
        stdout: Any = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    proc = subprocess.run(argv_of(line, swaps), cwd=cwd, capture_output=stdout is None, stdout=stdout,
                          text=True, env=env or ENV, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_the_offline_commands_simulate_replay_and_report(tmp_path: Path) -> None:
    lines = [line for line in section_lines("Quickstart against an existing Kafka cluster") if "--out" in line
             or line.startswith("rollguard report")]  # fmt: skip
    assert [line.split()[1] for line in lines] == ["simulate", "replay", "report"]
    for line in lines:
        run(line, tmp_path)
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'data-cohort="input_class=coding" data-state="regressed"' in html
    assert (tmp_path / "out" / "timeline.jsonl").stat().st_size > 0


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_quickstart_and_every_operator_command_on_a_real_cluster(
    kafka_bootstrap: str, alertmanager: Service, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    quick = section_lines("Quickstart against an existing Kafka cluster")
    ops = section_lines("The operator on call")
    assert [line.split()[1] for line in quick[:6]] == [
        "config",
        "config",
        "topics",
        "worker",
        "controller",
        "bridge",
    ]
    swaps = {"kafka-1:9092": kafka_bootstrap, "http://alertmanager:9093": alertmanager.url,
             "/etc/flagd/flags.json": str(tmp_path / "flags.json")}  # fmt: skip

    # The operator's key first, so that the config lists it (keygen prints the lines to add).
    keygen = run(ops[0], tmp_path)
    key_line = keygen.stdout.strip().splitlines()[-1].strip()
    assert ops[1] == "export ROLLGUARD_OPERATOR_KEY=alice.key"
    env = {**ENV, "ROLLGUARD_OPERATOR_KEY": str(tmp_path / "alice.key"), "ROLLGUARD_SIGNING_KEY": "s3cret"}
    (tmp_path / "command.key").write_text("s3cret\n")

    with open(tmp_path / "rollguard.yaml", "w") as out:
        run(quick[0].split(">")[0], tmp_path, stdout=out)
    config = yaml.safe_load((tmp_path / "rollguard.yaml").read_text())
    # What a user edits: the keys, and (for this test) ports, paths, a group of its own, quicker idling.
    config["operators"]["keys"] = yaml.safe_load(key_line)
    port = free_port()
    config["worker"].update(web_port=port, data_dir=str(tmp_path / "worker"), app_id=f"quickstart-{port}",
                            idle_after_s=3, tick_s=0.5)  # fmt: skip
    config["controller"]["group_id"] = f"quickstart-controller-{port}"  # the session's broker is shared
    (tmp_path / "rollguard.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert run(quick[1], tmp_path).stdout.strip() == "rollguard.yaml: valid"
    shutil.copyfile(ROOT / "deploy" / "controller" / "flags.json", tmp_path / "flags.json")
    run(quick[2], tmp_path, swaps)  # topics apply (exit 0 here: a fresh set of topics, or the same)

    for line in quick[3:6]:  # worker, controller, bridge: services
        log = open(tmp_path / f"{line.split()[1]}.log", "wb")  # noqa: SIM115 - the child writes it
        proc = subprocess.Popen(argv_of(line, swaps), cwd=tmp_path, stdout=log, stderr=log, env=env)
        processes.append(proc)
    base = f"http://127.0.0.1:{port}"
    _wait(
        lambda: _get(base + "/rollguard/health/").get("status") == "ready", 180, "the worker ready", processes
    )

    # Traffic as the README simulates it: checkout-v2 needs approval in the example config.
    (simulate,) = [line for line in quick if line.startswith("rollguard simulate --bootstrap")]
    shown = simulate.replace("--speed 30", "--speed 0").replace("error_rate=0.08@10m", "error_rate=0.25@2m")
    run(shown + " --duration 8m --rate 30 --canary-weight 0.3 --seed 11", tmp_path, swaps, env)

    def status() -> dict[str, Any]:
        rollouts = _get(base + "/status?rollout=checkout-v2").get("rollouts") or [{}]
        return dict(rollouts[0])

    _wait(lambda: any(c["status"] == "proposed" for c in status().get("commands", [])), 240, "a proposal",
          processes)  # fmt: skip
    _wait(lambda: am_alerts(alertmanager.url, filter="rollout=checkout-v2"), 60, "the alert in Alertmanager",
          processes)  # fmt: skip
    proposal = next(c["command_id"] for c in status()["commands"] if c["status"] == "proposed")
    alert = next(a["alert_id"] for a in status()["firing"] if a["rule"] != "command_awaiting_approval")
    ids = {"al-2ce5fa523a288224": alert, "cmd-14a961be508ecee7288c262e": proposal}
    results = []
    for line in ops[2:]:
        out = run(line, tmp_path, {**swaps, **ids}, env).stdout
        assert " by alice (alice-2026): op-" in out, out
        if line.startswith("rollguard operator silence"):
            silence = re.search(r": (op-[0-9a-f]+) ", out)
            assert silence is not None
            ids["op-5b0e2c7d9a41f3e86c1d2b7a"] = silence.group(1)
        results.append(out.split()[0])
    assert results == ["acknowledge_alert", "silence", "unsilence", "hold", "release", "approve", "reject",
                       "override_verdict", "declare_promotion"]  # fmt: skip

    def audited() -> list[dict[str, Any]]:
        page = httpx.get(base + "/", timeout=10).text
        return re.findall(r'<tr class="operator"><td>[^<]*</td><td class="who">alice</td><td>alice-2026</td>'
                          r"<td>(\w+)</td><td>([^<]*)</td>", page)  # fmt: skip

    _wait(lambda: len(audited()) == 9, 60, "every operator action audited", processes)
    results_by_action = dict(reversed(audited()))  # the page lists the newest first
    assert all(r.startswith("ok") for a, r in results_by_action.items() if a != "reject"), results_by_action
    assert results_by_action["reject"] == "rejected: proposal is approved"  # approved a moment before
    _wait(lambda: any(c["status"] == "applied" and c["approved_by"] == "alice" for c in status()["commands"]),
          120, "the approved command applied by the controller", processes)  # fmt: skip
    flag = orjson.loads((tmp_path / "flags.json").read_bytes())["flags"]["checkout-v2"]
    assert flag["targeting"]["if"][0] == {"and": [{"==": [{"var": "inputClass"}, "coding"]}]}
    assert status()["phase"] == "post_rollout"  # declared by the operator


def _get(url: str) -> dict[str, Any]:
    try:
        body: dict[str, Any] = httpx.get(url, timeout=5).json()
        return body
    except (httpx.HTTPError, ValueError):
        return {}


def _wait(check: Any, timeout: float, what: str, processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        for proc in processes:
            assert proc.poll() is None, (
                f"{proc.args[3:5]} exited with {proc.returncode} while waiting for {what}"
            )
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.5)
