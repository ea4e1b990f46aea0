"""Bounded scope: which parts of the version the canary changes compared with control.

Events may name the components of the version an arm runs (``variant_parts``: model, prompt, tools,
…). A canary that differs from control in one part has a bounded change: a regression points at that
part. One that differs in several is a *bundled change*: a new model, prompt and tool set shipped
together cannot be told apart when something regresses, so the status flags it and the alerts name
the parts. Pure functions of the parts the events carried; nothing here reads a clock or the
environment.

>>> control = {"model": "m-1", "prompt": "p6", "tools": "t3"}
>>> c = compare(control, {"model": "m-2", "prompt": "p7", "tools": "t3"})
>>> c.changed, c.bundled
(('model', 'prompt'), True)
>>> bundled_parts({"variant_parts": c.to_dict()})
['model', 'prompt']
>>> changed_parts_text(c.changed)
'bundled change: model and prompt changed together'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Parts = Mapping[str, str]


def differing_parts(before: Parts, after: Parts) -> tuple[str, ...]:
    """The part names whose values differ between two sets of parts, sorted (a part present on one
    side only differs: the canary added or dropped it).

    >>> differing_parts({"model": "m-1", "prompt": "p6"}, {"model": "m-1", "prompt": "p7", "tools": "t1"})
    ('prompt', 'tools')
    """
    return tuple(sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name)))


@dataclass(frozen=True, slots=True)
class PartsComparison:
    """The canary's parts against control's: ``changed`` is None until both arms have named theirs."""

    control: dict[str, str] | None
    canary: dict[str, str] | None
    changed: tuple[str, ...] | None

    @property
    def bundled(self) -> bool:
        """More than one part changed at once: a regression cannot be pinned on one of them."""
        return self.changed is not None and len(self.changed) > 1

    def to_dict(self) -> dict[str, Any]:
        """The status view: both arms' parts, the changed parts (null: not comparable yet), the flag."""
        return {
            "control": None if self.control is None else dict(self.control),
            "canary": None if self.canary is None else dict(self.canary),
            "changed": None if self.changed is None else list(self.changed),
            "bundled_change": self.bundled,
        }


def compare(control: Parts | None, canary: Parts | None) -> PartsComparison:
    """Compare the latest parts each arm named (None: that arm's events carried none)."""
    changed = None if control is None or canary is None else differing_parts(control, canary)
    return PartsComparison(
        None if control is None else dict(control), None if canary is None else dict(canary), changed
    )


def bundled_parts(status: Mapping[str, Any]) -> list[str]:
    """The parts of a bundled change named by a rollout's status (pipeline status, the worker's
    ``/status`` entry, a replay summary's entry or the comparison's own view), else ``[]``: a bounded
    change, or parts not known.

    >>> bundled_parts({"variant_parts": {"changed": ["prompt"], "bundled_change": False}})
    []
    >>> bundled_parts({})
    []
    """
    view = status.get("variant_parts", status)
    if not isinstance(view, Mapping) or view.get("bundled_change") is not True:
        return []
    changed = view.get("changed")
    return [str(name) for name in changed] if isinstance(changed, list | tuple) else []


def changed_parts_text(changed: tuple[str, ...] | list[str]) -> str:
    """How an alert names the parts the canary changes.

    >>> changed_parts_text(["prompt"])
    'changed part: prompt'
    >>> changed_parts_text(["model", "prompt", "tools"])
    'bundled change: model, prompt and tools changed together'
    """
    names = list(changed)
    if len(names) == 1:
        return f"changed part: {names[0]}"
    listed = ", ".join(names[:-1]) + f" and {names[-1]}"
    return f"bundled change: {listed} changed together"
