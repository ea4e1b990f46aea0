"""The saved state is a stored format: the streaming service keeps ``Engine.to_state()`` in a changelog.

A fixed, deterministic stream (the simulator's ``error_spike_coding``, seed 7, 10 minutes, a promotion
at minute 8, stopped mid-batch) must save to exactly the bytes of the golden file checked in next to
this test, and a state must survive a round trip unchanged and keep deciding as if never stopped.

Regenerate the golden only for a deliberate format change: ``python tests/detect/test_saved_state.py``.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson

from rollguard.detect.engine import Engine
from rollguard.domain.events import Event, parse_event
from rollguard.sim import generate, get_scenario

GOLDEN = Path(__file__).parent / "golden" / "error_spike_coding_seed7_state.json.gz"
# The same state saved when the onset detectors had four alternatives (step·{1, 2, 4, 8}): a service
# upgraded over its changelog must restore it.
GOLDEN_4_ALTERNATIVES = GOLDEN.with_name("error_spike_coding_seed7_state_4_alternatives.json.gz")
STOP = 22_000  # events processed before saving: the open batch holds the last few
PROMOTE_AFTER_S = 480.0

MONITOR_KEYS = [
    "v", "rollout_id", "phase", "promoted_at", "last_control_ts", "canary_run", "dims", "cap", "counts",
    "moments", "quality", "hists", "buffer", "batch_start", "batch_end_ts", "watermark", "canary_variant",
    "counters", "registry", "budget", "tests", "tail_state", "tail_onset", "excess", "srm", "health",
    "units", "srm_requests", "baseline", "baseline_hists",
]  # fmt: skip


def stream() -> list[Event]:
    sc = get_scenario("error_spike_coding", seed=7, duration_s=600.0, start_s=120.0, error_rate=0.2)
    events = [parse_event(orjson.dumps(raw)) for raw in generate(sc)]
    return [ev for ev in events if isinstance(ev, Event)]


def run(engine: Engine, events: list[Event], promote_at: float) -> list[dict[str, Any]]:
    """Feed ``events``; the rollout is promoted (an operator's word) at the first event at ``promote_at``."""
    out: list[dict[str, Any]] = []
    for ev in events:
        monitor = engine.monitors.get(ev.rollout_id)
        if ev.ts >= promote_at and monitor is not None and monitor.phase == "canary":
            out += [c.to_dict() for c in engine.promote(ev.rollout_id, ev.ts)]
        out += [c.to_dict() for c in engine.process(ev)]
    return out


def saved_engine() -> tuple[Engine, list[Event], float]:
    events = stream()
    promote_at = events[0].ts + PROMOTE_AFTER_S
    engine = Engine()
    run(engine, events[:STOP], promote_at)
    return engine, events, promote_at


def first_difference(a: Any, b: Any, path: str = "$") -> str:
    """Where two JSON values first differ (keys in order count), for a readable failure."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)} != {list(b)}"
        for k in a:
            if a[k] != b[k] or orjson.dumps(a[k]) != orjson.dumps(b[k]):
                return first_difference(a[k], b[k], f"{path}.{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if orjson.dumps(x) != orjson.dumps(y):
                return first_difference(x, y, f"{path}[{i}]")
    return f"{path}: {str(a)[:200]} != {str(b)[:200]}"


def test_a_saved_state_matches_the_golden_file_byte_for_byte() -> None:
    engine, _, _ = saved_engine()
    saved = orjson.dumps(engine.to_state())
    golden = gzip.decompress(GOLDEN.read_bytes())
    if saved != golden:
        raise AssertionError(first_difference(orjson.loads(saved), orjson.loads(golden)))


def test_the_saved_state_keeps_its_documented_layout() -> None:
    engine, _, _ = saved_engine()
    state = engine.to_state()
    assert list(state) == ["v", "monitors", "max_ts", "semantic"]
    (rollout_id,) = state["monitors"]
    mon = state["monitors"][rollout_id]
    assert list(mon) == MONITOR_KEYS
    assert mon["phase"] == "post_rollout" and mon["promoted_at"] is not None
    assert mon["buffer"], "saved mid-batch: the open batch is part of the state"
    assert list(mon["counters"]) == ["events", "shadow", "late", "batches", "quality_keys_refused"]
    names = list(mon["tests"])
    assert names[:4] == ["error_rate", "timeout_rate", "refusal_rate", "format_invalid_rate"]
    assert all(list(t) == ["state", "tau2", "drift", "post", "onset"] for t in mon["tests"].values())
    assert all(len(t["state"]) == mon["cap"] for t in mon["tests"].values())
    assert list(mon["baseline"]) == names  # frozen at promotion, one entry per mean-type test
    assert list(mon["tail_onset"]) == ["latency_ms.p95", "latency_ms.p99", "ttft_ms.p95", "tpot_ms.p95"]
    assert list(mon["hists"]) == ["latency_ms", "ttft_ms", "tpot_ms", "tokens_out", "cost_usd"]
    assert mon["budget"]["fractions"][0] == 0.5 and len(mon["budget"]["fractions"]) == len(
        mon["registry"]["cohorts"]
    )
    assert all(len(row) == 4 for row in mon["tail_state"])  # slot, metric, state, requests at its last read
    assert all(len(row) == 3 for row in mon["baseline_hists"])  # slot, field, histogram
    assert mon["health"] == "healthy" and {"n", "log_lr", "p_value"} <= set(mon["srm"])
    cohorts = [c["key"] for c in mon["registry"]["cohorts"]]
    assert cohorts[0] == "*" and "input_class=coding" in cohorts


def test_a_restored_state_saves_identically_and_decides_identically() -> None:
    engine, events, promote_at = saved_engine()
    blob = orjson.dumps(engine.to_state())
    restored = Engine.from_state(orjson.loads(blob))
    assert orjson.dumps(restored.to_state()) == blob
    rest = events[STOP:]
    straight = run(engine, rest, promote_at) + [c.to_dict() for c in engine.flush()]
    resumed = run(restored, rest, promote_at) + [c.to_dict() for c in restored.flush()]
    assert resumed == straight
    assert orjson.dumps(restored.to_state()) == orjson.dumps(engine.to_state())


def test_a_state_saved_before_the_whole_rollout_has_a_history_restores() -> None:
    """The whole rollout's cohort is "born" at its first read (-inf before): JSON carries that as null."""
    events = stream()[:3000]  # a few batches, fewer than min_samples control requests read yet
    engine = Engine()
    run(engine, events[:60], promote_at=float("inf"))
    state = orjson.loads(orjson.dumps(engine.to_state()))
    (monitor,) = state["monitors"].values()
    assert monitor["registry"]["cohorts"][0]["born"] is None
    restored = Engine.from_state(state)
    assert run(restored, events[60:], float("inf")) == run(engine, events[60:], float("inf"))


def onset_banks(state: dict[str, Any]) -> list[dict[str, Any]]:
    (mon,) = state["monitors"].values()
    return [t["onset"] for t in mon["tests"].values()] + list(mon["tail_onset"].values())


def test_a_state_saved_with_the_shorter_ladder_restores_with_the_new_alternatives_fresh() -> None:
    old = orjson.loads(gzip.decompress(GOLDEN_4_ALTERNATIVES.read_bytes()))
    restored = Engine.from_state(old)
    state = orjson.loads(orjson.dumps(restored.to_state()))
    for before, after in zip(onset_banks(old), onset_banks(state), strict=True):
        assert all(len(row) == 4 for row in before["sr"]["log1p_r"])
        for name in ("log1p_r", "cusum", "span"):
            for was, now in zip(before["sr"][name], after["sr"][name], strict=True):
                assert now == [*was, 0, 0]  # what it had kept, then two alternatives with no evidence yet
        for was, now in zip(before["sr"]["window"], after["sr"]["window"], strict=True):
            assert now == [*was, [0] * 4, [0] * 4]
        for was, now in zip(before["pending"], after["pending"], strict=True):
            assert now == [*was, 0, 0]
    # Everything else is as saved, and the restored engine goes on deciding to the end of the stream.
    for key in ("v", "max_ts", "semantic"):
        assert state[key] == old[key]
    events, promote_at = stream(), float("inf")
    out = run(restored, events[STOP:], promote_at) + [c.to_dict() for c in restored.flush()]
    assert any(c["kind"] == "verdict" for c in out)
    again = Engine.from_state(restored.to_state())
    assert orjson.dumps(again.to_state()) == orjson.dumps(restored.to_state())


if __name__ == "__main__":
    engine = saved_engine()[0]
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_bytes(gzip.compress(orjson.dumps(engine.to_state()), 9, mtime=0))
    print(f"wrote {GOLDEN}")
