"""``rollguard bridge alertmanager`` as ops run it (a process), between the real broker and a real
Alertmanager running the routing tree of ``deploy/alertmanager.yml``: a replayed critical alert pages
``oncall-pager`` and resolves; restarts of Alertmanager and of the bridge lose nothing and duplicate
nothing; a silence does not swallow the resolve; bad records and refused alerts are dead-lettered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer

from alert_testkit import replayed_alert_pair, variant
from kafka_broker import record_timing
from readme import readme_command, with_options
from rollguard.adapters.alertmanager_alerts import rfc3339
from rollguard.adapters.topic_contracts import default_topics_dir
from rollguard.adapters.topics_admin import run_topics_apply
from services import (
    RecordingProxy,
    Service,
    WebhookSink,
    am_alerts,
    am_get,
    am_silence,
    metric_value,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

ROLLGUARD = Path(sys.executable).with_name("rollguard")
ROLES = {"critical": "alerts.critical", "warning": "alerts.warning", "info": "alerts.info"}
# Seconds, not minutes: the behaviour is the same, the test is short.
BRIDGE_CONFIG = {
    "bridge": {
        "alertmanager": {
            "repost_interval_s": 1,
            "retry_initial_s": 0.1,
            "retry_max_s": 1,
            "worker_url": "http://127.0.0.1:6066",
        }
    }
}


@dataclass
class Topics:
    """This test's own alert and dead-letter topics (contracts in ``dir``), created on the broker."""

    dir: Path
    names: dict[str, str]  # role -> topic name

    def for_severity(self, severity: str) -> str:
        return self.names[ROLES[severity]]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    return replayed_alert_pair(Path(tmp_path_factory.mktemp("replay")))


@pytest.fixture
def topics(kafka_bootstrap: str, tmp_path: Path) -> Topics:
    sfx = uuid.uuid4().hex[:8]
    src = default_topics_dir()
    out = tmp_path / "topics"
    (out / "schemas").mkdir(parents=True)
    for schema in (src / "schemas").iterdir():
        (out / "schemas" / schema.name).write_bytes(schema.read_bytes())
    names: dict[str, str] = {}
    for role in (*ROLES.values(), "dead-letter"):
        doc = next(
            d for d in (yaml.safe_load(p.read_text()) for p in src.glob("*.yaml")) if d["role"] == role
        )
        doc["name"] = f"test.{role}.{sfx}"
        doc["retention"] = "1h"
        (out / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc))
        names[role] = doc["name"]
    assert run_topics_apply(bootstrap=kafka_bootstrap, topics_dir=str(out), dry_run=False) == 0
    return Topics(out, names)


class Bridge:
    """One ``rollguard bridge alertmanager`` process; ``start`` waits until it consumes."""

    def __init__(
        self, bootstrap: str, url: str, topics: Topics, workdir: Path, group: str, **settings: float
    ) -> None:
        self.config = workdir / "rollguard.yml"
        config = {"bridge": {"alertmanager": {**BRIDGE_CONFIG["bridge"]["alertmanager"], **settings}}}
        self.config.write_text(yaml.safe_dump(config))
        # The README's command, with this test's broker, Alertmanager, config, group and topics.
        shown = with_options(
            readme_command("rollguard bridge alertmanager"),
            {"--bootstrap": bootstrap, "--url": url, "--config": str(self.config)},
        )
        assert shown[0] == "rollguard"
        self.argv = [str(ROLLGUARD), *shown[1:], "--group-id", group, "--topics-dir", str(topics.dir)]
        self.log = workdir / "bridge.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self, timeout: float = 60.0) -> None:
        t0 = time.monotonic()
        self.runs += 1
        with open(self.log, "ab") as log:
            log.write(f"--- run {self.runs}\n".encode())
        log = open(self.log, "ab")  # noqa: SIM115 - the child writes it until stop()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        wait_until(
            lambda: self._run_log().count("bridge: assigned") or self._died(), timeout, what="bridge ready"
        )
        record_timing("alertmanager bridge start (join + rebuild)", time.monotonic() - t0)

    def _run_log(self) -> str:
        return self.log.read_text(errors="replace").rsplit(f"--- run {self.runs}\n", 1)[-1]

    def _died(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"bridge exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
            )
        return False

    def stop(self) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def bridge_for(kafka_bootstrap: str, topics: Topics, tmp_path: Path) -> Iterator[Callable[..., Bridge]]:
    """``bridge_for(url, **settings)``: a bridge process (not started) in this test's group."""
    made: list[Bridge] = []
    group = f"bridge-{uuid.uuid4().hex[:8]}"

    def make(url: str, **settings: float) -> Bridge:
        bridge = Bridge(kafka_bootstrap, url, topics, tmp_path, group, **settings)
        made.append(bridge)
        return bridge

    try:
        yield make
    finally:
        for bridge in made:
            bridge.stop()


def produce(bootstrap: str, topics: Topics, *records: dict[str, Any] | tuple[str, bytes]) -> None:
    """Publish alert records as the worker does (topic by severity, key = rollout_id); a
    ``(severity, raw bytes)`` pair publishes bytes as they are."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for record in records:
            if isinstance(record, tuple):
                severity, value = record
                producer.send(topics.for_severity(severity), key=b"bad", value=value)
            else:
                key = record["rollout_id"].encode()
                producer.send(topics.for_severity(record["severity"]), key=key, value=orjson.dumps(record))
        producer.flush()
    finally:
        producer.close()


def active(am: Service, rollout: str) -> list[dict[str, Any]]:
    return am_alerts(am.url, filter=f'rollout="{rollout}"')


def test_a_replayed_critical_alert_pages_oncall_with_its_labels_and_later_resolves(
    kafka_bootstrap: str,
    topics: Topics,
    alertmanager: Service,
    webhook_sink: WebhookSink,
    bridge_for: Callable[..., Bridge],
    pair: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    firing, resolved = pair
    bridge = bridge_for(alertmanager.url)
    bridge.start()
    produce(kafka_bootstrap, topics, firing)

    (alert,) = wait_until(
        lambda: active(alertmanager, firing["rollout_id"]), what="the alert in Alertmanager"
    )
    assert alert["labels"] == firing["labels"]
    assert alert["labels"]["scope_input_class"] == "coding" and alert["labels"]["severity"] == "critical"
    assert [r["name"] for r in alert["receivers"]] == ["oncall-pager"]
    assert alert["status"]["state"] == "active"
    assert alert["annotations"]["summary"] == firing["annotations"]["summary"]
    assert alert["annotations"]["alert_id"] == firing["alert_id"]
    assert alert["startsAt"] == rfc3339(firing["starts_at"])
    assert alert["generatorURL"] == f"http://127.0.0.1:6066/status?rollout={firing['rollout_id']}"
    paged = webhook_sink.wait_for(lambda n: n.receiver == "oncall-pager" and n.body["status"] == "firing")
    assert paged.alerts[0]["labels"]["rollout"] == firing["rollout_id"]

    produce(kafka_bootstrap, topics, resolved)
    wait_until(lambda: not active(alertmanager, firing["rollout_id"]), what="the alert resolved")
    done = webhook_sink.wait_for(lambda n: n.receiver == "oncall-pager" and n.body["status"] == "resolved")
    assert done.alerts[0]["endsAt"] == rfc3339(resolved["ends_at"])
    assert not any(n.receiver != "oncall-pager" for n in webhook_sink.received())
    assert bridge.stop() == 0


def test_an_alertmanager_restart_loses_nothing_and_keeps_each_rollouts_order(
    kafka_bootstrap: str,
    topics: Topics,
    alertmanager: Service,
    webhook_sink: WebhookSink,
    bridge_for: Callable[..., Bridge],
    pair: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    firing, resolved = pair
    a_firing, a_resolved = variant(firing, "a"), variant(resolved, "a")
    b_firing = variant(firing, "b")
    c_firing, c_resolved = variant(firing, "c"), variant(resolved, "c")
    bridge = bridge_for(alertmanager.url)
    bridge.start()
    produce(kafka_bootstrap, topics, a_firing)
    wait_until(lambda: active(alertmanager, a_firing["rollout_id"]), what="a firing")

    alertmanager.stop()
    # While Alertmanager is down: a new alert, and another that fires and resolves (order matters).
    produce(kafka_bootstrap, topics, b_firing, c_firing, c_resolved)
    wait_until(lambda: "retrying in" in bridge.log_text(), what="the bridge retrying")
    time.sleep(1.5)  # a few backoff rounds against a closed port
    alertmanager.start()  # same port, same storage; Alertmanager keeps no alerts across restarts

    wait_until(lambda: active(alertmanager, a_firing["rollout_id"]), what="a re-posted after the restart")
    wait_until(lambda: active(alertmanager, b_firing["rollout_id"]), what="b delivered after the restart")
    assert active(alertmanager, c_firing["rollout_id"]) == []  # c's resolve came after its firing
    produce(kafka_bootstrap, topics, a_resolved)
    wait_until(lambda: not active(alertmanager, a_firing["rollout_id"]), what="a resolved")
    webhook_sink.wait_for(
        lambda n: (
            n.body["status"] == "resolved" and n.alerts[0]["labels"]["rollout"] == a_firing["rollout_id"]
        )
    )
    time.sleep(1.5)  # a re-post round later b still fires, a stays resolved
    assert [a["labels"]["rollout"] for a in am_alerts(alertmanager.url)] == [b_firing["rollout_id"]]
    assert bridge.stop() == 0


def test_a_bridge_restart_loses_nothing_and_delivers_each_record_once(
    kafka_bootstrap: str,
    topics: Topics,
    alertmanager: Service,
    bridge_for: Callable[..., Bridge],
    pair: tuple[dict[str, Any], dict[str, Any]],
    tmp_path: Path,
) -> None:
    firing, resolved = pair
    a, b, c = (variant(firing, k) for k in "abc")
    a_resolved = variant(resolved, "a")
    proxy = RecordingProxy(alertmanager.url)
    try:
        bridge = bridge_for(proxy.url, repost_interval_s=120)  # deliveries only, no timed re-post
        bridge.start()
        produce(kafka_bootstrap, topics, a, b)
        wait_until(lambda: len(am_alerts(alertmanager.url)) == 2, what="a and b firing")
        assert bridge.stop() == 0

        produce(kafka_bootstrap, topics, a_resolved, c)  # while the bridge is down
        alertmanager.restart()  # ... and Alertmanager forgot every alert
        assert am_alerts(alertmanager.url) == []
        bridge.start()  # same group: rebuilds a and b from the topics, resumes at the committed offset

        wait_until(
            lambda: (
                {x["labels"]["rollout"] for x in am_alerts(alertmanager.url)}
                == {b["rollout_id"], c["rollout_id"]}
            ),
            what="b (rebuilt) and c (new) firing, a resolved",
        )
        assert bridge.stop() == 0
    finally:
        proxy.close()

    posted = [
        (x["labels"]["rollout"], "resolved" if "endsAt" in x else "firing") for x in proxy.posted_alerts()
    ]
    ra, rb, rc = a["rollout_id"], b["rollout_id"], c["rollout_id"]
    # Run 1 delivers a and b; run 2 posts the rebuilt firing set at once (a and b, as they stood at
    # the committed offset), then delivers a's resolve and c: every record once, in order.
    assert sorted(posted[:2]) == [(ra, "firing"), (rb, "firing")]
    assert sorted(posted[2:4]) == [(ra, "firing"), (rb, "firing")]
    assert posted[4:] == [(ra, "resolved"), (rc, "firing")]
    assert all(p.status == 200 for p in proxy.alert_posts())


def test_a_silence_in_alertmanager_does_not_stop_the_resolve(
    kafka_bootstrap: str,
    topics: Topics,
    alertmanager: Service,
    webhook_sink: WebhookSink,
    bridge_for: Callable[..., Bridge],
    pair: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    firing, resolved = pair
    rollout = firing["rollout_id"]
    bridge = bridge_for(alertmanager.url)
    bridge.start()
    produce(kafka_bootstrap, topics, firing)
    webhook_sink.wait_for(lambda n: n.receiver == "oncall-pager" and n.body["status"] == "firing")
    silence = am_silence(alertmanager.url, {"rollout": rollout}, comment="looking into it")
    (alert,) = wait_until(
        lambda: [x for x in active(alertmanager, rollout) if x["status"]["state"] == "suppressed"],
        what="the alert silenced",
    )
    assert alert["status"]["silencedBy"] == [silence]

    received = metric_value(alertmanager.url, "alertmanager_alerts_received_total", status="resolved")
    produce(kafka_bootstrap, topics, resolved)
    wait_until(
        lambda: (
            metric_value(alertmanager.url, "alertmanager_alerts_received_total", status="resolved") > received
        ),
        what="Alertmanager receiving the resolve",
    )
    wait_until(lambda: not active(alertmanager, rollout), what="the silenced alert resolved")
    states = [s["status"]["state"] for s in am_get(alertmanager.url, "/api/v2/silences")]
    assert states == ["active"]  # resolved while silenced, not because the silence ended
    # Alertmanager itself (0.25) still mutes the resolve's notification to the receiver that got the
    # firing (alertmanager#226): the README says so; this pins it (group_interval is 1 s here).
    time.sleep(3)
    assert [n.body["status"] for n in webhook_sink.received()] == ["firing"]
    assert bridge.stop() == 0
    assert "superseded" not in bridge.log_text()


def test_records_that_are_not_alerts_and_alerts_alertmanager_refuses_are_dead_lettered_and_skipped(
    kafka_bootstrap: str,
    topics: Topics,
    alertmanager: Service,
    bridge_for: Callable[..., Bridge],
    pair: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    firing, _ = pair
    good, refused, after = (variant(firing, k) for k in ("good", "refused", "after"))
    proxy = RecordingProxy(alertmanager.url)
    # Alertmanager's answer to an alert it finds malformed (a 400 naming it); and two 503s first.
    proxy.refuse(lambda x: x["labels"].get("rollout") == refused["rollout_id"], 400, "invalid label set")
    proxy.fail_next(2, 503)
    try:
        bridge = bridge_for(proxy.url)
        bridge.start()
        produce(
            kafka_bootstrap,
            topics,
            ("critical", b"\xff\xfe not json"),
            ("critical", orjson.dumps({**firing, "status": "pending"})),
            good,
            refused,
            after,
        )
        want = {good["rollout_id"], after["rollout_id"]}
        wait_until(
            lambda: {x["labels"]["rollout"] for x in am_alerts(alertmanager.url)} == want, what="good ones"
        )
        dead = _read(kafka_bootstrap, topics.names["dead-letter"], 3)
        assert bridge.stop() == 0
    finally:
        proxy.close()
    reasons = sorted((d["field"], d["reason"].split(":")[0], d["contract"]) for d in dead)
    assert reasons == [
        ("", "alertmanager refused it", "alert.v1"),
        ("", "not valid JSON", "alert.v1"),
        ("status", "alert.v1", "alert.v1"),
    ]
    (refused_dead,) = [d for d in dead if d["reason"].startswith("alertmanager refused it")]
    assert 'HTTP 400: "invalid label set"' in refused_dead["reason"]
    assert orjson.loads(refused_dead["original"])["alert_id"] == refused["alert_id"]
    assert refused_dead["source_topic"] == topics.for_severity("critical")
    assert [p.status for p in proxy.alert_posts()][:2] == [503, 503]  # retried, not dropped


def _read(bootstrap: str, topic: str, n: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < n and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                out.extend(orjson.loads(m.value) for m in batch)
    finally:
        consumer.close()
    assert len(out) == n, out
    return out


def test_the_latency_benchmark_prints_the_bridge_next_to_its_baseline(kafka_bootstrap: str) -> None:
    argv = readme_command(".venv/bin/python benchmarks/bridge_bench.py")
    argv = [sys.executable, *with_options(argv[1:], {"--alerts": "5"}), "--bootstrap", kafka_bootstrap]
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = {line.split("  ")[0]: line.split()[-4:] for line in proc.stdout.splitlines() if " ms" not in line}
    bridge = next(v for k, v in rows.items() if k.startswith("bridge (Kafka"))
    direct = next(v for k, v in rows.items() if k.startswith("baseline: direct POST"))
    assert all(float(x) > 0 for x in bridge + direct)
    assert "records=6" in proc.stdout  # the warm-up and the five measured alerts, each delivered once


def test_a_killed_bridge_loses_nothing(
    kafka_bootstrap: str,
    topics: Topics,
    alertmanager: Service,
    bridge_for: Callable[..., Bridge],
    pair: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    # SIGKILL mid-stream: no clean shutdown. Whatever was posted but not committed is posted again
    # (Alertmanager merges it into the same alert); nothing is missing, not even on the partitions
    # the first run never got to commit on (a new group's start is committed at once).
    firing, resolved = pair
    records = [variant(firing, i) for i in range(60)] + [variant(resolved, i) for i in range(0, 60, 2)]
    proxy = RecordingProxy(alertmanager.url)
    proxy.delay_s = 0.05  # 18 batches of 5 take about a second: time to kill the bridge in between
    try:
        bridge = bridge_for(proxy.url, max_batch=5)
        bridge.start()
        produce(kafka_bootstrap, topics, *records)
        wait_until(lambda: len(proxy.alert_posts()) >= 3, what="the first deliveries")
        assert bridge.proc is not None
        bridge.proc.kill()
        bridge.proc.wait(10)
        bridge.proc = None
        delivered_before = len(proxy.posted_alerts())
        proxy.delay_s = 0.0
        bridge.start()
        want = {variant(firing, i)["rollout_id"] for i in range(1, 60, 2)}
        wait_until(lambda: {a["labels"]["rollout"] for a in am_alerts(alertmanager.url)} == want, what="all")
        assert bridge.stop() == 0
    finally:
        proxy.close()
    assert 0 < delivered_before < len(records)
    resolves = [a["labels"]["rollout"] for a in proxy.posted_alerts() if "endsAt" in a]
    expected = {variant(firing, i)["rollout_id"] for i in range(0, 60, 2)}
    assert set(resolves) == expected, (sorted(set(resolves) - expected), sorted(expected - set(resolves)))


def test_the_bridge_refuses_to_start_on_a_bad_url_config_or_contracts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rollguard.cli import main

    base = ["bridge", "alertmanager", "--bootstrap", "127.0.0.1:9", "--url", "http://127.0.0.1:9"]
    assert main([*base[:-1], "alertmanager:9093"]) == 2
    assert "--url must be Alertmanager's http(s) URL" in capsys.readouterr().err

    bad = tmp_path / "bad.yml"
    bad.write_text("bridge:\n  alertmanager:\n    repost_interval_s: -1\n")
    assert main([*base, "--config", str(bad)]) == 2
    assert f"{bad}:3: bridge.alertmanager.repost_interval_s: must be at least 0" in capsys.readouterr().err

    topics_dir = tmp_path / "topics"
    (topics_dir / "schemas").mkdir(parents=True)
    src = default_topics_dir()
    for schema in (src / "schemas").iterdir():
        (topics_dir / "schemas" / schema.name).write_bytes(schema.read_bytes())
    for path in src.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        if doc["role"] == "alerts.info":
            doc["partitions"] = 6
        (topics_dir / path.name).write_text(yaml.safe_dump(doc))
    assert main([*base, "--topics-dir", str(topics_dir)]) == 2
    assert "the alert topics must have the same number of partitions" in capsys.readouterr().err
