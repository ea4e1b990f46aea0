"""The controller: section: defaults, the checked-in example, and errors that name the line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollguard.settings.config import ConfigError, load_config
from rollguard.settings.controller import ControllerSettings, FlagMapping, load_controller_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "controller" / "controller.yaml"


def test_without_a_config_a_rollout_is_the_flag_of_the_same_key_with_control_and_canary_variants() -> None:
    settings = load_controller_settings(None)
    assert settings == ControllerSettings()
    m = settings.mapping("checkout-v2")
    assert m == FlagMapping("checkout-v2", "control", "canary")
    assert m.context_key("input_class") == "input_class" and not m.configured


def test_the_checked_in_example_maps_a_rollout_to_its_flag_variants_and_context_keys() -> None:
    settings = load_controller_settings(EXAMPLE)
    search = settings.mapping("search-v3")
    assert (search.flag, search.control, search.canary, search.configured) == (
        "search-ranker",
        "off",
        "on",
        True,
    )
    assert search.context_key("input_class") == "inputClass" and search.context_key("tenant") == "tenant"
    assert settings.mapping("checkout-v2").context_key("input_class") == "inputClass"
    assert settings.group_id == "rollguard-controller-flagd"


def test_a_rollout_context_key_overrides_the_section_default_for_that_rollout_only(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "controller:\n  context_keys: {tenant: tenantId}\n"
        "  rollouts:\n    r1:\n      context_keys: {tenant: org}\n"
    )
    settings = load_controller_settings(path)
    assert settings.mapping("r1").context_key("tenant") == "org"
    assert settings.mapping("r2").context_key("tenant") == "tenantId"


def test_rollguard_itself_accepts_a_config_with_a_controller_section() -> None:
    load_config(EXAMPLE)


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        ("controller:\n  canary_variant: on\n", 2, "controller.canary_variant", "quote on/off"),
        ("controller:\n  canary_variant: control\n", 2, "controller.canary_variant", "must differ"),
        (
            "controller:\n  context_keys: {tenant: ''}\n",
            2,
            "controller.context_keys.tenant",
            "non-empty string",
        ),
        ("controller:\n  groupid: x\n", 2, "controller.groupid", "unknown setting"),
        ("controller:\n  rollouts:\n    r1:\n      flag: 3\n", 4, "controller.rollouts.r1.flag", "non-empty"),
        (
            "controller:\n  rollouts:\n    r1:\n      canary_variant: 'off'\n      control_variant: 'off'\n",
            4,
            "controller.rollouts.r1.canary_variant",
            "must differ",
        ),
        ("controller:\n  rollouts:\n    r1: {variant: x}\n", 3, "controller.rollouts.r1.variant", "unknown"),
        ("controller: [1]\n", 1, "controller", "must be a mapping"),
    ],
)
def test_a_bad_controller_section_fails_with_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, fragment: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_controller_settings(path)
    assert (info.value.line, info.value.field) == (line, field)
    assert fragment in info.value.message
    assert str(info.value).startswith(f"{path}:{line}: {field}: ")


def test_the_rest_of_the_file_is_checked_too(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("alpha: 3\ncontroller: {}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:1: alpha: "):
        load_controller_settings(path)
