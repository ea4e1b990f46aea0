"""OpenTelemetry traces in, v1 events out: rollguard for teams that already trace their LLM calls.

The OpenTelemetry Collector's Kafka exporter writes OTLP trace payloads (``ExportTraceServiceRequest``,
protobuf or its JSON mapping); OpenFeature's OpenTelemetry hook writes every flag evaluation as a span
event. This package turns such payloads into the v1 events the core already reads, so replay and the
streaming worker analyse them unchanged. Pure: no Kafka, no clock, no environment.

- :mod:`.spans` — a span as rollguard reads it, whichever encoding it came in;
- :mod:`.decode` — payload bytes to spans (both encodings), each malformed span named with its ids;
- :mod:`.genai` — one GenAI inference span and the flag evaluation that puts it in a rollout to a v1 event;
- :mod:`.traces` — the join by trace id within an event-time window, and the order events leave in;
- :mod:`.translate` — all of it per payload: what replay and the worker's translator stage call.
"""
