"""Messages Faust fetched but never delivered are not lost, even the last ones of a partition that then
goes quiet: faust-streaming clears its streams' queues whenever its flow control resumes (after each
rebalance, and again after table recovery), and the hole check needs a later message to notice. The
worker watches each source partition's high watermark and reads a stretch that does not come within
``STALL_S`` itself — here, after the test makes Faust drop the queued messages exactly as it does."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from worker_kit import ManualClock, make_topics, produce, rollout_key, wait_until

from rollguard.adapters.worker import WorkerOptions, create_app
from rollguard.adapters.worker.app import STALL_S
from rollguard.settings import parse_config
from rollguard.sim import generate, get_scenario

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]


def _queued(wa: Any, topic: str) -> int:
    """Messages of ``topic`` waiting in the queues of Faust's streams (fetched, not yet delivered)."""
    channels = wa.app.topics._topic_name_index.get(topic, ())  # the conductor's channels of that topic
    return sum(ch.queue.qsize() for ch in channels)


def test_the_last_messages_of_a_quiet_partition_dropped_by_faust_are_read_by_the_worker(
    kafka_bootstrap: str,
) -> None:
    events = [orjson.dumps(ev) for ev in generate(get_scenario("aa", seed=5, duration_s=60, rate_per_s=10))]
    first, rest = events[:200], events[200:]
    topics = make_topics(kafka_bootstrap, partitions=1)
    options = WorkerOptions(kafka_bootstrap, app_id=f"undelivered-{topics.events}", web_enabled=False,
                            tick_s=0.2)  # fmt: skip
    wa = create_app(options, parse_config(""), topics, clock=ManualClock())
    produce(kafka_bootstrap, topics.events, first, rollout_key)

    async def run() -> None:
        await wa.start()
        try:
            await wait_until(lambda: wa.stats.applied >= len(first), 120, "the first messages")
            async with wa.runtime.work_lock:  # the agent waits at its next message; the rest queue up
                await asyncio.to_thread(produce, kafka_bootstrap, topics.events, rest, rollout_key)
                await wait_until(lambda: _queued(wa, topics.events) > 0, 60, "messages in Faust's queue")
                await asyncio.sleep(1.0)  # let the fetcher hand over the rest
                wa.app.flow_control.resume()  # what Faust does at each resume: its stream queues are cleared
            started = asyncio.get_running_loop().time()
            await wait_until(lambda: wa.stats.applied >= len(events), 60, "the dropped messages")
            waited = asyncio.get_running_loop().time() - started
        finally:
            await wa.stop()
        assert wa.stats.refetched > 0, "the dropped messages were read by the worker itself"
        # ... and an operator sees it on /metrics, by topic and cause.
        exposed = wa.runtime.metrics.render().decode()
        assert f'rollguard_messages_refetched_total{{cause="stall",topic="{topics.events}"}}' in exposed
        assert waited < STALL_S + 10
        assert wa.stats.applied == len(events) and wa.stats.skipped == 0 and wa.stats.errors == 0

    asyncio.run(run())
