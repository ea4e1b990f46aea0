"""What a rollout command does to an OpenFeature flagd flag definition. Pure and deterministic.

:func:`edit_flags` maps (flag definitions, command, mapping) to new definitions; it never reads a file,
the clock or the environment, so every edit is reproducible and unit-tested without Kafka. The flag
format is flagd's (https://flagd.dev/reference/flag-definitions/): ``variants``, ``defaultVariant``,
``targeting`` (JSON Logic with flagd's ``fractional``), ``metadata`` (string/number/boolean values).

Commands state end states, so an edit whose end state already holds changes nothing (no version bump):
applying a command twice is a no-op. Every real change bumps the flag's ``metadata.version``
(``"7"`` -> ``"8"``, ``"v7"`` -> ``"v8"``, absent -> ``"1"``, an integer stays an integer).

- ``disable_scope`` puts ``{"if": [<scope>, <control>, ...existing targeting]}`` in front: the scope's
  dimensions, mapped to evaluation-context keys, all equal (``and`` of ``==``) -> control variant;
  everything else evaluates the targeting as before. A scope already sent to control by a leading
  rule of that form (the same scope, or a broader one) is a no-op.
- ``reduce_weight`` sets the canary's share of every ``fractional`` split that contains the canary to
  ``target_weight`` where it is higher (it never raises exposure); ``promote`` raises it where it is
  lower (it never lowers it), and at 1.0 also makes the canary the ``defaultVariant``. The control
  variant absorbs the difference; other variants in a split keep their weights. flagd weights are
  whole numbers: the split is scaled by a power of ten when the target needs it (0.05 of 100 -> 5/95,
  0.123 of 100 -> 123/877 of 1000).
- ``rollback`` makes the control variant the ``defaultVariant`` and every outcome of the targeting:
  literal outcomes of ``if`` branches become the control variant, every ``fractional`` split gives
  the control variant the whole weight (the other entries stay, at 0, so the split remains readable).
  A targeting whose outcomes are computed (``var``, ``cat``, a ``$ref``...) cannot be rewritten
  outcome by outcome and is removed, so the flag serves ``defaultVariant`` everywhere.
- ``pause`` freezes the split: it sets ``metadata["rollguard.paused"] = true`` (and
  ``rollguard.paused_by``, the command id). While it is set, ``reduce_weight`` and ``promote`` that
  would change the flag are refused with ``conflict``; ``rollback`` and ``disable_scope`` still apply
  (they only take exposure away). An operator resumes by deleting the two keys.

Refusals: ``invalid`` when the command cannot mean anything for this flag (no such flag or variant,
no split to change, a scoped weight change), ``conflict`` when the flag is paused or its version is not
the command's ``expected_version``. Both are checked only when the edit would change something.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from rollguard.adapters.controller.admission import Refusal, RolloutCommand
from rollguard.settings.controller import FlagMapping

PAUSED_KEY: Final = "rollguard.paused"
PAUSED_BY_KEY: Final = "rollguard.paused_by"
MAX_WEIGHT_SUM: Final = 2_147_483_647  # flagd's bound on the sum of a split's weights (max int32)
_SHARE_TOLERANCE: Final = 1e-6  # a split within a millionth of the target already is at the target
_TRAILING_NUMBER: Final = re.compile(r"(.*?)(\d+)")


@dataclass(frozen=True, slots=True)
class FlagEdit:
    """The outcome of a command on the flag definitions.

    ``document`` is the new definitions (equal to the input when ``changed`` is false), ``version`` the
    flag's ``metadata.version`` after the edit (``None`` when it has none), ``detail`` what was done."""

    document: dict[str, Any]
    changed: bool
    version: str | None
    detail: str


class _Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


class _Computed(Exception):
    """The targeting computes its outcomes (no literal to rewrite)."""


def _invalid(reason: str) -> _Refused:
    return _Refused(Refusal("invalid", reason))


def edit_flags(
    document: Mapping[str, Any], command: RolloutCommand, mapping: FlagMapping
) -> FlagEdit | Refusal:
    """The flag definitions after ``command``, or why it is refused. ``document`` is not modified."""
    try:
        return _edit(document, command, mapping)
    except _Refused as exc:
        return exc.refusal


def version_text(value: Any) -> str | None:
    """A flag's ``metadata.version`` as the string acks and ``expected_version`` use."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def bumped(value: Any) -> str | int:
    """The next version: an integer + 1, a string's trailing number + 1 (zero padding kept), else ``"1"``.

    >>> [bumped(v) for v in (None, 7, "7", "v7", "2026-01-009", "beta", "", 3.0, 1.5)]
    ['1', 8, '8', 'v8', '2026-01-010', 'beta.1', '1', '4', '1.6']
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value + 1
    if isinstance(value, float) and math.isfinite(value):
        return bumped(version_text(value))
    if isinstance(value, str) and value:
        m = _TRAILING_NUMBER.fullmatch(value)
        if m:
            digits = m.group(2)
            return m.group(1) + str(int(digits) + 1).zfill(len(digits))
        return value + ".1"
    return "1"


def _edit(document: Mapping[str, Any], command: RolloutCommand, m: FlagMapping) -> FlagEdit:
    flags = document.get("flags")
    if not isinstance(flags, dict):
        raise _invalid("the flags file has no 'flags' object")
    flag = flags.get(m.flag)
    if not isinstance(flag, dict):
        raise _invalid(f"flag {m.flag!r} is not defined in the flags file")
    variants = flag.get("variants")
    if not isinstance(variants, dict):
        raise _invalid(f"flag {m.flag!r} has no variants")
    needed = [("control", m.control)]
    if command.action in ("reduce_weight", "promote"):  # taking exposure away needs only the control
        needed.append(("canary", m.canary))
    for role, name in needed:
        if name not in variants:
            known = ", ".join(sorted(map(str, variants)))
            raise _invalid(f"flag {m.flag!r} has no {role} variant {name!r} (variants: {known})")

    new = copy.deepcopy(flag)
    if command.action == "disable_scope":
        detail = _disable_scope(new, command, m)
    elif command.action in ("reduce_weight", "promote"):
        detail = _set_weight(new, command, m)
    elif command.action == "rollback":
        detail = _rollback(new, command, m)
    elif command.action == "pause":
        detail = _pause(new, command)
    else:  # admission lets only rollout actions through
        raise _invalid(f"unknown action {command.action!r}")

    metadata = flag.get("metadata")
    old_version = metadata.get("version") if isinstance(metadata, dict) else None
    if new == flag:
        return FlagEdit(dict(document), False, version_text(old_version), f"already in effect: {detail}")
    if (
        command.action in ("reduce_weight", "promote")
        and isinstance(metadata, dict)
        and metadata.get(PAUSED_KEY)
    ):
        by = metadata.get(PAUSED_BY_KEY, "an earlier pause")
        raise _Refused(
            Refusal(
                "conflict",
                f"flag {m.flag!r} is paused (by {by}): weight changes wait until an operator removes "
                f"metadata {PAUSED_KEY!r}",
            )
        )
    if command.expected_version is not None and command.expected_version != version_text(old_version):
        raise _Refused(
            Refusal(
                "conflict",
                f"flag {m.flag!r} is at version {version_text(old_version)!r}, "
                f"the command expects {command.expected_version!r}",
            )
        )
    new_metadata = new.get("metadata")
    if not isinstance(new_metadata, dict):
        new_metadata = new["metadata"] = {}
    new_metadata["version"] = bumped(old_version)
    out = dict(document)
    out["flags"] = {**flags, m.flag: new}
    return FlagEdit(out, True, version_text(new_metadata["version"]), detail)


# ---------------------------------------------------------------------------------------------- scope
def _scope_pairs(command: RolloutCommand, m: FlagMapping) -> frozenset[tuple[str, str]]:
    pairs: dict[str, str] = {}
    for dimension, value in command.scope.items():
        key = m.context_key(dimension)
        if pairs.get(key, value) != value:
            raise _invalid(f"scope dimensions map to one context key {key!r} with different values")
        pairs[key] = value
    return frozenset(pairs.items())


def scope_condition(pairs: frozenset[tuple[str, str]]) -> dict[str, Any]:
    """JSON Logic that is true when every (context key, value) pair holds."""
    return {"and": [{"==": [{"var": k}, v]} for k, v in sorted(pairs)]}


def _condition_pairs(cond: Any) -> frozenset[tuple[str, str]] | None:
    """The pairs of a condition of :func:`scope_condition`'s form (or a single ``==``), else ``None``."""
    clauses = cond["and"] if isinstance(cond, dict) and list(cond) == ["and"] else [cond]
    if not isinstance(clauses, list) or not clauses:
        return None
    out = set()
    for c in clauses:
        if not (
            isinstance(c, dict) and list(c) == ["=="] and isinstance(c["=="], list) and len(c["=="]) == 2
        ):
            return None
        var, value = c["=="]
        if not (isinstance(var, dict) and list(var) == ["var"] and isinstance(var["var"], str)):
            return None
        if not isinstance(value, str):
            return None
        out.add((var["var"], value))
    return frozenset(out)


def _leading_guards(targeting: Any, control: str) -> Iterator[frozenset[tuple[str, str]]]:
    """Scopes the targeting sends to control before anything else is evaluated."""
    if not (isinstance(targeting, dict) and list(targeting) == ["if"] and isinstance(targeting["if"], list)):
        return
    args = targeting["if"]
    for i in range(0, len(args) - 1, 2):
        pairs = _condition_pairs(args[i])
        if args[i + 1] != control or pairs is None:
            return
        yield pairs


def _empty(targeting: Any) -> bool:
    return targeting is None or targeting == {}


def _disable_scope(flag: dict[str, Any], command: RolloutCommand, m: FlagMapping) -> str:
    if not command.scope:
        raise _invalid("disable_scope needs a scope (rollback acts on the whole rollout)")
    pairs = _scope_pairs(command, m)
    shown = ", ".join(f"{k}={v}" for k, v in sorted(pairs))
    detail = f"context {shown} -> {m.control}"
    targeting = flag.get("targeting")
    if any(guard <= pairs for guard in _leading_guards(targeting, m.control)):
        return detail
    cond = scope_condition(pairs)
    if _empty(targeting):
        flag["targeting"] = {"if": [cond, m.control]}
    elif isinstance(targeting, dict) and list(targeting) == ["if"] and isinstance(targeting["if"], list):
        flag["targeting"] = {"if": [cond, m.control, *targeting["if"]]}  # if(c, x, if(...)) == if(c, x, ...)
    else:
        flag["targeting"] = {"if": [cond, m.control, targeting]}
    return detail


# ---------------------------------------------------------------------------------------------- weights
def _fractional_nodes(node: Any) -> Iterator[list[Any]]:
    """The argument list of every ``fractional`` in a JSON Logic tree (mutable, in document order)."""
    if isinstance(node, dict):
        for op, args in node.items():
            if op == "fractional" and isinstance(args, list):
                yield args
            else:
                yield from _fractional_nodes(args)
    elif isinstance(node, list):
        for item in node:
            yield from _fractional_nodes(item)


def _entries(args: list[Any], flag: str) -> tuple[list[Any], list[tuple[Any, int]]]:
    """A split's optional bucketing expression and its (variant, weight) entries."""
    head = [] if args and isinstance(args[0], list) else args[:1]
    entries: list[tuple[Any, int]] = []
    for entry in args[len(head) :]:
        if not isinstance(entry, list) or not 1 <= len(entry) <= 2:
            raise _invalid(f"flag {flag!r}: a fractional entry must be [variant] or [variant, weight]")
        weight = entry[1] if len(entry) == 2 else 1
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise _invalid(f"flag {flag!r}: fractional weights must be whole numbers >= 0, got {weight!r}")
        entries.append((entry[0], weight))
    variants = [v for v, _ in entries]
    if len(set(map(repr, variants))) != len(variants):
        raise _invalid(f"flag {flag!r}: a variant appears twice in one fractional split")
    return head, entries


def _scaled(target: float, total: int) -> int:
    """The smallest power-of-ten multiplier of ``total`` that represents ``target`` exactly (within 1e-9)."""
    multiplier = 1
    while total * multiplier * 10 <= MAX_WEIGHT_SUM and multiplier < 10**6:
        exact = target * total * multiplier
        if abs(exact - round(exact)) <= 1e-9 * max(1.0, exact):
            break
        multiplier *= 10
    return multiplier


def _set_weight(flag: dict[str, Any], command: RolloutCommand, m: FlagMapping) -> str:
    assert command.target_weight is not None
    target = command.target_weight
    if command.scope:
        raise _invalid(f"{command.action} applies to the whole flag here; a scoped split is not supported")
    raising = command.action == "promote"
    splits = [
        args
        for args in _fractional_nodes(flag.get("targeting"))
        if any(isinstance(e, list) and e and e[0] == m.canary for e in args)
    ]
    if not splits:
        raise _invalid(f"flag {m.flag!r} has no fractional split with the canary variant {m.canary!r}")
    before: list[float] = []
    for args in splits:
        head, entries = _entries(args, m.flag)
        weights = dict(entries)
        if m.control not in weights:
            raise _invalid(f"flag {m.flag!r}: a split with {m.canary!r} has no control variant {m.control!r}")
        total = sum(weights.values())
        if total <= 0:
            raise _invalid(f"flag {m.flag!r}: a fractional split has no weight")
        share = weights[m.canary] / total
        before.append(share)
        at_target = abs(share - target) <= _SHARE_TOLERANCE
        if at_target or (share > target if raising else share < target):
            continue
        k = _scaled(target, total)
        scaled = {v: w * k for v, w in entries}
        canary = round(target * total * k)
        others = sum(w for v, w in scaled.items() if v not in (m.canary, m.control))
        control = total * k - canary - others
        if control < 0:
            raise _invalid(f"flag {m.flag!r}: other variants take more than {1 - target:g} of a split")
        scaled[m.canary], scaled[m.control] = canary, control
        args[:] = [*head, *([v, scaled[v]] for v, _ in entries)]
    if raising and target >= 1.0:
        flag["defaultVariant"] = m.canary
    was = ", ".join(f"{s:g}" for s in before)
    direction = "raised" if raising else "lowered"
    return f"canary weight {was} -> {target:g} ({direction} only) in {len(splits)} split(s)"


# ---------------------------------------------------------------------------------------------- rollback
def _all_control(node: Any, m: FlagMapping) -> Any:
    """The targeting with every outcome replaced by the control variant; raises when outcomes are computed."""
    if node is None:
        return None
    if isinstance(node, str | bool | int | float):
        return m.control
    if isinstance(node, dict) and not node:
        return node
    if isinstance(node, dict) and len(node) == 1:
        op, args = next(iter(node.items()))
        if op in ("if", "?:") and isinstance(args, list):
            out = list(args)
            for i in range(len(args)):
                is_value = i % 2 == 1 or i == len(args) - 1
                if is_value:
                    out[i] = _all_control(args[i], m)
            return {op: out}
        if op == "fractional" and isinstance(args, list):
            try:
                head, entries = _entries(args, m.flag)
            except _Refused:
                raise _Computed from None  # weights we cannot read: a rollback removes the targeting
            total = max(1, sum(w for _, w in entries))
            rewritten: list[Any] = [[v, total if v == m.control else 0] for v, _ in entries]
            if m.control not in [v for v, _ in entries]:
                rewritten.append([m.control, total])
            return {"fractional": [*head, *rewritten]}
    raise _Computed


def _rollback(flag: dict[str, Any], command: RolloutCommand, m: FlagMapping) -> str:
    if command.scope:
        raise _invalid("rollback applies to the whole flag (disable_scope acts on a scope)")
    flag["defaultVariant"] = m.control
    targeting = flag.get("targeting")
    if _empty(targeting):
        return f"defaultVariant -> {m.control}"
    try:
        flag["targeting"] = _all_control(targeting, m)
    except _Computed:
        flag["targeting"] = {}
        return f"defaultVariant -> {m.control}; computed targeting removed"
    return f"defaultVariant and every targeting outcome -> {m.control}"


# ---------------------------------------------------------------------------------------------- pause
def _pause(flag: dict[str, Any], command: RolloutCommand) -> str:
    if command.scope:
        raise _invalid("pause applies to the whole flag")
    metadata = flag.get("metadata")
    detail = f"paused: weight changes refused until metadata {PAUSED_KEY!r} is removed"
    if isinstance(metadata, dict) and metadata.get(PAUSED_KEY) is True:
        return detail
    if not isinstance(metadata, dict):
        metadata = flag["metadata"] = {}
    metadata[PAUSED_KEY] = True
    metadata[PAUSED_BY_KEY] = command.command_id
    return detail


def canary_share(document: Mapping[str, Any], mapping: FlagMapping) -> list[float]:
    """The canary's share of each fractional split of the flag (for reports and tests)."""
    flag = (document.get("flags") or {}).get(mapping.flag) or {}
    shares = []
    for args in _fractional_nodes(flag.get("targeting")):
        _, entries = _entries(args, mapping.flag)
        weights = dict(entries)
        total = sum(weights.values())
        if mapping.canary in weights and total > 0:
            shares.append(weights[mapping.canary] / total)
    return shares
