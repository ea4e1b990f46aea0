"""Typed settings of the ``controller`` section: how the reference flagd controller finds a rollout's flag.

A command names a rollout and, for ``disable_scope``, a scope of segment dimensions; the controller
edits an OpenFeature flagd flag. This section says which flag a rollout is (default: the flag whose key
is the rollout id), which of its variants are control and canary (default ``control`` / ``canary``,
the names rollguard's events use for the arms), and which evaluation-context key carries each segment
dimension (default: the dimension's own name). Errors read ``file:line: field: what is wrong`` like
the rest of the config.

Example::

    controller:
      control_variant: control
      canary_variant: canary
      context_keys: {input_class: inputClass}     # scope dimension -> evaluation-context key
      group_id: rollguard-controller-flagd        # Kafka consumer group
      rollouts:
        checkout-v2:
          flag: checkout-model                    # the flag key in the flags file
          control_variant: "off"                  # quote on/off/yes/no: YAML reads them as booleans
          canary_variant: "on"
          context_keys: {tenant: tenantId}        # merged over the section's context_keys
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from rollguard.settings.checks import Locator, mapping, only, text

DEFAULT_CONTROL: Final = "control"
DEFAULT_CANARY: Final = "canary"
DEFAULT_GROUP_ID: Final = "rollguard-controller-flagd"
_SECTION_KEYS: Final = ("control_variant", "canary_variant", "context_keys", "group_id", "rollouts")
_ROLLOUT_KEYS: Final = ("flag", "control_variant", "canary_variant", "context_keys")


def _frozen(d: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True, slots=True)
class FlagMapping:
    """One rollout's flag: its key, its control and canary variants, and the context key of each dimension.

    ``configured`` is true when the rollout is listed under ``controller.rollouts``: a command for it
    then concerns this controller even when the flag is missing from the file (an error to report),
    whereas a command for an unlisted rollout whose flag is absent belongs to some other controller."""

    flag: str
    control: str = DEFAULT_CONTROL
    canary: str = DEFAULT_CANARY
    context_keys: Mapping[str, str] = field(default_factory=_frozen)
    configured: bool = False

    def context_key(self, dimension: str) -> str:
        return self.context_keys.get(dimension, dimension)


@dataclass(frozen=True, slots=True)
class RolloutFlagSettings:
    """Overrides for one rollout (``None``: the section's value)."""

    flag: str | None = None
    control_variant: str | None = None
    canary_variant: str | None = None
    context_keys: Mapping[str, str] = field(default_factory=_frozen)


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    control_variant: str = DEFAULT_CONTROL
    canary_variant: str = DEFAULT_CANARY
    context_keys: Mapping[str, str] = field(default_factory=_frozen)
    group_id: str = DEFAULT_GROUP_ID
    rollouts: Mapping[str, RolloutFlagSettings] = field(default_factory=lambda: MappingProxyType({}))

    def mapping(self, rollout_id: str) -> FlagMapping:
        """The flag of ``rollout_id``: its own settings over the section's defaults."""
        per = self.rollouts.get(rollout_id)
        if per is None:
            return FlagMapping(rollout_id, self.control_variant, self.canary_variant, self.context_keys)
        return FlagMapping(
            flag=per.flag or rollout_id,
            control=per.control_variant or self.control_variant,
            canary=per.canary_variant or self.canary_variant,
            context_keys=_frozen({**self.context_keys, **per.context_keys}),
            configured=True,
        )


def _variant(value: Any, path: str, loc: Locator) -> str:
    if isinstance(value, bool):
        raise loc.error(path, f"must be a variant name, got {value!r} (quote on/off/yes/no in YAML)")
    return text(value, path, loc)


def _context_keys(raw: Any, path: str, loc: Locator) -> Mapping[str, str]:
    data = mapping(raw, path, loc)
    out: dict[str, str] = {}
    for dimension, key in data.items():
        out[str(dimension)] = text(key, f"{path}.{dimension}", loc)
    return _frozen(out)


def _check_distinct(control: str, canary: str, path: str, loc: Locator) -> None:
    if control == canary:
        raise loc.error(path, f"must differ from control_variant ({control!r})")


def _rollout(raw: Any, path: str, loc: Locator, control: str, canary: str) -> RolloutFlagSettings:
    data = mapping(raw, path, loc)
    only(data, _ROLLOUT_KEYS, path, loc)
    per = RolloutFlagSettings(
        flag=text(data["flag"], f"{path}.flag", loc) if "flag" in data else None,
        control_variant=_variant(data["control_variant"], f"{path}.control_variant", loc)
        if "control_variant" in data
        else None,
        canary_variant=_variant(data["canary_variant"], f"{path}.canary_variant", loc)
        if "canary_variant" in data
        else None,
        context_keys=_context_keys(data.get("context_keys"), f"{path}.context_keys", loc),
    )
    bad = "canary_variant" if "canary_variant" in data else "control_variant"
    _check_distinct(per.control_variant or control, per.canary_variant or canary, f"{path}.{bad}", loc)
    return per


def parse_controller(raw: Any, loc: Locator) -> ControllerSettings:
    """The ``controller`` section (absent: the defaults)."""
    data = mapping(raw, "controller", loc)
    only(data, _SECTION_KEYS, "controller", loc)
    defaults = ControllerSettings()
    control = _variant(
        data.get("control_variant", defaults.control_variant), "controller.control_variant", loc
    )
    canary = _variant(data.get("canary_variant", defaults.canary_variant), "controller.canary_variant", loc)
    _check_distinct(control, canary, "controller.canary_variant", loc)
    rollouts_raw = mapping(data.get("rollouts"), "controller.rollouts", loc)
    rollouts = {
        str(rid): _rollout(r, f"controller.rollouts.{rid}", loc, control, canary)
        for rid, r in rollouts_raw.items()
    }
    return ControllerSettings(
        control_variant=control,
        canary_variant=canary,
        context_keys=_context_keys(data.get("context_keys"), "controller.context_keys", loc),
        group_id=text(data.get("group_id", defaults.group_id), "controller.group_id", loc),
        rollouts=MappingProxyType(rollouts),
    )


def load_controller_settings(path: str | Path | None) -> ControllerSettings:
    """The ``controller`` section of a rollguard config file; the whole file is validated as well, so a
    controller and rollguard can share one file. Raises :class:`~rollguard.settings.config.ConfigError`."""
    from rollguard.settings.config import compose_located, load_config

    if path is None:
        return ControllerSettings()
    load_config(path)
    data, loc = compose_located(Path(path).read_text(), str(path))
    return parse_controller(data.get("controller") if isinstance(data, dict) else None, loc)
