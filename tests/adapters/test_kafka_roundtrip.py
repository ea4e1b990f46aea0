"""Round trip through a real broker: produce a v1 event with kafka-python, consume it, validate it."""

from __future__ import annotations

import uuid

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from rollguard.adapters.topic_contracts import TopicSpec
from rollguard.adapters.topics_admin import apply_specs
from rollguard.domain.events import Event, parse_event

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

EVENT = {
    "event_id": "e-42",
    "request_id": "r-42",
    "ts": 1767225600.25,
    "rollout_id": "chat-v42",
    "arm": "canary",
    "variant": "model-2026-01",
    "segment": {"input_class": "coding", "tenant": "t3"},
    "unit_id": "u-7",
    "canary_weight": 0.05,
    "status": "ok",
    "latency_ms": 812.5,
    "ttft_ms": 140.0,
    "tokens_in": 320.0,
    "tokens_out": 95.0,
    "cost_usd": 0.0021,
    "format_valid": True,
    "quality": {"eval_score": 0.82},
    "response_embedding": [0.1, -0.2, 0.3],
    "router_region": "eu-west",  # unknown to v1: must survive
}


def test_event_round_trip_through_kafka(kafka_bootstrap: str) -> None:
    topic = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(
        topic, "events", "round trip", 1, 1, 3_600_000, "delete", "rollout_id", "schemas/event.v1.json"
    )
    apply_specs(kafka_bootstrap, [spec])

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        meta = producer.send(topic, key=b"chat-v42", value=orjson.dumps(EVENT)).get(timeout=30)
    finally:
        producer.close()

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, consumer_timeout_ms=20_000)
    try:
        tp = TopicPartition(topic, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        message = next(iter(consumer))
    finally:
        consumer.close()

    assert message.key == b"chat-v42"
    event = parse_event(message.value)
    assert isinstance(event, Event), event
    assert event.rollout_id == message.key.decode()
    assert event.segment == {"input_class": "coding", "tenant": "t3"}
    assert event.extra == {"router_region": "eu-west"}
    assert event.to_dict() == EVENT
