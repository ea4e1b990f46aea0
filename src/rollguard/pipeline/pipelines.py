"""Every rollout's pipeline, created at its first event: what replay drives, and what a worker holds
for the rollouts of its partitions.

Events go to their rollout's pipeline; an ack goes to the pipeline of its ``rollout_id`` (an ack for a
rollout never seen is audited and ignored); an operator action goes to its rollout's pipeline, created
if need be (an operator may hold a rollout before its traffic starts) — unless the policy would reject
it anyway: such a stray action is bad input (:meth:`Pipelines.stray_rejection` says why), which the
worker dead-letters and replay writes to ``rejected.jsonl``. Silences are shared.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from rollguard.domain.events import Event, EventError
from rollguard.embeddings.embedder import Embedder
from rollguard.embeddings.semantic_engine import check_model
from rollguard.pipeline.rollout import RolloutPipeline, Step
from rollguard.pipeline.shared import SharedState
from rollguard.policy.policy import Policy
from rollguard.settings import Config


class Pipelines:
    """Rollout id → :class:`RolloutPipeline`, with the silences and the embedding model they share."""

    def __init__(
        self,
        config: Config,
        *,
        signing_key: bytes | None = None,
        instance: str = "rollguard",
        shared: SharedState | None = None,
        model: tuple[Embedder | None, str | None] | None = None,
    ) -> None:
        self.config = config
        self.signing_key = signing_key
        self.instance = instance
        self.shared = shared or SharedState()
        # Checked once (a missing model fails here when embeddings.enabled is true), loaded when needed.
        self.model = check_model(config) if model is None else model
        self.by_rollout: dict[str, RolloutPipeline] = {}
        self.shared.on_change(self._silences_changed)

    def __iter__(self) -> Iterator[RolloutPipeline]:
        """The pipelines in rollout-id order (the order every multi-rollout step runs in)."""
        return (self.by_rollout[rid] for rid in sorted(self.by_rollout))

    def __len__(self) -> int:
        return len(self.by_rollout)

    def get(self, rollout_id: str) -> RolloutPipeline:
        p = self.by_rollout.get(rollout_id)
        if p is None:
            p = self.by_rollout[rollout_id] = RolloutPipeline(
                rollout_id,
                self.config,
                self.shared,
                model=self.model,
                signing_key=self.signing_key,
                instance=self.instance,
            )
        return p

    def process(self, ev: Event) -> Step:
        return self.get(ev.rollout_id).process(ev)

    def on_input(self, item: Mapping[str, Any], at: float | None = None) -> Step:
        """Apply an ack or operator action to its rollout, first moving that rollout's clock to ``at``
        (the input's own time, when it has one)."""
        rid = item.get("rollout_id")
        is_action = "action" in item
        if not isinstance(rid, str) or not rid or (not is_action and rid not in self.by_rollout):
            # Nothing to apply it to: the policy words the audit record as it would for any rollout.
            scratch = Policy(self.config, signing_key=self.signing_key, instance=self.instance)
            return Step().add(scratch.on_operator(item) if is_action else scratch.on_ack(item))
        if self.stray_rejection(item, at) is not None:
            return Step()  # bad input, not a decision: the caller sets it aside with stray_rejection's reason
        p = self.get(rid)
        step = p.advance(at) if at is not None and math.isfinite(at) else Step()
        step += p.on_input(item)
        return step

    def stray_rejection(self, item: Mapping[str, Any], at: float | None = None) -> EventError | None:
        """Why an operator action addressed to a rollout that has no pipeline yet is set aside as bad
        input, when the policy would reject it anyway (malformed, unsigned, forged, or one that needs the
        rollout's events, such as ``rehearse_revert``): so that a message nobody may act with creates no
        rollout state. None when it would be accepted (an operator may hold or silence a rollout before
        its first event: then it gets its pipeline) or is not stray.

        The one wording of that reason: the worker dead-letters the message with it and replay writes
        it to ``rejected.jsonl`` (field ``action``, contract ``operator``); neither audits it.
        """
        rid = item.get("rollout_id")
        if "action" not in item or not isinstance(rid, str) or not rid or rid in self.by_rollout:
            return None
        scratch = Policy(self.config, signing_key=self.signing_key, instance=self.instance)
        if at is not None and math.isfinite(at):
            scratch.advance(at)
        results = [str(a.get("result", "")) for a in scratch.on_operator(item).audit]
        rejected = next((r for r in results if r.startswith("rejected:")), None)
        if rejected is None:
            return None
        return EventError("action", f"for a rollout with no state here, {rejected}")

    def flush(self) -> Step:
        """Close every rollout's open batch (the end of a file)."""
        step = Step()
        for p in self:
            step += p.flush()
        return step

    def advance_each(self) -> Step:
        """Move every rollout's policy to its own newest event time."""
        step = Step()
        for p in self:
            if math.isfinite(p.last_ts):
                step += p.advance(p.last_ts)
        return step

    def _silences_changed(self) -> None:
        for p in self.by_rollout.values():
            p.policy.refresh_due()
