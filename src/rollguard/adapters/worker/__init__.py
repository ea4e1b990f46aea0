"""``rollguard worker``: the streaming service (faust-streaming) — the same pipelines as ``rollguard
replay``, fed from Kafka, checkpointed in changelog-backed tables, publishing verdicts, alerts,
commands and audit records (see :mod:`rollguard.adapters.worker.app`)."""

from rollguard.adapters.worker.app import (
    WorkerApp,
    WorkerOptions,
    broker_urls,
    create_app,
    validate_message,
)
from rollguard.adapters.worker.topics import WorkerTopics

__all__ = ["WorkerApp", "WorkerOptions", "WorkerTopics", "broker_urls", "create_app", "validate_message"]
