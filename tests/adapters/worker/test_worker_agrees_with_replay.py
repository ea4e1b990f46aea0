"""`rollguard worker` and `rollguard replay` are two drivers of one core: on the same events they
publish the same verdicts, alerts, commands and audit records — same ids, scopes, event-time stamps
and signatures.

The differences that are inherent are excluded by name, never by loosening the comparison: an idle
rollout's clock moves on by the wall time since its last event (here ``IDLE_S`` seconds), so records
stamped after a rollout's last event time exist only in the worker; and acks and operator actions
take effect when they arrive, not at a time they carry (``test_worker_ladder`` covers acks).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from worker_kit import (
    ManualClock,
    make_topics,
    produce,
    replay_outputs,
    rollout_key,
    run_until_idle,
    scenario_events,
    stamped_until,
    worker_outputs,
)

from rollguard.adapters.worker import WorkerOptions, create_app
from rollguard.settings import Config

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]
IDLE_S = 45.0


def test_the_worker_publishes_what_replay_writes(kafka_bootstrap: str, tmp_path: Path) -> None:
    events = scenario_events()
    last_ts: dict[str, float] = {}
    for value in events:
        ev = orjson.loads(value)
        last_ts[ev["rollout_id"]] = max(last_ts.get(ev["rollout_id"], 0.0), float(ev["ts"]))
    expected = replay_outputs(events, tmp_path)
    assert any(c["action"] == "disable_scope" for c in expected["control"])
    assert sum(a["severity"] == "critical" for a in expected["alerts"]) >= 3

    topics = make_topics(kafka_bootstrap)
    produce(kafka_bootstrap, topics.events, events, rollout_key)
    clock = ManualClock()
    options = WorkerOptions(
        kafka_bootstrap,
        app_id=f"agree-{topics.events}",
        web_enabled=False,
        idle_after_s=IDLE_S,
        tick_s=0.2,
        checkpoint_every_s=0.0,
    )
    wa = create_app(options, Config(), topics, clock=clock)

    async def run() -> None:
        try:
            await run_until_idle(wa, clock, len(events), idle_after_s=IDLE_S)
        finally:
            await wa.stop()

    asyncio.run(run())
    assert wa.stats.errors == 0 and wa.stats.dead_lettered == 0
    got = worker_outputs(kafka_bootstrap, topics)
    assert stamped_until(got, last_ts) == stamped_until(expected, last_ts)
    # Only the wall-clock advance of the idle rollouts adds records, all stamped after their last event.
    extra = {kind: len(got[kind]) - len(expected[kind]) for kind in got}
    assert all(n >= 0 for n in extra.values()), extra
