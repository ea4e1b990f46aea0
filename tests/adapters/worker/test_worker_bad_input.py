"""Bad input gets a clear error and loses nothing: thousands of fuzzed messages (hypothesis) mixed with
good events on the real broker — every bad one reaches the dead-letter topic with its reason, field and
source coordinates (a too-large one as a prefix with its size and hash), every good one is counted, and
the worker keeps running."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from worker_kit import ManualClock, make_topics, read_topic, wait_until

from rollguard.adapters.dead_letter import decode_original
from rollguard.adapters.worker import WorkerOptions, create_app
from rollguard.domain.events import Event, parse_event
from rollguard.settings import Config

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

BASE = {"request_id": "q", "arm": "control", "status": "ok", "latency_ms": 120.0}
ROLLOUTS = ("fuzz-a", "fuzz-b", "fuzz-c")


def _good(i: int) -> bytes:
    return orjson.dumps(
        {**BASE, "event_id": f"good-{i}", "rollout_id": ROLLOUTS[i % 3], "ts": 1767225600.0 + i}
    )


SPLICES = [b"\xff", b"\x00", b"\xc3", b'"\\ud800"', b"1e999", b"[" * 1500, b'"arm":"CANARY",', b"NaN", b"}"]


@st.composite
def bad_message(draw: st.DrawFn) -> bytes | None:
    """A message the v1 validator refuses: a mutated event, arbitrary bytes, a tombstone, or a huge one."""
    kind = draw(st.sampled_from(["mutation", "mutation", "mutation", "bytes", "tombstone", "wrong type"]))
    if kind == "tombstone":
        return None
    if kind == "bytes":
        raw = draw(st.binary(min_size=0, max_size=200))
    elif kind == "wrong type":
        field = draw(st.sampled_from(["ts", "arm", "status", "latency_ms", "segment", "rollout_id"]))
        value = draw(st.sampled_from([None, True, -5, "x" * 300, [1], {"a": 1}, 1e300]))
        raw = orjson.dumps(
            {**BASE, "event_id": "bad", "rollout_id": "fuzz-a", "ts": 1767225600.0, field: value}
        )
    else:
        raw = bytearray(_good(draw(st.integers(0, 10_000))))
        for _ in range(draw(st.integers(1, 6))):
            at = draw(st.integers(0, len(raw)))
            op = draw(st.sampled_from(["byte", "splice", "cut"]))
            if op == "byte" and at < len(raw):
                raw[at] = draw(st.integers(0, 255))
            elif op == "splice":
                raw[at:at] = draw(st.sampled_from(SPLICES))
            else:
                del raw[at:]
        raw = bytes(raw)
    if isinstance(parse_event(raw), Event):
        return b"\xff" + raw  # the mutation happened to stay valid: make it not
    return raw


def _corpus(n_batches: int) -> list[bytes | None]:
    """Fuzzed bad messages drawn by hypothesis, ``n_batches`` examples of 60."""
    found: list[bytes | None] = []

    @settings(
        max_examples=n_batches,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(bad_message(), min_size=60, max_size=60))
    def draw(batch: list[bytes | None]) -> None:
        found.extend(batch)

    draw()
    return found


def test_every_bad_message_is_dead_lettered_and_every_good_one_counted(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    from kafka import KafkaProducer

    bad = _corpus(40)
    huge = orjson.dumps({**BASE, "event_id": "huge", "rollout_id": "fuzz-a", "ts": "x" * 600_000})
    bad.append(huge)
    good = [_good(i) for i in range(3000)]
    topics = make_topics(kafka_bootstrap)
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=20, max_request_size=2 * 1024 * 1024
    )
    sent_bad: list[bytes | None] = []
    gi = bi = 0
    while gi < len(good) or bi < len(bad):
        # Interleaved: about one bad message for every good one, keys as producers would set them.
        if gi < len(good):
            producer.send(topics.events, key=ROLLOUTS[gi % 3].encode(), value=good[gi])
            gi += 1
        if bi < len(bad):
            key = None if bi % 7 == 0 and bad[bi] is not None else b"fuzz-a"
            producer.send(topics.events, key=key, value=bad[bi])
            sent_bad.append(bad[bi])
            bi += 1
    producer.flush()
    producer.close()

    clock = ManualClock()
    options = WorkerOptions(
        kafka_bootstrap, app_id=f"fuzz-{topics.events}", web_enabled=False, idle_after_s=5, tick_s=0.2
    )
    wa = create_app(options, Config(), topics, clock=clock)

    async def run() -> None:
        await wa.start()
        try:
            await wait_until(
                lambda: wa.stats.applied + wa.stats.dead_lettered >= len(good) + len(bad),
                300,
                "every message handled",
            )
            clock.now += 10
            await wait_until(
                lambda: all(
                    r.pipeline.engine.monitors[rid].counters["events"] == 1000
                    for rid, r in wa.runtime.runtimes.items()
                ),
                60,
                "the last batches",
            )
        finally:
            await wa.stop()

    asyncio.run(run())
    assert wa.stats.errors == 0, "no message made the worker fail"
    assert wa.stats.applied == len(good) and wa.stats.dead_lettered == len(sent_bad)
    records = [orjson.loads(v) for _, v in read_topic(kafka_bootstrap, topics.dead_letter)]
    assert len(records) == len(sent_bad)
    # Each record carries its original back: exactly, or (too large) a prefix, its size and its hash.
    expected = Counter(hashlib.sha256(m).hexdigest() if m is not None else None for m in sent_bad)
    found: Counter[str | None] = Counter()
    for record in records:
        assert record["reason"] and record["source_topic"] == topics.events and record["source_offset"] >= 0
        if record["reason"].startswith("message has no value"):
            found[None] += 1
        elif record.get("original_truncated"):
            assert record["original_size"] > len(decode_original(record))
            found[record["original_sha256"]] += 1
        else:
            found[hashlib.sha256(decode_original(record)).hexdigest()] += 1
    assert found == expected
    assert sum(1 for r in records if r.get("original_truncated")) == 1
