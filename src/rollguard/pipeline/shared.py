"""What rollouts share: the operators' silences (matchers over alert labels, valid for a span of time),
and the eval gate outcomes an adapter read from the reports the config names (``readiness``).

Every rollout's policy reads the same silences, each at its own event time (a silence applies to an
alert when the alert's rollout clock is inside the silence's span), so sharing them never makes one
rollout's clock move another's decisions. Replay keeps one :class:`SharedState`; a streaming worker
mirrors a Faust global table fed from the control topic into it, so that a silence reaches every worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from rollguard.policy.alerts.manager import Silence
from rollguard.policy.readiness.eval_gate import EvalGateOutcome

# An ended silence is forgotten this long (event time) after its end: long enough that no rollout's
# clock still inside its span can be this far behind the newest one.
FORGET_AFTER_S: Final = 86400.0


class SharedState:
    """Silences by id, and who to tell when they change (policies re-read when they are next due)."""

    def __init__(self) -> None:
        self.silences: dict[str, Silence] = {}
        # Rollout id -> its eval gate report's outcome (read by the adapter; a rollout's pipeline hands
        # it to its readiness at its next event).
        self.eval_gates: dict[str, EvalGateOutcome] = {}
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def changed(self) -> None:
        for listener in self._listeners:
            listener()

    def forget_ended(self, now: float) -> None:
        """Drop silences that ended more than :data:`FORGET_AFTER_S` before ``now`` (event time)."""
        ended = [sid for sid, s in self.silences.items() if s.ends_at + FORGET_AFTER_S <= now]
        for sid in ended:
            del self.silences[sid]
        if ended:
            self.changed()

    def replace_silences(self, raw: dict[str, dict[str, Any]]) -> bool:
        """Mirror silences kept elsewhere (a worker's global table); True when anything changed."""
        fresh = {sid: Silence(**state) for sid, state in sorted(raw.items())}
        if fresh == self.silences:
            return False
        self.silences.clear()
        self.silences.update(fresh)
        self.changed()
        return True
