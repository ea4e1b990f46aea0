"""The OTLP topic as a source of the worker: the trace payloads the OpenTelemetry Collector's Kafka exporter
writes (``otlp_proto`` or ``otlp_json``), translated to v1 events by :mod:`rollguard.otlp` — the same
translator ``rollguard replay`` runs on span files.

One payload carries many spans of many rollouts, so it is split: each event it yields is re-published on
the worker's re-key topic keyed by its rollout id, and from there reaches its rollout's partition and
owner exactly as a v1 event keyed by something else does (the partitioning guarantees of the events
topic hold; the OTLP topic may have any partition count). Spans that describe no GenAI inference in a
rollout are counted (``/metrics``, ``/status``), not dead-lettered; a span that cannot be read or mapped
goes to the dead-letter topic — the span alone as an OTLP JSON payload with message contents removed,
its ``trace_id``, ``span_id``, field and reason — while the rest of its payload is processed; a payload
that is not an OTLP export is dead-lettered whole.

One translator per OTLP partition: the join by trace id needs a trace's spans on one partition (the
exporter's ``partition_traces_by_id: true``). A partition quiet for ``otlp.idle_flush_s`` of wall time
has its held spans decided, as the end of a file is in replay.

Offsets. An OTLP partition is committed up to the oldest payload the trace join still holds anything
from (:meth:`OtlpTranslator.low_source`), else past its last payload, and only after every event it
produced is on the re-key topic. After a restart or a rebalance the payloads from there are translated
again; the events already published come again with the same ``event_id`` and are dropped as duplicates
by their rollout's pipeline (``engine.dedup_window_s`` must exceed ``otlp.join_window_s``, which the
config checks).

Message contents become ``response_text`` only for the embeddings; with embeddings off they are not
re-published at all (the re-key topic is the worker's own, but its records are as readable as any).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import orjson
from prometheus_client import CollectorRegistry, Counter

from rollguard.adapters import dead_letter
from rollguard.adapters.worker.side_reads import SourceRecord
from rollguard.domain.events import EventError
from rollguard.otlp.spans import SpanProblem
from rollguard.otlp.translate import OtlpTranslator, Translation
from rollguard.settings.otlp import OtlpSettings

log = logging.getLogger("rollguard.worker.otlp")

TP = tuple[str, int]
SPAN_CONTRACT = "otlp.span"
PAYLOAD_CONTRACT = "otlp.traces"


class OtlpSource:
    """Every OTLP partition this worker reads: its translator, its commit point, its counters."""

    def __init__(
        self,
        settings: OtlpSettings,
        app: faust.App,
        rekey_topic: Any,
        dlq_topic: Any,
        registry: CollectorRegistry,
        *,
        worker: str,
        clock: Callable[[], float],
        dead_letter_payload: Callable[[SourceRecord, EventError, str], Awaitable[None]],
        keep_text: bool = True,
    ) -> None:
        assert settings.topic is not None
        self.settings = settings
        self.topic = app.topic(settings.topic, key_serializer="raw", value_serializer="raw")
        self.rekey_topic = rekey_topic
        self.dlq_topic = dlq_topic
        self.worker = worker
        self.clock = clock
        self._dead_letter_payload = dead_letter_payload
        self.keep_text = keep_text  # False: response texts are not re-published (no embeddings to use them)
        self.translators: dict[TP, OtlpTranslator] = {}
        self.heads: dict[TP, int] = {}
        self.last_wall: dict[TP, float] = {}
        self.published = 0
        self.metric_spans = Counter(
            "rollguard_otlp_spans",
            "OTLP spans by outcome: event (one per rollout it joined), not_inference, unjoined, "
            "unmapped_variant, late (decided after their window), malformed (dead-lettered)",
            ["outcome"],
            registry=registry,
        )
        self.metric_payloads = Counter(
            "rollguard_otlp_payloads", "OTLP payloads read, by outcome (ok, undecodable)", ["outcome"],
            registry=registry,
        )  # fmt: skip
        self._reported: dict[str, int] = {}

    @property
    def name(self) -> str:
        return str(self.settings.topic)

    def reset(self) -> None:
        """A new assignment: whatever was held is read again from the committed offsets."""
        self.translators.clear()
        self.heads.clear()
        self.last_wall.clear()
        self._reported.clear()  # the counters start again (payloads read again are counted again)

    async def on_payload(self, r: SourceRecord, generation: Callable[[], bool]) -> None:
        """One message of the OTLP topic. ``generation()`` is False once a rebalance happened meanwhile."""
        tp = r.tp
        translator = self.translators.get(tp)
        if translator is None:
            translator = self.translators[tp] = OtlpTranslator(self.settings)
        self.last_wall[tp] = self.clock()
        if r.value is None:
            translation = Translation()
            error: EventError | None = EventError("", "message has no value (tombstone)")
        else:
            translation = translator.payload(r.value, r.offset)
            problem = translation.problem
            error = EventError(problem.field, problem.reason) if problem is not None else None
        if error is not None:
            self.metric_payloads.labels("undecodable").inc()
            await self._dead_letter_payload(r, error, PAYLOAD_CONTRACT)
        else:
            self.metric_payloads.labels("ok").inc()
        await self._emit(translation, r)
        if generation():
            self.heads[tp] = r.offset
        self._count()

    async def idle_flush(self) -> None:
        """Decide the held spans of every partition quiet for ``idle_flush_s`` of wall time."""
        now = self.clock()
        for tp, translator in list(self.translators.items()):
            quiet = now - self.last_wall.get(tp, now) >= self.settings.idle_flush_s
            if translator.low_source() is None or not quiet:
                continue
            await self._emit(translator.flush(), None, tp)
        self._count()

    def commit_points(self) -> dict[TP, int]:
        """Per OTLP partition read, the offset that may be committed."""
        out = {}
        for tp, head in self.heads.items():
            translator = self.translators.get(tp)
            low = translator.low_source() if translator is not None else None
            out[tp] = low if low is not None else head + 1
        return out

    def counters(self) -> dict[str, int]:
        """What became of the spans of every partition read since the last assignment."""
        total: dict[str, int] = {}
        for translator in self.translators.values():
            for key, value in translator.counters().items():
                total[key] = total.get(key, 0) + int(value)
        total["published"] = self.published
        return total

    # ------------------------------------------------------------------ internals
    async def _emit(self, translation: Translation, r: SourceRecord | None, tp: TP | None = None) -> None:
        where = r.tp if r is not None else tp
        assert where is not None
        for problem in translation.rejected:
            await self._dead_letter_span(problem, where, r)
        sends = []
        for ev in translation.events:
            key = ev.rollout_id.encode("utf-8")
            record = ev.to_dict()
            if not self.keep_text:
                record.pop("response_text", None)
            sends.append(await self.rekey_topic.send(key=key, value=orjson.dumps(record), force=True))
        if sends:
            await asyncio.gather(*sends)
            self.published += len(sends)

    async def _dead_letter_span(self, problem: SpanProblem, tp: TP, r: SourceRecord | None) -> None:
        offset = problem.source if problem.source is not None else (r.offset if r is not None else -1)
        ts = r.timestamp if r is not None and r.offset == offset else None
        source = dead_letter.Source(tp[0], tp[1], offset, int(ts * 1000) if ts is not None else None)
        error = EventError(problem.field, problem.reason, problem.span_id)
        record = dead_letter.dead_letter_record(
            problem.original, None, error, source, now=time.time(), worker=self.worker, contract=SPAN_CONTRACT
        )
        record["trace_id"] = problem.trace_id
        record["span_id"] = problem.span_id
        await (await self.dlq_topic.send(key=None, value=dead_letter.dumps(record), force=True))
        log.warning("dead-lettered span %s/%s of %s[%d]@%d: %s: %s", problem.trace_id, problem.span_id,
                    tp[0], tp[1], offset, problem.field, problem.reason)  # fmt: skip

    def _count(self) -> None:
        """Move the Prometheus counters on by what the translators counted since the last call."""
        c = self.counters()
        outcomes = {
            "event": c.get("events", 0),
            "not_inference": c.get("not_inference", 0),
            "unjoined": c.get("unjoined", 0),
            "unmapped_variant": c.get("unmapped_variant", 0),
            "late": c.get("late", 0),
            "malformed": c.get("malformed_spans", 0),
        }
        for outcome, value in outcomes.items():
            delta = value - self._reported.get(outcome, 0)
            if delta > 0:
                self.metric_spans.labels(outcome).inc(delta)
            self._reported[outcome] = value
