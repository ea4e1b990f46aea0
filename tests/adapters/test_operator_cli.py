"""``rollguard operator …`` with a key of one's own, applied by replay (``--to-file`` → ``--inputs``): an
approval-gated command waits, is approved by the operator command and applied; a declared promotion
starts the post-rollout phase; the report shows the pending approval with its expiry and who acted."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from rollguard.cli import main
from rollguard.report import render_report
from rollguard.sim import generate, get_scenario, write_jsonl


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("operator")
    sc = get_scenario("error_spike_coding", seed=11, duration_s=480, rate_per_s=30, canary_weight=0.3,
                      start_s=120, error_rate=0.25)  # fmt: skip
    write_jsonl(generate(sc), d / "events.jsonl")
    assert (
        main(
            [
                "operator",
                "keygen",
                "--operator",
                "alice",
                "--key-id",
                "alice-1",
                "--out",
                str(d / "alice.key"),
            ]
        )
        == 0
    )
    return {"dir": d, "events": d / "events.jsonl", "key": d / "alice.key"}


def _config(setup: dict[str, Path], capsys: pytest.CaptureFixture[str] | None = None) -> Path:
    key = orjson.loads(setup["key"].read_bytes())
    from rollguard.adapters.operator import read_key_file

    public = read_key_file(setup["key"]).public_b64
    cfg = setup["dir"] / "rollguard.yaml"
    cfg.write_text(
        "commands: {approval: required}\n"
        f"operators:\n  keys:\n    {key['key_id']}: {{operator: alice, public_key: {public}}}\n"
    )
    return cfg


def _replay(setup: dict[str, Path], cfg: Path, out: Path, *options: str) -> int:
    """``rollguard replay`` of the scenario's events with ``cfg`` into ``out``: its exit code."""
    return main(["replay", str(setup["events"]), "--config", str(cfg), "--out", str(out), *options])


def test_keygen_writes_a_private_key_file_and_prints_the_config_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bob.key"
    assert main(["operator", "keygen", "--operator", "bob", "--key-id", "bob-1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert "operators:\n  keys:\n    bob-1: {operator: bob, public_key: " in printed
    assert main(["operator", "keygen", "--operator", "bob", "--key-id", "bob-1", "--out", str(out)]) == 2
    assert "never overwritten" in capsys.readouterr().err


def test_a_proposal_waits_is_approved_by_the_operator_command_and_applied(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(setup)
    first = tmp_path / "first"
    assert _replay(setup, cfg, first, "--auto-ack", "20") == 0
    # The revert rehearsal (a dry run, no approval needed: it changes nothing), then the proposal.
    rehearsal, proposal = _lines(first / "commands.jsonl")
    assert rehearsal["rehearsal"] is True and rehearsal["requires_approval"] is False
    assert proposal["requires_approval"] is True  # auto-ack never applies a proposal: it waits
    html = render_report(first)
    assert f'data-command="{proposal["command_id"]}"' in html and "Pending approval" in html
    assert f"rollguard operator approve {proposal['rollout_id']} {proposal['command_id']}" in html
    assert "in 1" in html or "in " in html  # the time left before it expires

    inputs = tmp_path / "inputs.jsonl"
    at = proposal["issued_at"] + 60
    argv = ["operator", "approve", proposal["rollout_id"], proposal["command_id"], "--to-file", str(inputs),
            "--key-file", str(setup["key"]), "--at", str(at)]  # fmt: skip
    assert main(argv) == 0
    assert f"approve {proposal['rollout_id']} by alice (alice-1): op-" in capsys.readouterr().out

    second = tmp_path / "second"
    assert _replay(setup, cfg, second, "--auto-ack", "20", "--inputs", str(inputs)) == 0
    proposal2, approved = _lines(second / "commands.jsonl")[1:3]
    assert proposal2 == proposal
    assert (approved["approved_by"], approved["proposal_id"], approved["issued_at"]) == (
        "alice", proposal["command_id"], at,
    )  # fmt: skip
    audit = _lines(second / "audit.jsonl")
    (op,) = [a for a in audit if a["type"] == "operator"]
    assert (op["by"], op["key_id"], op["result"]) == (
        "alice", "alice-1", f"ok: {proposal['command_id']} approved as {approved['command_id']}",
    )  # fmt: skip
    acks = [a for a in audit if a["type"] == "ack" and a["command_id"] == approved["command_id"]]
    assert acks and acks[0]["status"] == "applied"
    html = render_report(second)
    assert 'approved by <b class="who">alice</b>' in html and "Pending approval" not in html
    assert '<td class="who">alice</td><td>alice-1</td><td>approve</td>' in html


def test_a_forged_approval_is_refused_and_the_proposal_keeps_waiting(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    cfg = _config(setup)
    first = tmp_path / "first"
    assert _replay(setup, cfg, first) == 0
    (proposal,) = [c for c in _lines(first / "commands.jsonl") if not c.get("rehearsal")]
    mallory = tmp_path / "mallory.key"
    assert (
        main(["operator", "keygen", "--operator", "alice", "--key-id", "alice-1", "--out", str(mallory)]) == 0
    )
    inputs = tmp_path / "inputs.jsonl"
    argv = ["operator", "approve", proposal["rollout_id"], proposal["command_id"], "--to-file", str(inputs),
            "--key-file", str(mallory), "--at", str(proposal["issued_at"] + 60)]  # fmt: skip
    assert main(argv) == 0
    out = tmp_path / "out"
    assert _replay(setup, cfg, out, "--inputs", str(inputs)) == 0
    commands = [c["command_id"] for c in _lines(out / "commands.jsonl") if not c.get("rehearsal")]
    assert commands == [proposal["command_id"]]
    (op,) = [a for a in _lines(out / "audit.jsonl") if a["type"] == "operator"]
    assert op["result"] == "rejected: signature check failed: bad_signature"


def test_a_declared_promotion_starts_the_post_rollout_phase(setup: dict[str, Path], tmp_path: Path) -> None:
    cfg = _config(setup)
    events = _lines(setup["events"])
    at = events[len(events) // 2]["ts"]
    inputs = tmp_path / "inputs.jsonl"
    argv = ["operator", "promote", events[0]["rollout_id"], "--to-file", str(inputs),
            "--key-file", str(setup["key"]), "--at", str(at), "--comment", "at 100%"]  # fmt: skip
    assert main(argv) == 0
    out = tmp_path / "out"
    assert _replay(setup, cfg, out, "--inputs", str(inputs)) == 0
    phases = [v for v in _lines(out / "verdicts.jsonl") if v["kind"] == "phase"]
    assert [(p["state"], p["evidence"]["reason"]) for p in phases] == [("post_rollout", "declared by alice")]
    assert phases[0]["ts"] >= at
    (op,) = [a for a in _lines(out / "audit.jsonl") if a["type"] == "operator"]
    assert (op["action"], op["result"]) == ("declare_promotion", "ok: promotion declared")


def test_without_a_key_or_a_destination_the_operator_command_says_what_is_missing(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROLLGUARD_OPERATOR_KEY", raising=False)
    assert main(["operator", "hold", "r1", "--to-file", "x"]) == 2
    assert "no key: pass --key-file or set ROLLGUARD_OPERATOR_KEY" in capsys.readouterr().err
    assert main(["operator", "hold", "r1", "--key-file", str(setup["key"])]) == 2
    assert "--bootstrap HOST:PORT" in capsys.readouterr().err
