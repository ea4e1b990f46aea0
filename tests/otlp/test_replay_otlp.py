"""``rollguard replay`` on a file of OTLP JSON trace payloads decides exactly as on the same traffic as v1
events: the spans an instrumented application exports (real OpenTelemetry SDK, flags evaluated through
OpenFeature with its tracing hook against flagd) are all rollguard needs."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from otlp_testkit import CONFIG, MARKER, make_traffic, otlp_json, write_flags
from rollguard.cli import main

OUTPUTS = ("verdicts.jsonl", "alerts.jsonl", "commands.jsonl", "audit.jsonl")
REPLAY_CONFIG = CONFIG + "embeddings: {enabled: false}\n"


def lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.slow
def test_replay_of_otlp_json_spans_decides_as_replay_of_the_same_traffic_as_v1_events(tmp_path: Path) -> None:
    traffic = make_traffic(
        write_flags(tmp_path / "flags.json"), n=3000, start_s=1_767_225_600.0, duration_s=1200
    )
    spans = tmp_path / "spans.jsonl"
    payloads = [otlp_json(p) for p in traffic.payloads()]
    payloads.insert(3, b'{"resourceSpans": "truncated by a disk-full exporter"}')
    spans.write_bytes(b"\n".join(payloads) + b"\n")
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in traffic.events))
    config = tmp_path / "rollguard.yaml"
    config.write_text(REPLAY_CONFIG)

    assert main(["replay", str(spans), "--config", str(config), "--out", str(tmp_path / "otlp")]) == 0
    assert main(["replay", str(events), "--config", str(config), "--out", str(tmp_path / "v1")]) == 0

    for name in OUTPUTS:
        assert (tmp_path / "otlp" / name).read_bytes() == (tmp_path / "v1" / name).read_bytes(), name
    assert lines(tmp_path / "v1" / "commands.jsonl") and lines(tmp_path / "v1" / "alerts.jsonl")

    summary = orjson.loads((tmp_path / "otlp" / "summary.json").read_bytes())
    assert summary["events"] == len(traffic.events)
    assert summary["otlp"]["unjoined"] == traffic.unjoined
    assert summary["otlp"]["not_inference"] == traffic.not_inference
    assert summary["otlp"]["bad_payloads"] == 1 and summary["otlp"]["late"] == 0
    rejected = lines(tmp_path / "otlp" / "rejected.jsonl")
    assert [(r["line"], r["field"]) for r in rejected[:1]] == [(4, "resourceSpans")]
    assert [(r["trace_id"], r["span_id"], r["field"]) for r in rejected[1:]] == [
        (*traffic.malformed[0], "gen_ai.usage.output_tokens")
    ]
    for out in (tmp_path / "otlp").iterdir():
        assert MARKER.encode() not in out.read_bytes(), f"message content copied into {out.name}"


def test_replay_tells_an_otlp_file_from_an_events_file_by_its_first_line(tmp_path: Path) -> None:
    traffic = make_traffic(write_flags(tmp_path / "flags.json"), n=60, start_s=1_767_225_600.0, duration_s=60)
    spans = tmp_path / "spans.jsonl"
    spans.write_bytes(b"\n".join(otlp_json(p) for p in traffic.payloads()) + b"\n")
    config = tmp_path / "rollguard.yaml"
    config.write_text(REPLAY_CONFIG)
    assert main(["replay", str(spans), "--config", str(config), "--out", str(tmp_path / "auto")]) == 0
    assert (
        main(["replay", str(spans), "--format", "v1", "--config", str(config), "--out", str(tmp_path / "v1")])
        == 0
    )
    assert orjson.loads((tmp_path / "auto" / "summary.json").read_bytes())["events"] == len(traffic.events)
    as_events = orjson.loads((tmp_path / "v1" / "summary.json").read_bytes())
    assert as_events["events"] == 0 and as_events["rejected"] == len(traffic.payloads())
