"""One rollout from event to outputs: detection, policy and its own clock — what replay and the worker drive.

A rollout's decisions depend only on its own events and on the acks and operator actions addressed to
it: its detection engine (scalar and semantic, with an embedding budget of its own), its policy (whose
clock is this rollout's event time), and the ids of its recent events (a duplicate delivery is counted
once). The only things shared with other rollouts are the operators' silences
(:class:`~rollguard.pipeline.shared.SharedState`) and the embedding model. Its whole state is one
JSON-compatible value (:meth:`RolloutPipeline.to_state`), which the streaming worker checkpoints and a
restored pipeline continues from exactly as one that never stopped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from rollguard.detect.control_history import control_history
from rollguard.detect.engine import Engine
from rollguard.domain.events import Event
from rollguard.domain.verdicts import VerdictChange
from rollguard.embeddings.embedder import Embedder
from rollguard.pipeline.dedup import RecentEventIds
from rollguard.pipeline.shared import SharedState
from rollguard.policy.policy import Output, Policy
from rollguard.settings import Config

STATE_VERSION: Final = 1


@dataclass(slots=True)
class Step(Output):
    """What one call produced, in publishing order: verdict changes first, then the policy's outputs
    (alerts, commands and readiness records, audit: the :class:`Output` it extends)."""

    verdicts: list[VerdictChange] = field(default_factory=list)

    def add(self, output: Output) -> Step:
        """The policy's part of the outputs (an :class:`Output` has no verdicts)."""
        Output.extend(self, output)
        return self

    def __iadd__(self, other: Output) -> Step:
        Output.extend(self, other)
        if isinstance(other, Step):
            self.verdicts.extend(other.verdicts)
        return self

    def __bool__(self) -> bool:
        return bool(self.verdicts) or Output.__bool__(self)


class RolloutPipeline:
    """Engine, semantic engine and policy of one rollout, on the rollout's own event-time clock."""

    def __init__(
        self,
        rollout_id: str,
        config: Config,
        shared: SharedState,
        *,
        model: tuple[Embedder | None, str | None] = (None, None),
        signing_key: bytes | None = None,
        instance: str = "rollguard",
    ) -> None:
        self.rollout_id = rollout_id
        self.config = config
        self.shared = shared
        self.engine = Engine(config, model=model)
        self.policy = Policy(config, signing_key=signing_key, instance=instance, silences=shared.silences)
        eng = config.engine
        self.recent = RecentEventIds(eng.dedup_window_s, eng.dedup_max_ids)
        self.last_ts = -math.inf  # newest event time of this rollout (its clock)
        self.duplicates = 0

    # ------------------------------------------------------------------ inputs
    def process(self, ev: Event) -> Step:
        """One event of this rollout (in arrival order): verdict changes and the outputs they cause."""
        step = Step()
        ts = ev.ts
        if self.recent.seen(ev.event_id, ts):
            self.duplicates += 1
            return step
        first = not math.isfinite(self.last_ts)
        if ts > self.last_ts:
            self.last_ts = ts
        if first:  # pre-flight starts with the rollout: the revert rehearsal goes out before anything else
            step.add(self.policy.readiness_started(self.rollout_id, ts))
        batches = self._batches()
        changes = self.engine.process(ev)
        if changes:
            step.verdicts = changes
            step.add(self.policy.on_changes(changes))
        if self._preflight(ev, batches) or first:
            step.add(self.policy.readiness_changed(self.rollout_id))
        if self.policy.due(ts):
            step.add(self.policy.advance(ts))
        return step

    def _batches(self) -> int:
        monitor = self.engine.monitors.get(self.rollout_id)
        return -1 if monitor is None else monitor.seen["batches"]

    def _preflight(self, ev: Event, batches_before: int) -> bool:
        """Feed readiness what only the pipeline sees: the control history until the canary's first
        event (after each closed batch, and at that event), and the eval gate outcome the adapter read.
        True when a fact changed."""
        ready = self.policy.readiness.get(self.rollout_id)
        if ready is None:
            return False
        changed = False
        gates = self.shared.eval_gates
        gate = gates.get(self.rollout_id) or gates.get("*")
        if gate != ready.eval_gate:
            self.policy.readiness_eval_gate(self.rollout_id, gate)
            changed = True
        if ev.variant_parts and (parts := self.variant_parts()) != ready.parts:
            self.policy.readiness_parts(self.rollout_id, parts)
            changed = True
        if ready.shadow.at_live is None and ev.arm in ("shadow", "canary"):
            # shadow answers before live canary traffic, judged at the canary's first live event
            first = ready.shadow.shadow_events == 0
            self.policy.readiness_shadow(self.rollout_id, ev.ts, live=ev.arm == "canary")
            changed = changed or ev.arm == "canary" or first
        facts = ready.baselines
        monitor = self.engine.monitors.get(self.rollout_id)
        if facts is None or facts.canary_at is not None or monitor is None:
            return changed
        canary = ev.arm == "canary"
        if canary or self._batches() != batches_before:
            canary_at = ev.ts if canary else None
            self.policy.readiness_baselines(self.rollout_id, control_history(monitor), canary_at=canary_at)
            changed = True
        return changed

    def on_input(self, item: Mapping[str, Any]) -> Step:
        """An ack (ack v1) or an operator action (command v1 with an operator ``action``) for this rollout."""
        if "action" in item:
            return self._operator(item)
        return Step().add(self.policy.on_ack(item))

    def _operator(self, action: Mapping[str, Any]) -> Step:
        silences_before = set(self.shared.silences)
        step = Step().add(self.policy.on_operator(action))
        if set(self.shared.silences) != silences_before:
            self.shared.changed()
        if action.get("action") == "declare_promotion":
            step += self._declared_promotion(action, step)
        return step

    def _declared_promotion(self, action: Mapping[str, Any], step: Step) -> Step:
        """An operator's accepted ``declare_promotion`` puts the engine in its post-rollout phase now (the
        policy checked who may; only the engine knows whether there is a canary phase to end)."""
        audit = next((a for a in step.audit if a.get("command_id") == action.get("command_id")), None)
        if audit is None or not str(audit.get("result", "")).startswith("ok"):
            return Step()
        monitor = self.engine.monitors.get(self.rollout_id)
        if monitor is None or monitor.phase != "canary":
            # Said in the audit record the policy just wrote: nothing changed in the engine.
            audit["result"] = "ignored: " + (
                "no traffic seen yet" if monitor is None else f"already {monitor.phase}"
            )
            return Step()
        changes = self.engine.promote(self.rollout_id, self.policy.now, reason=f"declared by {audit['by']}")
        out = Step(verdicts=changes)
        return out.add(self.policy.on_changes(changes)) if changes else out

    def advance(self, now: float) -> Step:
        """Move this rollout's clock to ``now`` (event time): resolves, repeats, expiries, escalations."""
        return Step().add(self.policy.advance(now))

    def flush(self) -> Step:
        """Close the open batch (end of a file, or a rollout that went idle) and decide on it."""
        step = Step()
        changes = self.engine.flush()
        if changes:
            step.verdicts = changes
            step.add(self.policy.on_changes(changes))
        return step

    # ------------------------------------------------------------------ views and state
    def status(self) -> dict[str, Any]:
        """The policy's view of this rollout, plus the canary's variant parts against control's once the
        events named them (``variant_parts``: the changed parts and the ``bundled_change`` flag)."""
        status = self.policy.status(self.rollout_id)
        if (parts := self.variant_parts()) is not None:
            status["variant_parts"] = parts
        return status

    def variant_parts(self) -> dict[str, Any] | None:
        """The parts comparison's view (:mod:`rollguard.domain.variant_parts`), None before any event
        of this rollout named its parts."""
        monitor = self.engine.monitors.get(self.rollout_id)
        if monitor is None or (monitor.control_parts is None and monitor.canary_parts is None):
            return None
        return monitor.parts.to_dict()

    def to_state(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "rollout_id": self.rollout_id,
            "engine": self.engine.to_state(),
            "policy": self.policy.to_state(),
            "recent": self.recent.to_state(),
            "last_ts": self.last_ts if math.isfinite(self.last_ts) else None,
            "duplicates": self.duplicates,
        }

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        config: Config,
        shared: SharedState,
        *,
        model: tuple[Embedder | None, str | None] = (None, None),
        signing_key: bytes | None = None,
        instance: str = "rollguard",
    ) -> RolloutPipeline:
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported pipeline state version {state.get('v')!r}")
        rid = str(state["rollout_id"])
        p = cls(rid, config, shared, model=model, signing_key=signing_key, instance=instance)
        p.engine = Engine.from_state(state["engine"], config, model=model)
        p.policy = Policy.from_state(
            config, state["policy"], signing_key=signing_key, instance=instance, silences=shared.silences
        )
        eng = config.engine
        p.recent = RecentEventIds.from_state(state["recent"], eng.dedup_window_s, eng.dedup_max_ids)
        p.last_ts = -math.inf if state["last_ts"] is None else float(state["last_ts"])
        p.duplicates = int(state["duplicates"])
        return p
