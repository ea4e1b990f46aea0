"""``rollguard preflight``: the current readiness of a rollout among the control topic's records, its
checklist in words, signatures checked, usage errors in one line; and the operator's ``rehearse_revert``
(what ``preflight --rehearse`` sends) issuing a fresh dry-run rollback in the core, replayed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from core_traffic import T0, Traffic
from rollguard.adapters.operator import build_action, write_key_file
from rollguard.adapters.preflight import latest_record, render, signature_state
from rollguard.adapters.replay import replay
from rollguard.cli import main
from rollguard.policy.commands.signing import signed
from rollguard.settings.config import parse_config

KEY = b"preflight-key"


def _record(seq: int, ready: bool, **extra: Any) -> dict[str, Any]:
    checks = [
        {"check": "revert", "mode": "block", "state": "met" if ready else "unmet",
         "evidence": "dry-run rollback cmd-1 answered dry_run_ok" if ready else "revert path not rehearsed",
         "to_satisfy": "" if ready else "a controller answers the dry-run rollback cmd-1 with dry_run_ok"},
        {"check": "eval_gate", "mode": "off", "state": "off", "evidence": "no report", "to_satisfy": ""},
    ]  # fmt: skip
    return {"kind": "readiness", "rollout_id": "r1", "sequence": seq, "ready": ready, "checks": checks,
            "blocking": [] if ready else ["revert"], "warnings": [], **extra}  # fmt: skip


def test_the_current_readiness_is_the_highest_sequence_of_the_rollout_and_commands_are_ignored() -> None:
    records = [_record(1, False), _record(3, True), _record(2, False)]
    records.append({**_record(9, False), "rollout_id": "x"})
    records.append({"action": "rollback", "rollout_id": "r1", "sequence": 12})
    current = latest_record(records, "r1")
    assert current is not None and current["sequence"] == 3 and current["ready"] is True
    assert latest_record(records, "unknown") is None


def test_the_checklist_says_what_is_unmet_and_what_would_satisfy_it() -> None:
    text = render(_record(2, False), "the control topic t.control", "verified")
    assert text.splitlines()[0] == "r1: NOT READY  (readiness #2, from the control topic t.control)"
    assert "[XX] revert (block, unmet): revert path not rehearsed" in text
    assert "to satisfy: a controller answers the dry-run rollback cmd-1 with dry_run_ok" in text
    assert "[--] eval_gate (off, off)" in text and "blocking: revert" in text
    assert "signature: verified" in text


def test_a_record_is_verified_with_the_command_key_and_a_tampered_one_is_not() -> None:
    record = signed(_record(1, False), KEY)
    assert signature_state(record, KEY) == "verified"
    assert signature_state({**record, "ready": True}, KEY) == "INVALID (bad_signature)"
    assert signature_state(_record(1, True, signature=""), KEY) == "INVALID (unsigned)"
    assert signature_state(record, None).startswith("not checked")


def test_usage_errors_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preflight", "r1"]) == 2
    assert "--bootstrap HOST:PORT" in capsys.readouterr().err
    assert main(["preflight", "r1", "--status-url", "http://127.0.0.1:9", "--rehearse"]) == 2
    assert "--rehearse publishes on the control topic" in capsys.readouterr().err


def test_the_operators_rehearse_revert_issues_a_new_dry_run_rollback_and_readiness_waits_for_it(
    tmp_path: Path,
) -> None:
    events = tmp_path / "events.jsonl"
    with open(events, "wb") as fh:
        for ev in Traffic(rate=5, weight_at=lambda t: 0.2, rollout_id="r1").events(600):
            fh.write(orjson.dumps(ev.to_dict()) + b"\n")
    key = write_key_file(tmp_path / "alice.key", "alice-1", "alice")
    config = parse_config(
        "readiness: {baselines: off, rehearsal_timeout_s: 60}\n"
        f"operators: {{keys: {{alice-1: {{operator: alice, public_key: {key.public_b64}}}}}}}\n"
    )
    inputs = tmp_path / "inputs.jsonl"
    asks = [build_action("rehearse_revert", rid, {}, key, issued_at=T0 + at) for rid, at in
            (("r1", 300.0), ("nobody", 310.0))]  # fmt: skip
    inputs.write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in asks))
    replay(events, config, tmp_path / "out", signing_key=KEY, inputs=inputs, auto_ack_s=5.0)

    commands = [orjson.loads(x) for x in (tmp_path / "out" / "commands.jsonl").read_bytes().splitlines()]
    rehearsals = [c for c in commands if c.get("rehearsal")]
    assert [round(c["issued_at"] - T0) for c in rehearsals] == [0, 300]
    assert len({c["command_id"] for c in rehearsals}) == 2 and all(c["dry_run"] for c in rehearsals)
    records = [orjson.loads(x) for x in (tmp_path / "out" / "readiness.jsonl").read_bytes().splitlines()]
    # ready after the first answer, pending again at the operator's ask, ready after the second answer
    timeline = [(r["ready"], round(r["at"] - T0)) for r in records]
    assert timeline == [(False, 0), (True, 5), (False, 300), (True, 305)]
    audit = [orjson.loads(x) for x in (tmp_path / "out" / "audit.jsonl").read_bytes().splitlines()]
    results = {a["rollout_id"]: a["result"] for a in audit if a.get("action") == "rehearse_revert"}
    assert results["r1"].startswith(f"ok: rehearsal {rehearsals[1]['command_id']} (attempt 2)")
    # A rollout with no state: set aside as the worker dead-letters it, with the policy's reason.
    assert "nobody" not in results
    rejected = [orjson.loads(x) for x in (tmp_path / "out" / "rejected.jsonl").read_bytes().splitlines()]
    assert [(r["line"], r["field"], r["contract"]) for r in rejected] == [(2, "action", "operator")]
    why = "for a rollout with no state here, rejected: no event of this rollout yet"
    assert rejected[0]["reason"].startswith(why)


@pytest.mark.parametrize(
    ("canary_parts", "state", "evidence"),
    [
        ({"model": "m-2", "prompt": "p-2"}, "unmet", "bundled change: model and prompt changed together"),
        ({"model": "m-1", "prompt": "p-2"}, "met", "one part changed: prompt"),
    ],
    ids=["bundled", "bounded"],
)
def test_a_canary_that_changes_several_variant_parts_is_a_bundled_change_in_its_readiness(
    tmp_path: Path, canary_parts: dict[str, str], state: str, evidence: str
) -> None:
    events = tmp_path / "events.jsonl"
    control_parts = {"model": "m-1", "prompt": "p-1"}
    with open(events, "wb") as fh:
        for ev in Traffic(rate=5, weight_at=lambda t: 0.2, rollout_id="r1").events(300):
            record = ev.to_dict()
            record["variant_parts"] = canary_parts if record["arm"] == "canary" else control_parts
            fh.write(orjson.dumps(record) + b"\n")
    config = parse_config("readiness: {baselines: off, revert: off}\n")
    summary = replay(events, config, tmp_path / "out", signing_key=KEY)
    assert summary.rejected == 0
    last = [orjson.loads(x) for x in (tmp_path / "out" / "readiness.jsonl").read_bytes().splitlines()][-1]
    bundled = next(c for c in last["checks"] if c["check"] == "bundled")
    assert (bundled["mode"], bundled["state"], bundled["evidence"]) == ("warn", state, evidence)
    assert last["ready"] is True  # a warning by default, not a block
    assert last["warnings"] == (["bundled"] if state == "unmet" else [])
