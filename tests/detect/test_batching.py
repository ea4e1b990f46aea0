"""The open batch: a batch closes on event time and size, late events join it, it is saved whole."""

from __future__ import annotations

import orjson

from core_traffic import T0, request
from rollguard.detect.batching import OpenBatch


def feed(batch: OpenBatch, times: list[float]) -> list[int]:
    """Sizes of the batches closed while taking events at ``times`` (seconds after T0)."""
    closed = [batch.add(request(t)) for t in times]
    return [len(c) for c in closed if c is not None]


def test_a_batch_closes_once_it_spans_batch_seconds_and_holds_min_batch_events() -> None:
    batch = OpenBatch(batch_seconds=5.0, min_batch_events=3, max_batch_seconds=30.0)
    assert feed(batch, [0.0, 1.0, 2.0, 4.9]) == []
    assert feed(batch, [5.0]) == [4]  # the event at 5 s closes the batch and opens the next one
    assert [ev.ts for ev in batch.events] == [T0 + 5.0]
    assert batch.end_ts == T0 + 4.9


def test_a_batch_short_of_min_batch_events_closes_after_max_batch_seconds() -> None:
    batch = OpenBatch(batch_seconds=5.0, min_batch_events=1000, max_batch_seconds=30.0)
    assert feed(batch, [float(t) for t in range(30)]) == []
    assert feed(batch, [30.0]) == [30]


def test_the_next_batch_starts_on_the_batch_seconds_grid() -> None:
    batch = OpenBatch(batch_seconds=5.0, min_batch_events=1, max_batch_seconds=30.0)
    feed(batch, [1.0, 7.5])
    assert batch.start == T0 + 5.0


def test_a_late_event_joins_the_open_batch_and_is_counted() -> None:
    batch = OpenBatch(batch_seconds=5.0, min_batch_events=1, max_batch_seconds=30.0)
    feed(batch, [10.0, 11.0, 3.0])
    assert batch.late == 1 and len(batch.events) == 3
    cols = batch.close()
    assert cols is not None and cols.ts.min() == T0 + 3.0
    assert batch.end_ts == T0 + 11.0 and batch.watermark == T0 + 11.0


def test_closing_an_empty_batch_gives_nothing() -> None:
    batch = OpenBatch(batch_seconds=5.0, min_batch_events=1, max_batch_seconds=30.0)
    assert batch.close() is None
    feed(batch, [1.0])
    assert batch.close() is not None and batch.close() is None


def test_the_open_batch_survives_a_state_round_trip() -> None:
    batch = OpenBatch(batch_seconds=5.0, min_batch_events=3, max_batch_seconds=30.0)
    feed(batch, [0.0, 1.0, 2.0, 6.0, 7.0])
    state = orjson.loads(orjson.dumps(batch.to_state()))
    restored = OpenBatch.from_state(state, 5.0, 3, 30.0)
    assert restored.to_state() == batch.to_state()
    assert feed(restored, [8.0, 12.0]) == feed(batch, [8.0, 12.0]) == [3]
