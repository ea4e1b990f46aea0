"""What the settings tests share: the located error a config text fails with."""

from __future__ import annotations

import pytest

from rollguard.settings import ConfigError, parse_config


def config_error(text: str) -> ConfigError:
    """The error :func:`parse_config` raises for ``text`` read as ``rollguard.yaml`` (none fails the test)."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="rollguard.yaml")
    return info.value


def assert_fails(text: str, line: int, field: str, message: str) -> None:
    """``text`` fails at ``rollguard.yaml:line`` in ``field`` with exactly ``message``."""
    err = config_error(text)
    assert (err.line, err.field, err.message) == (line, field, message), str(err)
    assert str(err) == f"rollguard.yaml:{line}: {field}: {message}"
