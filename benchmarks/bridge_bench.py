"""Delivery latency of ``rollguard bridge alertmanager``: from producing an alert record on its topic to
the alert being visible in Alertmanager's API (``GET /api/v2/alerts``), next to a baseline measured in
the same run: a direct ``POST /api/v2/alerts`` of the same payload, visible by the same poll.

Everything is real and local: a Kafka broker (``scripts/kafka.sh``, or ``--bootstrap``), Debian's
Alertmanager with the routing tree of ``deploy/alertmanager.yml``, the bridge running in this process
(a thread), and alert records derived from a real replay of the ``error_spike_coding`` scenario (one
rollout each, so each is a new alert). Bridge and baseline alternate alert by alert, so both see the
same machine and the same number of active alerts. The difference of the two is what the bridge
adds: a Kafka produce and fetch, parsing and validating the record, and its own POST.

Usage: ``python benchmarks/bridge_bench.py [--alerts 200] [--bootstrap HOST:PORT]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import jsonschema
import orjson
import yaml
from kafka import KafkaProducer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test services: broker, Alertmanager, replayed records

import kafka_broker  # noqa: E402
from alert_testkit import replayed_alert_pair, variant  # noqa: E402
from rollguard.adapters.alertmanager_alerts import AlertRecord, parse_alert, to_alertmanager  # noqa: E402
from rollguard.adapters.alertmanager_bridge import AlertmanagerBridge, BridgeTopics  # noqa: E402
from rollguard.adapters.topic_contracts import default_topics_dir, load_topics  # noqa: E402
from rollguard.adapters.topics_admin import run_topics_apply  # noqa: E402
from rollguard.settings.bridge import AlertmanagerBridgeSettings  # noqa: E402
from services import WebhookSink, alertmanager_config, alertmanager_service  # noqa: E402

POLL_S = 0.001


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def make_topics(bootstrap: str, workdir: Path) -> Path:
    """This run's own alert and dead-letter topics, from the contracts."""
    sfx = uuid.uuid4().hex[:8]
    src = default_topics_dir()
    out = workdir / "topics"
    (out / "schemas").mkdir(parents=True)
    for schema in (src / "schemas").iterdir():
        (out / "schemas" / schema.name).write_bytes(schema.read_bytes())
    for path in src.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        if doc["role"].startswith("alerts.") or doc["role"] == "dead-letter":
            doc["name"] = f"bench.{doc['role']}.{sfx}"
            doc["retention"] = "1h"
            (out / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc))
    if run_topics_apply(bootstrap=bootstrap, topics_dir=str(out), dry_run=False) != 0:
        raise SystemExit("could not create the benchmark's topics")
    return out


def visible(http: httpx.Client, am_url: str, rollout: str) -> bool:
    resp = http.get(f"{am_url}/api/v2/alerts", params={"filter": f'rollout="{rollout}"'})
    return bool(resp.json())


def wait_visible(http: httpx.Client, am_url: str, rollout: str, timeout_s: float = 30.0) -> float:
    deadline = time.perf_counter() + timeout_s
    while not visible(http, am_url, rollout):
        if time.perf_counter() > deadline:
            raise SystemExit(f"alert for {rollout} not visible after {timeout_s:.0f} s")
        time.sleep(POLL_S)
    return time.perf_counter()


def run(n: int, bootstrap: str, workdir: Path) -> dict[str, list[float]]:
    firing, _ = replayed_alert_pair(workdir)
    topics_dir = make_topics(bootstrap, workdir)
    topics = BridgeTopics.from_contracts(load_topics(topics_dir), topics_dir)
    critical = next(t for t in topics.alerts if ".critical." in t)

    sink = WebhookSink()
    am = alertmanager_service(workdir / "alertmanager", alertmanager_config(sink.url)).start()
    settings = AlertmanagerBridgeSettings(repost_interval_s=60.0, retry_initial_s=0.1, retry_max_s=1.0)
    bridge = AlertmanagerBridge(bootstrap, am.url, topics, settings, group_id=f"bench-{uuid.uuid4().hex[:8]}")
    thread = threading.Thread(target=bridge.run, name="bridge", daemon=True)
    thread.start()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    http = httpx.Client(timeout=10, headers={"Content-Type": "application/json"})
    validator = jsonschema.Draft202012Validator(topics.schema)
    try:
        if not bridge.ready.wait(60):
            raise SystemExit("the bridge did not join its group in 60 s")
        # Warm-up: connections, metadata, the first fetch.
        warm = variant(firing, "warm")
        producer.send(critical, key=warm["rollout_id"].encode(), value=orjson.dumps(warm)).get(30)
        wait_visible(http, am.url, warm["rollout_id"])
        out: dict[str, list[float]] = {"bridge": [], "direct": []}
        for i in range(n):
            record = variant(firing, f"b{i}")
            t0 = time.perf_counter()
            producer.send(critical, key=record["rollout_id"].encode(), value=orjson.dumps(record))
            producer.flush()
            out["bridge"].append(wait_visible(http, am.url, record["rollout_id"]) - t0)

            direct = variant(firing, f"d{i}")
            parsed = parse_alert(orjson.dumps(direct), validator)
            assert isinstance(parsed, AlertRecord)
            payload = [to_alertmanager(parsed, worker_url=settings.worker_url, now=time.time())]
            t0 = time.perf_counter()
            http.post(f"{am.url}/api/v2/alerts", content=orjson.dumps(payload)).raise_for_status()
            out["direct"].append(wait_visible(http, am.url, direct["rollout_id"]) - t0)
        print(f"bridge: {bridge.stats}")
        return out
    finally:
        bridge.stop.set()
        thread.join(30)
        producer.close()
        http.close()
        am.stop()
        sink.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=int, default=200, help="alerts per path (bridge and direct)")
    ap.add_argument("--bootstrap", default=None, help="a running broker (default: start one)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as tmp:
        workdir = Path(tmp)
        broker = None
        bootstrap = args.bootstrap
        if bootstrap is None:
            broker = kafka_broker.start(workdir / "kafka")
            bootstrap = broker.bootstrap
        try:
            results = run(args.alerts, bootstrap, workdir)
        finally:
            if broker is not None:
                kafka_broker.stop(broker)
    print(
        f"\ndelivery latency, produce (or POST) -> visible in GET /api/v2/alerts, {args.alerts} alerts each"
    )
    print(f"{'path':<34} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    rows: dict[str, dict[str, float]] = {}
    for name, label in (
        ("bridge", "bridge (Kafka -> bridge -> AM)"),
        ("direct", "baseline: direct POST to AM"),
    ):
        ms = [x * 1000 for x in results[name]]
        row = {q: percentile(ms, float(q)) for q in ("50", "90", "99")}
        rows[name] = row
        print(f"{label:<34} {row['50']:8.1f} {row['90']:8.1f} {row['99']:8.1f} {max(ms):8.1f}")
    added = {q: rows["bridge"][q] - rows["direct"][q] for q in ("50", "99")}
    print(f"{'added by the bridge':<34} {added['50']:8.1f} {'':>8} {added['99']:8.1f}")
    mean_bridge, mean_direct = (statistics.mean(results[k]) * 1000 for k in ("bridge", "direct"))
    print(f"(mean: bridge {mean_bridge:.1f} ms, direct {mean_direct:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
