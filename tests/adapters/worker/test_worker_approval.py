"""The operator on call, end to end on a real broker: an approval-gated rollback waits (the worker
proposes, the reference controller applies nothing), the operator approves it with
``rollguard operator approve`` signed by their own key, the worker issues it, the reference controller
applies it to the flags file and acks, and the dashboard says who approved."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from worker_kit import make_topics, wait_until, write_contracts

from controller_testkit import canary_flags, write_flags
from kafka_broker import free_port
from rollguard.adapters.operator import read_key_file
from rollguard.adapters.worker import WorkerOptions, create_app
from rollguard.cli import main
from rollguard.settings import load_config

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]
SECRET = "approval-test-signing-key"


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rollguard.cli", *argv], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def test_an_approval_gated_rollback_waits_is_approved_by_the_operator_and_applied(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = make_topics(kafka_bootstrap)
    topics_dir = write_contracts(topics, tmp_path / "topics")
    rollout = f"appr-{uuid.uuid4().hex[:6]}"
    assert main(["operator", "keygen", "--operator", "alice", "--key-id", "alice-1", "--out",
                 str(tmp_path / "alice.key")]) == 0  # fmt: skip
    public = read_key_file(tmp_path / "alice.key").public_b64
    cfg = tmp_path / "rollguard.yaml"
    cfg.write_text(
        f"commands: {{approval: required, signing_key: {SECRET}}}\n"
        f"operators:\n  keys:\n    alice-1: {{operator: alice, public_key: {public}}}\n"
    )
    config = load_config(cfg)
    (tmp_path / "command.key").write_text(SECRET + "\n")
    flags = write_flags(tmp_path / "flags.json", canary_flags(rollout, canary=30, control=70))

    # Traffic: a 30% canary whose coding errors rise to 25% at minute 2, present-day timestamps.
    sent = _cli("simulate", "--scenario", "error_spike_coding", "--rate", "30", "--duration", "8m",
                "--canary-weight", "0.3", "--inject", "error_rate=0.25@2m:input_class=coding",
                "--rollout-id", rollout, "--seed", "11", "--bootstrap", kafka_bootstrap,
                "--topics-dir", str(topics_dir), "--speed", "0")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    controller = subprocess.Popen(
        [sys.executable, "-m", "rollguard.cli", "controller", "flagd", "--bootstrap", kafka_bootstrap,
         "--flags", str(flags), "--key-file", str(tmp_path / "command.key"), "--topics-dir", str(topics_dir),
         "--state-dir", str(tmp_path / "controller-state"), "--log-level", "warning",
         "--group-id", f"{rollout}-controller"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    port = free_port()
    options = WorkerOptions(kafka_bootstrap, app_id=f"appr-{topics.events}", web_port=port, idle_after_s=2,
                            tick_s=0.2)  # fmt: skip
    wa = create_app(options, config, topics, signing_key=SECRET.encode())
    base = f"http://127.0.0.1:{port}"

    def commands() -> list[dict[str, Any]]:
        rt = wa.runtime.runtimes.get(rollout)
        return list(rt.pipeline.status()["commands"]) if rt is not None else []

    async def run() -> None:
        await wa.start()
        try:
            await wait_until(lambda: any(c["status"] == "proposed" for c in commands()), 240, "a proposal")
            (proposal,) = commands()
            assert proposal["action"] == "disable_scope" and proposal["cohort"] == "input_class=coding"
            await asyncio.sleep(3)  # a controller must leave a proposal alone: nothing is applied
            assert [c["status"] for c in commands()] == ["proposed"]
            assert json.loads(flags.read_text())["flags"][rollout]["metadata"]["version"] == "1"
            async with httpx.AsyncClient(base_url=base) as http:
                page = (await http.get("/")).text
            assert "Pending approval" in page and f'data-command="{proposal["command_id"]}"' in page
            assert f"rollguard operator approve {rollout} {proposal['command_id']}" in page
            expires = proposal["approval_expires_at"]
            assert expires == proposal["issued_at"] + config.commands.approval_timeout_s

            approve = await asyncio.to_thread(
                _cli, "operator", "approve", rollout, proposal["command_id"], "--bootstrap", kafka_bootstrap,
                "--topics-dir", str(topics_dir), "--key-file", str(tmp_path / "alice.key"),
                "--comment", "coding only, go",
            )  # fmt: skip
            assert approve.returncode == 0, approve.stderr
            assert f"approve {rollout} by alice (alice-1): op-" in approve.stdout

            def applied() -> bool:
                return any(c["approved_by"] == "alice" and c["status"] == "applied" for c in commands())

            await wait_until(applied, 120, "the approved command applied by the controller")
            done = next(c for c in commands() if c["approved_by"] == "alice" and c["status"] == "applied")
            assert done["proposal_id"] == proposal["command_id"] and done["action"] == "disable_scope"
            status = wa.runtime.runtimes[rollout].pipeline.status()
            assert status["disabled_scopes"] == ["input_class=coding"]
            async with httpx.AsyncClient(base_url=base) as http:
                page = (await http.get("/")).text
            assert "Pending approval" not in page and 'approved by <b class="who">alice</b>' in page
            assert '<td class="who">alice</td><td>alice-1</td><td>approve</td>' in page
        finally:
            await wa.stop()

    try:
        asyncio.run(run())
    finally:
        controller.terminate()
        out, _ = controller.communicate(timeout=30)
    flag = json.loads(flags.read_text())["flags"][rollout]
    first = flag["targeting"]["if"]
    assert first[0] == {"and": [{"==": [{"var": "input_class"}, "coding"]}]} and first[1] == "control"
    assert flag["metadata"]["version"] == "2", out
