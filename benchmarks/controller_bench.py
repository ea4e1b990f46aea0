"""Command -> ack latency of the reference flagd controller, next to the broker's own round trip.

Closed loop through a real broker: produce one signed command (alternately ``reduce_weight`` 0.05 and
``promote`` 0.10, so every command really rewrites the flags file), wait for its ``applied`` ack on
the acks topic, then the next one. Three figures, measured in this run on the same broker:

- **controller**: produce -> ``applied`` ack consumed. The controller runs ``serve`` (the code behind
  ``rollguard controller flagd``) in a thread of this process: verify, read, edit, atomic write with
  fsyncs, SQLite commit, publish the ack (acks=all), commit the offset.
- **echo baseline**: the same loop with nothing in the middle — a thread consumes the same command bytes,
  publishes them unchanged to the acks topic (acks=all) and commits the offset. The difference to
  the controller is the controller's own work.
- **one-way baseline**: produce -> consumed on the control topic, the bare produce -> consume trip.

Also ``handle()`` alone (no Kafka) on the same kind of commands. Without ``--bootstrap`` a broker is
started for the run (``scripts/kafka.sh``) and stopped at the end.

Usage: ``python benchmarks/controller_bench.py [--commands 100] [--bootstrap HOST:PORT]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from rollguard.adapters.controller.consumer import ControllerTopics, serve
from rollguard.adapters.controller.handler import FlagdFileController
from rollguard.adapters.controller.state import ControllerState
from rollguard.adapters.topic_contracts import TopicSpec
from rollguard.adapters.topics_admin import apply_specs
from rollguard.policy.commands.signing import signed
from rollguard.settings.controller import ControllerSettings

ROOT = Path(__file__).resolve().parent.parent
KEY = b"controller-bench-key"
ROLLOUT = "checkout-v2"
FLAGS = {
    "flags": {
        ROLLOUT: {
            "state": "ENABLED",
            "variants": {"control": "model-a", "canary": "model-b"},
            "defaultVariant": "control",
            "targeting": {"fractional": [["canary", 10], ["control", 90]]},
            "metadata": {"version": "1"},
        }
    }
}


def make_command(i: int) -> dict[str, Any]:
    now = time.time()
    action, weight = ("reduce_weight", 0.05) if i % 2 == 0 else ("promote", 0.10)
    record = {
        "schema_version": 1,
        "command_id": f"cmd-bench-{uuid.uuid4().hex[:16]}",
        "rollout_id": ROLLOUT,
        "scope": {},
        "action": action,
        "target_weight": weight,
        "issued_at": now,
        "expires_at": now + 900.0,
        "sequence": i + 1,
        "attempt": 1,
        "alert_ids": [],
        "evidence": {"reason": "benchmark"},
        "dry_run": False,
        "requires_approval": False,
        "approved_by": None,
        "issued_by": "rollguard",
    }
    return signed(record, KEY)


@contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = Path(tempfile.mkdtemp(prefix="controller-bench-kafka-"))
    script = str(ROOT / "scripts" / "kafka.sh")
    subprocess.run([script, "start", "--port", str(port), "--data-dir", str(data)], check=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([script, "stop", "--data-dir", str(data)], check=False, timeout=90)


def make_topics(bootstrap: str) -> ControllerTopics:
    tag = uuid.uuid4().hex[:8]
    topics = ControllerTopics(f"bench.control.{tag}", f"bench.acks.{tag}")
    apply_specs(
        bootstrap,
        [
            TopicSpec(topics.control, "control", "b", 1, 1, 3_600_000, "delete", "rollout_id", "x.json"),
            TopicSpec(topics.acks, "acks", "b", 1, 1, 3_600_000, "delete", "rollout_id", "x.json"),
        ],
    )
    return topics


def echo(bootstrap: str, topics: ControllerTopics, stop: threading.Event) -> None:
    """The controller's Kafka loop with nothing in the middle: consume, publish the same bytes, commit."""
    consumer = KafkaConsumer(
        topics.control, bootstrap_servers=bootstrap, group_id=f"echo-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False, auto_offset_reset="earliest",
    )  # fmt: skip
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    try:
        while not stop.is_set():
            for tp, records in consumer.poll(timeout_ms=100).items():
                for rec in records:
                    producer.send(topics.acks, key=rec.key, value=rec.value).get(timeout=30)
                    consumer.commit({tp: OffsetAndMetadata(rec.offset + 1, "", -1)})
    finally:
        producer.close()
        consumer.close()


def reader(bootstrap: str, topic: str) -> KafkaConsumer:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=500)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_end(tp)
    consumer.position(tp)
    return consumer


def closed_loop(
    bootstrap: str,
    produce_to: str,
    read_from: str,
    n: int,
    warmup: int,
    done: Callable[[dict[str, Any]], bool],
) -> list[float]:
    """Seconds from producing each command to reading the message that answers it."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    consumer = reader(bootstrap, read_from)
    out: list[float] = []
    try:
        for i in range(warmup + n):
            c = make_command(i)
            t0 = time.perf_counter()
            producer.send(produce_to, key=ROLLOUT.encode(), value=orjson.dumps(c))
            producer.flush()
            answered = False
            deadline = time.monotonic() + 30
            while not answered:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no answer to {c['command_id']} in 30 s")
                for records in consumer.poll(timeout_ms=50).values():
                    for rec in records:
                        msg = orjson.loads(rec.value)
                        if msg.get("command_id") == c["command_id"]:
                            if not done(msg):
                                raise RuntimeError(f"unexpected answer: {msg}")
                            answered = True
            if i >= warmup:
                out.append(time.perf_counter() - t0)
    finally:
        producer.close()
        consumer.close()
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def show(name: str, xs: list[float]) -> None:
    print(
        f"  {name:<40} n={len(xs):<4} p50 {pct(xs, 0.5) * 1e3:7.2f} ms   p99 {pct(xs, 0.99) * 1e3:7.2f} ms"
        f"   mean {statistics.fmean(xs) * 1e3:7.2f} ms   max {max(xs) * 1e3:7.2f} ms"
    )


def handler_alone(n: int, workdir: Path) -> list[float]:
    flags = workdir / "alone.json"
    flags.write_text(json.dumps(FLAGS))
    state = ControllerState(workdir / "alone-state", flags.name)
    ctl = FlagdFileController(flags, KEY, ControllerSettings(), state)
    out = []
    try:
        for i in range(n):
            value = orjson.dumps(make_command(i))
            t0 = time.perf_counter()
            ack = ctl.handle(value)
            out.append(time.perf_counter() - t0)
            assert ack is not None and ack["status"] == "applied", ack
    finally:
        state.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commands", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--bootstrap", default=None, help="use this broker instead of starting one")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="controller-bench-"))
    print(f"controller bench: {args.commands} commands (+{args.warmup} warm-up), closed loop, one at a time")
    with broker(args.bootstrap) as bootstrap:
        # one-way: produce -> consume of the same command bytes on the control topic
        topics = make_topics(bootstrap)
        one_way = closed_loop(bootstrap, topics.control, topics.control, args.commands, args.warmup, bool)

        topics = make_topics(bootstrap)
        stop = threading.Event()
        t = threading.Thread(target=echo, args=(bootstrap, topics, stop), daemon=True)
        t.start()
        echoed = closed_loop(bootstrap, topics.control, topics.acks, args.commands, args.warmup, bool)
        stop.set()
        t.join(timeout=30)

        topics = make_topics(bootstrap)
        flags = work / "flags.json"
        flags.write_text(json.dumps(FLAGS, indent=2))
        state = ControllerState(work / "state", flags.name)
        ctl = FlagdFileController(flags, KEY, ControllerSettings(), state)
        stop = threading.Event()
        group = f"bench-controller-{uuid.uuid4().hex[:6]}"
        t = threading.Thread(target=serve, args=(ctl, bootstrap, topics, group, stop), daemon=True)
        t.start()
        controlled = closed_loop(
            bootstrap,
            topics.control,
            topics.acks,
            args.commands,
            args.warmup,
            lambda a: a["status"] == "applied",
        )
        stop.set()
        t.join(timeout=30)
        state.close()
        version = json.loads(flags.read_text())["flags"][ROLLOUT]["metadata"]["version"]

    alone = handler_alone(args.commands, work)
    print(f"  (flags file rewritten by every command: metadata.version 1 -> {version})")
    show("one-way produce -> consume", one_way)
    show("echo baseline (consume+produce+commit)", echoed)
    show("controller produce -> applied ack", controlled)
    show("handle() alone, no Kafka", alone)
    extra = pct(controlled, 0.5) - pct(echoed, 0.5)
    print(f"  controller over echo baseline: p50 +{extra * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.exit(main())
