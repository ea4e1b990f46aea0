"""The detection engine: events in, verdict changes out, for any number of rollouts.

It hands each event to its rollout's monitor (which batches them by event time) and starts a rollout
afresh when its canary version changes. It knows nothing about Kafka or files: the replay command and the
streaming worker are adapters around it, and both reach the same decisions from the same events.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rollguard.detect.monitor import RolloutMonitor
from rollguard.domain.cohorts import WHOLE
from rollguard.domain.events import Event
from rollguard.domain.variant_parts import differing_parts
from rollguard.domain.verdicts import VerdictChange
from rollguard.embeddings.embedder import Embedder
from rollguard.embeddings.semantic_engine import SemanticEngine, check_model
from rollguard.settings.config import Config


class Engine:
    """All monitored rollouts; feed it events with :meth:`process`, end with :meth:`flush`."""

    def __init__(
        self, config: Config | None = None, *, model: tuple[Embedder | None, str | None] | None = None
    ) -> None:
        self.config = config or Config()
        self.monitors: dict[str, RolloutMonitor] = {}
        self._max_ts = float("-inf")
        # Semantic drift and shadow pairing (issue 6): built at the first event that needs them; the
        # model is checked here (a missing one fails at start when embeddings.enabled is true) and
        # loaded only when a text must be embedded, so the engine runs without torch otherwise.
        # Engines of many rollouts share one model: pass ``model`` (:func:`check_model`'s answer).
        self._embedder, self._model_error = check_model(self.config) if model is None else model
        self.semantic: SemanticEngine | None = None

    @property
    def late_events(self) -> int:
        """Events older than their rollout's open batch (they joined it; nothing is dropped)."""
        return sum(m.counters["late"] for m in self.monitors.values())

    def process(self, event: Event) -> list[VerdictChange]:
        """Take one validated event; returns the verdict changes it caused (possibly none).

        Events are taken in arrival order. Each rollout folds them into micro-batches of event time
        and every statistic is a sum over the batch, so order *within* a batch never matters; an event
        older than its rollout's open batch simply joins it and is counted as late.
        """
        if event.ts > self._max_ts:
            self._max_ts = event.ts
        monitor = self.monitors.get(event.rollout_id)
        if monitor is None or (
            event.arm == "canary"
            and (
                (
                    event.variant is not None
                    and monitor.canary_variant is not None
                    and event.variant != monitor.canary_variant
                )
                or (
                    event.variant_parts  # a change of the canary's parts is a new canary version too
                    and monitor.canary_parts is not None
                    and event.variant_parts != monitor.canary_parts
                )
            )
        ):
            out = self._start(event, monitor)
        else:
            out = monitor.process(event)
        if self.semantic is not None or (
            (event.response_text is not None or event.response_embedding is not None or event.arm == "shadow")
            and SemanticEngine.wants(self.config, event)
        ):
            if self.semantic is None:
                self.semantic = SemanticEngine(self.config, self._embedder, model_error=self._model_error)
            monitor = self.monitors.get(event.rollout_id)
            out.extend(self.semantic.process(event, monitor.phase if monitor is not None else "canary"))
        return out

    def _start(self, ev: Event, monitor: RolloutMonitor | None) -> list[VerdictChange]:
        """A rollout's first event, or the first of a new canary version (a new ``variant``, or new
        ``variant_parts``): the rollout starts afresh, keeping only what it knows of control's parts."""
        out: list[VerdictChange] = []
        control_parts = None
        if monitor is not None:
            out = monitor.flush()
            out.append(
                VerdictChange(
                    "rollout", ev.ts, ev.rollout_id, WHOLE, {}, "", monitor.phase, "reset", None,
                    _reset_evidence(monitor, ev),
                )
            )  # fmt: skip
            control_parts = monitor.control_parts
        monitor = self.monitors[ev.rollout_id] = RolloutMonitor(ev.rollout_id, self.config)
        monitor.control_parts = control_parts
        out.extend(monitor.process(ev))
        return out

    def promote(self, rollout_id: str, ts: float, reason: str = "operator") -> list[VerdictChange]:
        """Put a rollout in its post-rollout phase at event time ``ts`` (an operator's or controller's
        word, e.g. after a promotion the events do not show): its open batch closes first."""
        monitor = self.monitors.get(rollout_id)
        if monitor is None:
            return []
        out = monitor.flush()
        out.extend(monitor.promote(max(ts, monitor.batch_end_ts), reason))
        return out

    def process_many(self, events: Iterable[Event]) -> list[VerdictChange]:
        out: list[VerdictChange] = []
        for ev in events:
            out.extend(self.process(ev))
        out.extend(self.flush())
        return out

    def flush(self) -> list[VerdictChange]:
        """Close every open batch (end of stream, or an idle timer in the streaming worker)."""
        out: list[VerdictChange] = []
        for rollout_id in sorted(self.monitors):
            out.extend(self.monitors[rollout_id].flush())
        if self.semantic is not None:
            out.extend(self.semantic.flush())
        return out

    def snapshot(self, rollout_id: str) -> dict[str, Any]:
        """One rollout's read-only view for dashboards (:meth:`RolloutMonitor.snapshot`); KeyError when
        the rollout is unknown."""
        return self.monitors[rollout_id].snapshot()

    def to_state(self) -> dict[str, Any]:
        """All rollouts' state (open batches included), as JSON-compatible data."""
        return {
            "v": 1,
            "monitors": {rid: m.to_state() for rid, m in sorted(self.monitors.items())},
            "max_ts": None if self._max_ts == float("-inf") else self._max_ts,
            "semantic": None if self.semantic is None else self.semantic.to_state(),
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        config: Config | None = None,
        *,
        model: tuple[Embedder | None, str | None] | None = None,
    ) -> Engine:
        """Resume from :meth:`to_state` output: the same events afterwards give the same decisions."""
        engine = cls(config, model=model)
        engine.monitors = {
            rid: RolloutMonitor.from_state(s, engine.config) for rid, s in state["monitors"].items()
        }
        engine._max_ts = float("-inf") if state["max_ts"] is None else float(state["max_ts"])
        if state.get("semantic") is not None:
            engine.semantic = SemanticEngine.from_state(
                state["semantic"], engine.config, engine._embedder, engine._model_error
            )
        return engine


def _reset_evidence(monitor: RolloutMonitor, ev: Event) -> dict[str, Any]:
    """Why a rollout restarts: its canary's new variant, or its canary's parts that changed."""
    old = monitor.canary_variant
    variant_changed = ev.variant is not None and old is not None and ev.variant != old
    if variant_changed or not ev.variant_parts or monitor.canary_parts is None:
        evidence: dict[str, Any] = {"reason": "canary variant changed", "from": monitor.canary_variant,
                                    "to": ev.variant}  # fmt: skip
    else:  # same variant label (or none): the rollout keeps its label, its parts changed
        evidence = {"reason": "canary variant parts changed", "from": monitor.canary_variant,
                    "to": monitor.canary_variant if ev.variant is None else ev.variant}  # fmt: skip
    if ev.variant_parts and monitor.canary_parts is not None and ev.variant_parts != monitor.canary_parts:
        evidence["parts_from"] = dict(monitor.canary_parts)
        evidence["parts_to"] = dict(ev.variant_parts)
        evidence["changed_parts"] = list(differing_parts(monitor.canary_parts, ev.variant_parts))
    return evidence
