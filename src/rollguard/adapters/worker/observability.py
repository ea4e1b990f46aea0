"""What a worker shows about itself: Prometheus metrics (``/metrics``) and a JSON ``/status``.

Counters are kept as things happen; the current verdict states and state sizes are read from the
pipelines at scrape time (a custom collector), so no series is left behind when a cohort expires or a
rollout moves to another worker. Each app has its own registry: several workers may share a process
in tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rollguard.pipeline.rollout import RolloutPipeline

STATE_CODES = {"insufficient": 0, "non_inferior": 1, "regressed": 2}


class WorkerMetrics:
    """The worker's Prometheus series (names prefixed ``rollguard_``)."""

    def __init__(
        self,
        pipelines: Callable[[], Iterable[RolloutPipeline]],
        lag: Callable[[], Mapping[tuple[str, int], int]],
    ):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "rollguard_events_consumed",
            "Valid events applied, by rollout and arm",
            ["rollout", "arm"],
            registry=r,
        )
        self.skipped = Counter(
            "rollguard_events_skipped",
            "Events not applied again: inside a checkpoint "
            "(re-delivered after a restart) or a duplicate event_id",
            ["reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "rollguard_dead_letters",
            "Messages sent to the dead-letter topic, by field at fault",
            ["topic", "field"],
            registry=r,
        )
        self.rekeyed = Counter(
            "rollguard_rekeyed", "Messages re-published keyed by rollout_id", ["topic"], registry=r
        )
        self.alerts = Counter(
            "rollguard_alerts_published", "Alert notifications published", ["severity", "status"], registry=r
        )
        self.commands = Counter("rollguard_commands_published", "Commands published", ["action"], registry=r)
        self.verdicts = Counter(
            "rollguard_verdict_changes_published", "Verdict changes published", ["state"], registry=r
        )
        self.suppressed = Counter(
            "rollguard_outputs_suppressed",
            "Regenerated outputs already on their topic (read back at restore), not published again",
            ["kind"],
            registry=r,
        )
        self.refetched = Counter(
            "rollguard_messages_refetched",
            "Messages Faust fetched but did not deliver, read by the worker itself: a hole (a later "
            "message came first) or a stall (the partition's end held back for a while); a steady rise "
            "means the stream loses messages on its own (flow control after a rebalance) and the "
            "worker keeps paying a second read for them",
            ["topic", "cause"],
            registry=r,
        )
        self.checkpoints = Counter(
            "rollguard_checkpoints", "Rollout checkpoints written", ["reason"], registry=r
        )
        self.restores = Counter(
            "rollguard_rollouts_restored", "Rollouts restored from a checkpoint", registry=r
        )
        self.inputs = Counter(
            "rollguard_inputs_applied", "Acks and operator actions applied", ["kind"], registry=r
        )
        self.batch_seconds = Histogram(
            "rollguard_batch_processing_seconds",
            "Wall time to apply the event that closed a batch (the batch's statistics and tests)",
            buckets=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10),
            registry=r,
        )
        self.checkpoint_bytes = Gauge(
            "rollguard_checkpoint_bytes",
            "Size of the rollout's last checkpoint (compressed)",
            ["rollout"],
            registry=r,
        )
        r.register(_LiveState(pipelines, lag))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LiveState(Collector):
    """Verdict states, cohort counts and consumer lag, read at scrape time."""

    def __init__(
        self,
        pipelines: Callable[[], Iterable[RolloutPipeline]],
        lag: Callable[[], Mapping[tuple[str, int], int]],
    ):
        self.pipelines = pipelines
        self.lag = lag

    def describe(self) -> Iterable[Any]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        verdict = GaugeMetricFamily(
            "rollguard_verdict_state",
            "Current verdict of each (rollout, cohort, metric): 0 insufficient "
            "evidence, 1 non-inferior, 2 regressed",
            labels=["rollout", "cohort", "metric", "phase"],
        )
        cohorts = GaugeMetricFamily("rollguard_cohorts", "Live cohorts per rollout", labels=["rollout"])
        healthy = GaugeMetricFamily(
            "rollguard_rollout_healthy", "1 unless the sample ratio is off", labels=["rollout"]
        )
        for p in self.pipelines():
            table = p.policy.tables.get(p.rollout_id)
            if table is None:
                continue
            # One series per (cohort, metric): the most severe state of its windows (cumulative, recent).
            worst: dict[tuple[str, str, str], int] = {}
            for sig in table.live():
                if sig.kind != "verdict" or sig.state not in STATE_CODES:
                    continue
                key = (sig.cohort, sig.metric, sig.phase)
                worst[key] = max(worst.get(key, 0), STATE_CODES[sig.state])
            for (cohort, metric, phase), code in sorted(worst.items()):
                verdict.add_metric([p.rollout_id, cohort, metric, phase], code)
            seen = {cohort for cohort, _, _ in worst}
            cohorts.add_metric([p.rollout_id], len(seen))
            now = p.policy.now
            healthy.add_metric(
                [p.rollout_id], 1.0 if table.healthy(now if math.isfinite(now) else 0.0) else 0.0
            )
        lag = GaugeMetricFamily(
            "rollguard_consumer_lag", "Messages behind the partition's end", labels=["topic", "partition"]
        )
        for (topic, partition), behind in sorted(self.lag().items()):
            lag.add_metric([topic, str(partition)], behind)
        yield verdict
        yield cohorts
        yield healthy
        yield lag


def rollout_status(p: RolloutPipeline) -> dict[str, Any]:
    """One rollout as an operator wants to see it: verdicts with evidence, open alerts, commands and acks."""
    table = p.policy.tables.get(p.rollout_id)
    cohorts: dict[str, list[dict[str, Any]]] = {}
    if table is not None:
        for sig in sorted(table.live(), key=lambda s: (s.cohort, s.metric, s.kind, s.window)):
            cohorts.setdefault(sig.cohort, []).append(
                {
                    "kind": sig.kind,
                    "metric": sig.metric,
                    "window": sig.window,
                    "state": sig.state,
                    "phase": sig.phase,
                    "ts": sig.ts,
                    "evidence": sig.evidence,
                }
            )
    monitor = p.engine.monitors.get(p.rollout_id)
    snapshot = monitor.snapshot() if monitor is not None else None
    return {
        **p.status(),
        "last_event_ts": p.last_ts if math.isfinite(p.last_ts) else None,
        "clock": p.policy.now if math.isfinite(p.policy.now) else None,
        "phase": snapshot["phase"] if snapshot is not None else None,
        "health": snapshot["health"] if snapshot is not None else None,
        "counters": dict(monitor.counters) if monitor is not None else {},
        "open_batch": len(monitor.batch.events) if monitor is not None else 0,
        "duplicates": p.duplicates,
        "cohort_counts": cohort_counts(snapshot),
        "variant_parts": p.variant_parts(),
        "signals": [{"cohort": c, "checks": checks} for c, checks in sorted(cohorts.items())],
        "snapshot": snapshot,
    }


def cohort_counts(snapshot: dict[str, Any] | None) -> dict[str, list[int]]:
    """Requests counted per live cohort and arm, ``{cohort: [control, canary]}`` (closed batches)."""
    if snapshot is None:
        return {}
    return {c["cohort"]: [int(c["n_control"]), int(c["n_canary"])] for c in snapshot["cohorts"]}
