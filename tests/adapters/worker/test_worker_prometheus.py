"""A real Prometheus (Debian's package, started on a loopback port) scrapes the worker's /metrics, and
rollguard's series come back through Prometheus's HTTP API: events consumed for the test rollout,
and the verdict-state gauge of its regressed cohort."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from worker_kit import ManualClock, make_topics, produce, rollout_key, wait_until

from kafka_broker import free_port
from rollguard.adapters.worker import WorkerOptions, create_app
from rollguard.settings import Config
from rollguard.sim import generate, get_scenario
from services import Service, prom_query
from services import wait_until as wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def test_prometheus_scrapes_the_worker_and_answers_with_its_series(
    kafka_bootstrap: str, tmp_path: Path, prometheus_for: Callable[[list[str]], Service]
) -> None:
    sc = get_scenario("error_spike_coding", seed=5, duration_s=300, rate_per_s=30, canary_weight=0.3,
                      start_s=30, error_rate=0.3)  # fmt: skip
    events = [orjson.dumps(ev) for ev in generate(sc)]
    topics = make_topics(kafka_bootstrap)
    produce(kafka_bootstrap, topics.events, events, rollout_key)
    port = free_port()
    options = WorkerOptions(kafka_bootstrap, app_id=f"prom-{topics.events}", web_port=port, idle_after_s=3600)
    wa = create_app(options, Config(), topics, clock=ManualClock())
    ready = threading.Event()
    stop = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        async def run() -> None:
            await wa.start()
            try:
                await wait_until(lambda: wa.stats.applied >= len(events), 240, "every event")
                ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.2)
            finally:
                await wa.stop()

        try:
            asyncio.run(run())
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    try:
        assert ready.wait(300) and not failure, failure
        prometheus = prometheus_for([f"127.0.0.1:{port}"])
        consumed_expr = f'sum(rollguard_events_consumed_total{{rollout="{sc.rollout_id}"}})'
        consumed = wait_for(lambda: prom_query(prometheus.url, consumed_expr), 60, what="the events series")
        assert float(consumed[0]["value"][1]) == len(events)
        labels = f'rollout="{sc.rollout_id}",cohort="input_class=coding",metric="error_rate"'
        state_expr = f"rollguard_verdict_state{{{labels}}}"
        regressed = wait_for(lambda: prom_query(prometheus.url, state_expr), 60, what="the verdict gauge")
        assert float(regressed[0]["value"][1]) == 2.0  # 2 = regressed
    finally:
        stop.set()
        worker.join(timeout=60)
