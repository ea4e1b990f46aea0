"""Revert rehearsed: a dry-run ``rollback`` issued when a rollout is first seen, and what became of it.

The rehearsal is a real command on the control topic (signed, with ``dry_run: true`` and
``rehearsal: true``) that a controller answers like any other; it is kept here, apart from the command
ladder, so that its ack never moves the ladder (no level, no weight, no in-flight slot, no hourly cap).
A ``dry_run_ok`` satisfies the check; no ack within ``rehearsal_timeout_s`` of event time, a
``rejected`` or a ``failed`` leaves it unmet (a late ``dry_run_ok`` still satisfies it: the path was
exercised, only later). An ``applied`` answer to a dry run is unmet too: that controller would have
changed the rollout when asked to rehearse.

>>> r = Rehearsal()
>>> r.issue("cmd-1", 100.0)
>>> r.check("block", 150.0, 300.0).state, r.check("block", 400.0, 300.0).state
('pending', 'unmet')
>>> r.on_ack({"status": "dry_run_ok", "controller": "flagd-file"}, 410.0)
'dry_run_ok'
>>> r.check("block", 410.0, 300.0).state
'met'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from rollguard.domain.events import excerpt
from rollguard.policy.readiness.result import CheckResult, off

WAITING: Final = frozenset({"issued", "accepted"})
ANSWERS: Final = frozenset({"accepted", "dry_run_ok", "rejected", "failed", "applied"})


@dataclass(slots=True)
class Rehearsal:
    """The rehearsal command of one rollout and its answer."""

    # not_issued | commands_disabled | issued | accepted | dry_run_ok | rejected | failed | applied
    status: str = "not_issued"
    command_id: str | None = None
    issued_at: float | None = None
    acked_at: float | None = None  # event time at which the answer arrived
    controller: str | None = None
    reason: str | None = None
    attempt: int = 1  # rehearsals issued so far (an operator may ask for another: ``rehearse_revert``)

    def issue(self, command_id: str, now: float, attempt: int = 1) -> None:
        self.status, self.command_id, self.issued_at = "issued", command_id, now
        self.attempt = attempt
        self.acked_at = self.controller = self.reason = None

    def disabled(self) -> None:
        """Rollout commands are off for the rollout: there is nothing to rehearse (said, not pretended)."""
        self.status = "commands_disabled"

    def on_ack(self, ack: Mapping[str, Any], now: float) -> str:
        """Record a controller's answer; returns what happened (for the audit record)."""
        status = ack.get("status")
        if not isinstance(status, str) or status not in ANSWERS:
            return f"ignored: bad status {excerpt(status)}"
        if status == self.status:
            return "ignored: duplicate"
        if status == "accepted" and self.status != "issued":
            return f"ignored: already {self.status}"
        if self.status == "dry_run_ok":
            return "ignored: rehearsal already answered dry_run_ok"
        self.status, self.acked_at = status, now
        controller, reason = ack.get("controller"), ack.get("reason")
        self.controller = str(controller)[:100] if isinstance(controller, str) else None
        self.reason = str(reason)[:200] if isinstance(reason, str) else None
        return status

    def timed_out(self, now: float, timeout_s: float) -> bool:
        return self.status in WAITING and self.issued_at is not None and now >= self.issued_at + timeout_s

    def failed_at(self, now: float, timeout_s: float) -> float | None:
        """Since when (event time) the rehearsal has failed, or None while it has not."""
        if self.timed_out(now, timeout_s):
            assert self.issued_at is not None
            return self.issued_at + timeout_s
        if self.status in ("rejected", "failed", "applied"):
            return self.acked_at if self.acked_at is not None else now
        return None

    def next_due(self, now: float, timeout_s: float) -> float:
        if self.status in WAITING and self.issued_at is not None and self.issued_at + timeout_s > now:
            return self.issued_at + timeout_s
        return math.inf

    def check(self, mode: str, now: float, timeout_s: float) -> CheckResult:
        if mode == "off":
            return off("revert", mode, "switched off (readiness.revert: off)")
        cid = self.command_id
        satisfy = f"a controller answers the dry-run rollback {cid} with dry_run_ok (within {timeout_s:g} s)"
        who = f" by {self.controller}" if self.controller else ""
        why = f": {self.reason}" if self.reason else ""

        def result(state: str, evidence: str, to_satisfy: str = satisfy) -> CheckResult:
            return CheckResult("revert", mode, state, evidence, to_satisfy, summary=f"{self.status} {cid}")

        if self.status == "not_issued":
            return result("pending", "no event seen yet: nothing rehearsed", "the rollout's first event")
        if self.status == "commands_disabled":
            return result(
                "unmet",
                "rollout commands are disabled for this rollout (commands.enabled): rollguard has no "
                "revert path to rehearse",
                "enable rollout commands for it (commands.enabled, commands.rollouts.<id>.enabled) "
                "or set readiness.revert to warn or off",
            )
        if self.status == "dry_run_ok":
            assert self.acked_at is not None and self.issued_at is not None
            took = self.acked_at - self.issued_at
            late = f" after {took:g} s, later than {timeout_s:g} s" if took > timeout_s else ""
            return result("met", f"dry-run rollback {cid} answered dry_run_ok{who}{late}{why}", "")
        if self.status in WAITING:
            accepted = f" (accepted{who}, never answered)" if self.status == "accepted" else ""
            if self.timed_out(now, timeout_s):
                return CheckResult(
                    "revert",
                    mode,
                    "unmet",
                    f"revert path not rehearsed: no controller answered the dry-run rollback {cid} "
                    f"within {timeout_s:g} s{accepted}",
                    satisfy,
                    summary=f"timed out {cid}",
                )
            return result(
                "pending", f"dry-run rollback {cid} issued at {self.issued_at:.0f}, waiting for its answer"
            )
        what = (
            "applied (a controller changed the rollout on a dry run)"
            if self.status == "applied"
            else self.status
        )
        return result("unmet", f"revert path not rehearsed: the dry-run rollback {cid} was {what}{who}{why}")

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Rehearsal:
        return cls(**state)
