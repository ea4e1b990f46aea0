"""``rollguard simulate``: the simulator's traffic (scenario, rate, duration, injected changes) to a file,
deterministically, or to a Kafka topic at a given pace with present-day timestamps."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from rollguard.cli import main


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_to_a_file_the_same_arguments_give_the_same_bytes_with_the_injected_change(tmp_path: Path) -> None:
    argv = ["simulate", "--rate", "60", "--duration", "10m", "--canary-weight", "0.5",
            "--inject", "error_rate=0.3@5m:input_class=coding", "--rollout-id", "sim-1"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "a.jsonl")]) == 0
    assert main([*argv, "--out", str(tmp_path / "b.jsonl")]) == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    events = _lines(tmp_path / "a.jsonl")
    start = events[0]["ts"]
    assert start == pytest.approx(1_767_225_600.0, abs=1) and events[-1]["ts"] - start < 600
    assert {e["rollout_id"] for e in events} == {"sim-1"}
    assert 60 * 600 * 0.9 < len(events) < 60 * 600 * 1.1

    def error_share(arm: str, cls: str, after: bool) -> float:
        sel = [e for e in events if e["arm"] == arm and e["segment"]["input_class"] == cls
               and (e["ts"] - start >= 300) == after]  # fmt: skip
        return sum(e["status"] == "error" for e in sel) / len(sel)

    assert error_share("canary", "coding", after=True) > 0.2  # the change, where and when it was put
    assert error_share("canary", "coding", after=False) < 0.05
    assert error_share("canary", "chat", after=True) < 0.05
    assert error_share("control", "coding", after=True) < 0.05


def test_start_now_gives_present_day_timestamps(tmp_path: Path) -> None:
    before = time.time()
    assert main(["simulate", "--duration", "30", "--start", "now", "--out", str(tmp_path / "e.jsonl")]) == 0
    events = _lines(tmp_path / "e.jsonl")
    assert before - 1 <= events[0]["ts"] <= time.time() + 1


def test_a_bad_injection_is_refused_with_what_is_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--inject", "errors=0.3", "--out", "x"])
    assert info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "unknown metric 'errors': one of cost, drop_events, error_rate, eval_score" in err
    assert main(["simulate", "--inject", "error_rate=0.3:input_class=nope", "--out", "x"]) == 2
    assert "input_class='nope' is not a value of input_class" in capsys.readouterr().err


@pytest.mark.kafka
@pytest.mark.timeout(120)
def test_to_kafka_at_a_given_pace_with_present_day_timestamps(kafka_bootstrap: str) -> None:
    import uuid

    from kafka import KafkaConsumer
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"sim-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    t0, wall0 = time.time(), time.monotonic()
    argv = ["simulate", "--bootstrap", kafka_bootstrap, "--topic", topic, "--rate", "20", "--duration", "20",
            "--speed", "4", "--rollout-id", "sim-k"]  # fmt: skip
    assert main(argv) == 0
    wall = time.monotonic() - wall0
    assert 4.0 <= wall < 20  # 20 simulated seconds at 4x: about 5 s
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)  # fmt: skip
    messages = list(consumer)
    consumer.close()
    assert 300 < len(messages) < 500 and {m.key for m in messages} == {b"sim-k"}
    stamps = [orjson.loads(m.value)["ts"] for m in messages]
    assert t0 - 1 <= min(stamps) and max(stamps) <= t0 + 21  # now, not 2026-01-01
