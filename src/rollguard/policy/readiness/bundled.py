"""Bounded scope: the canary changes one thing.

A canary that differs from control in several of its ``variant_parts`` (a new model, prompt and tool set
shipped together) cannot be told apart when something regresses. The comparison itself lives in
:mod:`rollguard.domain.variant_parts` (the monitor keeps each arm's latest parts); the pipeline hands
its view over, and this check reads it. Events that name no parts leave the check ``off``: there is
nothing to judge, and saying "met" would claim a bounded change nobody described.

>>> bundled_check("warn", {"changed": ["model", "prompt"], "bundled_change": True}).state
'unmet'
>>> bundled_check("warn", {"changed": ["prompt"], "bundled_change": False}).evidence
'one part changed: prompt'
>>> bundled_check("warn", None).state
'off'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollguard.domain.variant_parts import changed_parts_text
from rollguard.policy.readiness.result import CheckResult, off


def bundled_check(mode: str, parts: Mapping[str, Any] | None) -> CheckResult:
    """The check from the parts comparison's view (``changed``, ``bundled_change``; None: no parts)."""
    if mode == "off":
        return off("bundled", mode, "switched off (readiness.bundled: off)")
    if parts is None:
        return off(
            "bundled", mode, "the events name no variant_parts: what the canary changes is not described"
        )
    changed = parts.get("changed")
    if changed is None:
        return CheckResult(
            "bundled", mode, "pending", "only one arm has named its variant_parts so far",
            "events of both arms carrying variant_parts", summary="one arm",
        )  # fmt: skip
    names = [str(n) for n in changed]
    if parts.get("bundled_change"):
        return CheckResult(
            "bundled", mode, "unmet", changed_parts_text(names),
            "ship one part at a time (a canary that differs from control in a single variant part), "
            "or set readiness.bundled to warn or off",
            summary="bundled " + ",".join(names),
        )  # fmt: skip
    evidence = f"one part changed: {names[0]}" if names else "no part differs from control"
    return CheckResult("bundled", mode, "met", evidence, "", summary="bounded " + ",".join(names))
