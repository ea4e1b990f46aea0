"""Wait until a Kafka broker answers a real metadata request (not merely an open port).

Used by ``scripts/kafka.sh start``: a listening socket appears before the KRaft broker has
registered with its controller and been unfenced; only a metadata response that lists a broker
and a controller means clients can produce and consume. Exits 0 when ready, 1 when the deadline
passes or the broker process (``--pid``) dies first.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def probe(bootstrap: str, request_timeout_ms: int = 3000) -> str | None:
    """One metadata round trip; returns a short description when the cluster is usable, else None."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="rollguard-kafka-ready",
        request_timeout_ms=request_timeout_ms,
        reconnect_backoff_ms=100,
        reconnect_backoff_max_ms=500,
    )
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    # DescribeCluster may list fenced brokers; a fenced broker cannot lead partitions yet.
    brokers = [b for b in cluster.get("brokers") or [] if not b.get("is_fenced", False)]
    controller = cluster.get("controller_id", -1)
    if not brokers or controller is None or controller < 0:
        return None
    return f"cluster {cluster.get('cluster_id')} brokers={len(brokers)} controller={controller}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait in total")
    parser.add_argument("--pid", type=int, default=None, help="give up early when this process exits")
    args = parser.parse_args(argv)
    try:
        import kafka  # noqa: F401
    except ImportError:
        print(
            "kafka_ready: kafka-python is not importable; run it with the project's venv python",
            file=sys.stderr,
        )
        return 2
    # kafka-python logs every refused connection at WARNING/ERROR while the broker boots: noise here.
    logging.basicConfig(level=logging.CRITICAL)
    deadline = time.monotonic() + args.timeout
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if not _alive(args.pid):
            print(f"kafka_ready: broker process {args.pid} exited", file=sys.stderr)
            return 1
        try:
            ready = probe(args.bootstrap)
        except Exception as exc:  # any failure just means "not yet"
            last_error = f"{type(exc).__name__}: {exc}"
            ready = None
        if ready:
            print(f"kafka_ready: {args.bootstrap} {ready}")
            return 0
        time.sleep(0.2)
    print(
        f"kafka_ready: {args.bootstrap} not ready after {args.timeout:.0f}s ({last_error})", file=sys.stderr
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
