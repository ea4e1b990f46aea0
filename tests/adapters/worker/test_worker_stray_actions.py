"""Nothing a message says can make the worker hold state for rollouts that do not exist: operator
actions on the control topic addressed to rollouts the worker has no state for, and rejected anyway
(forged, malformed), go to the dead-letter topic with the reason and create no rollout, no checkpoint;
a valid action for a rollout that has not started yet (an operator holding it in advance) is applied.
``rollguard replay`` given the same actions agrees: the same reasons in ``rejected.jsonl``, no audit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from worker_kit import ManualClock, make_topics, produce, read_topic, rollout_key, wait_until

from rollguard.adapters.replay import replay
from rollguard.adapters.worker import WorkerOptions, create_app
from rollguard.policy.commands.signing import signed
from rollguard.settings import Config
from rollguard.sim import generate, get_scenario

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]
KEY = b"stray-actions-signing-key"
AT = 1_767_225_600.0


def _hold(rollout_id: str, command_id: str) -> dict[str, object]:
    return {"schema_version": 1, "action": "hold", "command_id": command_id, "rollout_id": rollout_id,
            "issued_by": "ana", "issued_at": AT, "expires_at": AT + 3600, "operator": {}}  # fmt: skip


def test_rejected_actions_for_unknown_rollouts_are_dead_lettered_and_create_no_state(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = make_topics(kafka_bootstrap)
    forged = [orjson.dumps({**_hold(f"ghost-{i}", f"op-{i}"), "signature": "ab" * 32}) for i in range(60)]
    malformed = [orjson.dumps({k: v for k, v in _hold(f"ghost-m{i}", f"opm-{i}").items() if k != "issued_by"})
                 for i in range(20)]  # fmt: skip
    valid = orjson.dumps(signed(_hold("starts-later", "op-valid"), KEY))
    actions = [*forged, *malformed, valid]
    produce(kafka_bootstrap, topics.control, actions, rollout_key)
    options = WorkerOptions(kafka_bootstrap, app_id=f"stray-{topics.events}", web_enabled=False, tick_s=0.2)
    wa = create_app(options, Config(), topics, signing_key=KEY, clock=ManualClock())

    async def run() -> None:
        await wa.start()
        try:
            await wait_until(
                lambda: wa.stats.dead_lettered >= len(forged) + len(malformed), 120, "dead letters"
            )
            await wait_until(lambda: "starts-later" in wa.runtime.runtimes, 60, "the valid hold applied")
        finally:
            await wa.stop()

    asyncio.run(run())
    assert sorted(wa.runtime.runtimes) == ["starts-later"], "no state for rollouts that do not exist"
    letters = [orjson.loads(v) for _, v in read_topic(kafka_bootstrap, topics.dead_letter)]
    reasons = [d["reason"] for d in letters]
    assert {d["contract"] for d in letters} == {"operator"} and {d["field"] for d in letters} == {"action"}
    assert len(letters) == len(forged) + len(malformed)
    assert sum("rejected: signature check failed" in r for r in reasons) == len(forged)
    assert sum("rejected: issued_by is required" in r for r in reasons) == len(malformed)
    audit = [orjson.loads(v) for _, v in read_topic(kafka_bootstrap, topics.audit)]
    held = [a for a in audit if a.get("command_id") == "op-valid"]
    assert held and held[0]["result"].startswith("ok"), held

    # Replay, given the same actions (and some traffic of another rollout, so that their time comes).
    (tmp_path / "inputs.jsonl").write_bytes(b"".join(a + b"\n" for a in actions))
    traffic = generate(get_scenario("aa", seed=1, duration_s=120.0))
    (tmp_path / "events.jsonl").write_bytes(b"".join(orjson.dumps(ev) + b"\n" for ev in traffic))
    out = tmp_path / "replay"
    replay(tmp_path / "events.jsonl", Config(), out, signing_key=KEY, inputs=tmp_path / "inputs.jsonl")
    rejected = [orjson.loads(r) for r in (out / "rejected.jsonl").read_bytes().splitlines()]
    replayed = sorted((r["field"], r["reason"], r["contract"]) for r in rejected)
    assert replayed == sorted((d["field"], d["reason"], d["contract"]) for d in letters)
    replay_audit = [orjson.loads(r) for r in (out / "audit.jsonl").read_bytes().splitlines()]
    assert [a["command_id"] for a in replay_audit if a["type"] == "operator"] == ["op-valid"]
    assert [a["command_id"] for a in audit if a.get("type") == "operator"] == ["op-valid"], "no audit either"
