"""A replay never ends because of what a line contains: bad lines are set aside with a reason, and the
decisions are those of the same file without them. Only the environment (an unreadable file, a full
disk) can stop it, and then with one clear line."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollguard.adapters.replay import replay
from rollguard.cli import main
from rollguard.domain.events import Event, parse_event
from rollguard.policy.commands.signing import signed
from rollguard.policy.policy import Policy
from rollguard.settings.config import Config
from rollguard.sim import generate, get_scenario

DECISIONS = ("verdicts.jsonl", "alerts.jsonl", "commands.jsonl", "audit.jsonl")
GARBAGE = [b"\xff\xfe\x00", b"{", b"[]", b"null", b'"text"', b"{" * 3000, b"\x00" * 10]


def _invalid_copy(line: bytes, rng: random.Random) -> bytes:
    """A mutation of a valid line that the validator rejects (bad bytes, cut, wrong value, nesting)."""
    while True:
        raw = bytearray(line)
        kind = rng.randrange(5)
        at = rng.randrange(1, len(raw) - 1)
        if kind == 0:
            raw[at] = rng.choice([0xFF, 0x80, 0xC3, 0x00])
        elif kind == 1:
            del raw[at:]
        elif kind == 2:
            raw = bytearray(line.replace(b'"arm":"', b'"arm":"X', 1))
        elif kind == 3:
            raw[at:at] = b"[" * 2000
        else:
            raw = bytearray(rng.choice(GARBAGE))
        if b"\n" not in raw and not isinstance(parse_event(bytes(raw)), Event):
            return bytes(raw)


@pytest.fixture(scope="module")
def event_lines() -> list[bytes]:
    sc = get_scenario("error_spike_coding", seed=7, duration_s=20 * 60.0, error_rate=0.08)
    return [orjson.dumps(ev) for ev in generate(sc)]


def _replay(tmp: Path, name: str, lines: list[bytes], *extra: str) -> Path:
    events = tmp / f"{name}.jsonl"
    events.write_bytes(b"".join(line + b"\n" for line in lines))
    out = tmp / name
    assert main(["replay", str(events), "--out", str(out), "--auto-ack", "30", *extra]) == 0
    return out


def test_ten_percent_bad_lines_are_rejected_and_the_decisions_do_not_change(
    tmp_path: Path, event_lines: list[bytes]
) -> None:
    rng = random.Random(10)
    mixed: list[bytes] = []
    bad_at: list[int] = []
    for line in event_lines:
        if rng.random() < 0.1:
            mixed.append(_invalid_copy(line, rng))
            bad_at.append(len(mixed))  # 1-based line number of the bad copy
        mixed.append(line)
    clean = _replay(tmp_path, "clean", event_lines)
    dirty = _replay(tmp_path, "dirty", mixed)

    for name in DECISIONS:
        assert (clean / name).read_bytes() == (dirty / name).read_bytes(), name
    assert (clean / "commands.jsonl").read_bytes(), "the scenario issues a command"
    rejected = [orjson.loads(r) for r in (dirty / "rejected.jsonl").read_bytes().splitlines()]
    assert [r["line"] for r in rejected] == bad_at
    assert len(bad_at) > 0.08 * len(event_lines)
    for r in rejected:
        assert r["reason"] and len(r["reason"]) <= 200
    summary = orjson.loads((dirty / "summary.json").read_bytes())
    assert summary["rejected"] == len(bad_at) and summary["events"] == len(event_lines)


def test_bad_lines_in_the_inputs_file_are_rejected_not_fatal(
    tmp_path: Path, event_lines: list[bytes]
) -> None:
    start = orjson.loads(event_lines[0])["ts"]
    hold = {
        "action": "hold", "command_id": "op-1", "rollout_id": "error_spike_coding", "issued_by": "ana",
        "issued_at": start + 60, "operator": {"comment": "looking"},
    }  # fmt: skip
    release = {**hold, "action": "release", "command_id": "op-2", "issued_at": start + 600}
    good = [orjson.dumps(hold), orjson.dumps(release)]
    bad = [b"\xff not json", b"[1, 2]", b'{"action": 7}', b'{"rollout_id": "x"}', b'{"status": "applied"}']
    (tmp_path / "good.jsonl").write_bytes(b"\n".join(good) + b"\n")
    (tmp_path / "mixed.jsonl").write_bytes(b"\n".join([bad[0], good[0], *bad[1:], good[1]]) + b"\n")
    clean = _replay(tmp_path, "clean", event_lines, "--inputs", str(tmp_path / "good.jsonl"))
    dirty = _replay(tmp_path, "dirty", event_lines, "--inputs", str(tmp_path / "mixed.jsonl"))
    for name in DECISIONS:
        assert (clean / name).read_bytes() == (dirty / name).read_bytes(), name
    rejected = [orjson.loads(r) for r in (dirty / "rejected.jsonl").read_bytes().splitlines()]
    assert [(r["file"], r["line"]) for r in rejected] == [("inputs", n) for n in (1, 3, 4, 5, 6)]
    assert [r["field"] for r in rejected] == ["", "", "action", "command_id", "command_id"]
    audit = [orjson.loads(r) for r in (clean / "audit.jsonl").read_bytes().splitlines()]
    assert [a["result"] for a in audit if a["type"] == "operator"] == [
        "ok: automatic commands held",
        "ok: released",
    ]


def test_a_rejected_operator_action_for_a_rollout_with_no_state_is_rejected_as_the_worker_dead_letters_it(
    tmp_path: Path, event_lines: list[bytes]
) -> None:
    """Forged or malformed and addressed to a rollout that has no state: bad input, not a decision —
    in rejected.jsonl with the worker's dead-letter reason, field and contract, not audited, no rollout."""
    key = b"replay-stray-key"
    first = orjson.loads(event_lines[0])
    start, traffic = first["ts"], first["rollout_id"]

    def hold(rollout_id: str, command_id: str) -> dict[str, object]:
        return {"schema_version": 1, "action": "hold", "command_id": command_id, "rollout_id": rollout_id,
                "issued_by": "ana", "issued_at": start + 60, "expires_at": start + 3600,
                "operator": {}}  # fmt: skip

    forged = {**hold("ghost", "op-forged"), "signature": "ab" * 32}
    malformed = {k: v for k, v in hold("ghost-2", "op-malformed").items() if k != "issued_by"}
    early = signed(hold("starts-later", "op-early"), key)  # accepted: an operator may hold in advance
    known = {**hold(traffic, "op-known"), "issued_at": start + 120, "signature": "cd" * 32}
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_bytes(b"".join(orjson.dumps(i) + b"\n" for i in (forged, malformed, early, known)))
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(line + b"\n" for line in event_lines))

    summary = replay(events, Config(), tmp_path / "out", signing_key=key, inputs=inputs)

    rejected = [orjson.loads(r) for r in (tmp_path / "out" / "rejected.jsonl").read_bytes().splitlines()]
    assert rejected == [
        {"file": "inputs", "line": 1, "field": "action", "contract": "operator",
         "reason": "for a rollout with no state here, rejected: signature check failed: bad_signature"},
        {"file": "inputs", "line": 2, "field": "action", "contract": "operator",
         "reason": "for a rollout with no state here, rejected: issued_by is required"},
    ]  # fmt: skip
    assert summary.inputs_rejected == 2
    audit = [orjson.loads(r) for r in (tmp_path / "out" / "audit.jsonl").read_bytes().splitlines()]
    results = {a["command_id"]: a["result"] for a in audit if a["type"] == "operator"}
    # A rollout with state audits what it rejected; the stray actions are not audited at all.
    assert results == {
        "op-early": "ok: automatic commands held",
        "op-known": "rejected: signature check failed: bad_signature",
    }
    report = orjson.loads((tmp_path / "out" / "summary.json").read_bytes())
    assert sorted(report["readiness"]) == sorted([traffic, "starts-later"]), "no state for a ghost"


def test_an_unreadable_file_or_unwritable_output_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rollguard: replay stopped: ") and "missing.jsonl" in err and err.count("\n") == 1
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"")
    (tmp_path / "file").write_bytes(b"")
    assert main(["replay", str(events), "--out", str(tmp_path / "file")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rollguard: replay stopped: ") and "Traceback" not in err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_stops_the_replay_with_one_line(
    tmp_path: Path, event_lines: list[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(line + b"\n" for line in event_lines[:20000]))
    out = tmp_path / "out"
    out.mkdir()
    (out / "verdicts.jsonl").symlink_to("/dev/full")
    assert main(["replay", str(events), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rollguard: replay stopped: No space left on device") and err.count("\n") == 1


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
KEYS = st.sampled_from([
    "action", "command_id", "rollout_id", "issued_by", "issued_at", "operator", "status", "at", "reason",
    "until", "duration_s", "matchers", "alert_id", "silence_id", "metric", "verdict", "scope", "signature",
])  # fmt: skip
ACTIONS = st.sampled_from(["hold", "release", "silence", "unsilence", "approve", "reject", "override_verdict",
                           "acknowledge_alert", "applied", "rejected", "dry_run_ok"])  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(
    items=st.lists(
        st.fixed_dictionaries(
            {"rollout_id": st.sampled_from(["r", "x"]), "command_id": st.text(max_size=4)},
            optional={"action": ACTIONS, "status": ACTIONS, "operator": st.dictionaries(KEYS, JSONISH)},
        ).flatmap(lambda base: st.dictionaries(KEYS, JSONISH, max_size=4).map(lambda more: {**base, **more})),
        max_size=6,
    )
)
def test_whatever_an_ack_or_operator_action_holds_the_policy_audits_it(
    items: list[dict[str, object]],
) -> None:
    policy = Policy(Config())
    for item in items:
        out = policy.on_operator(item) if "action" in item else policy.on_ack(item)
        assert out.audit, "every input leaves an audit record"
