"""Typed settings of the config section ``bridge`` (the consumers that carry alerts to other systems).

Only ``bridge.alertmanager`` exists: how ``rollguard bridge alertmanager`` posts the alert topics to
Alertmanager's v2 API. Parsing reports ``file:line: field: message`` like the rest of the config (the
loader hands the section over with its line table).

Example::

    bridge:
      alertmanager:
        worker_url: http://rollguard-worker:6066   # generatorURL = {worker_url}/status?rollout=<id>
        repost_interval_s: 60     # firing alerts are posted again this often: keep it well under
                                  # Alertmanager's resolve_timeout (5m by default)
        timeout_s: 5              # one HTTP request
        retry_initial_s: 0.5      # backoff while Alertmanager is down or answers 5xx ...
        retry_max_s: 30           # ... doubling up to this
        max_batch: 500            # alert records per POST
        group_id: rollguard-bridge-alertmanager
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

from rollguard.settings.checks import Locator, mapping, number, only, text

BRIDGES: Final = ("alertmanager",)


@dataclass(frozen=True, slots=True)
class AlertmanagerBridgeSettings:
    """``bridge.alertmanager``: see the module docstring for what each setting does.

    ``repost_interval_s`` must stay under the ``resolve_timeout`` of the Alertmanager it posts to
    (5m by default; the bridge cannot read it): Alertmanager resolves a firing alert that nobody
    posted again within that time."""

    worker_url: str = "http://127.0.0.1:6066"
    repost_interval_s: float = 60.0
    timeout_s: float = 5.0
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    max_batch: int = 500
    group_id: str = "rollguard-bridge-alertmanager"


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    alertmanager: AlertmanagerBridgeSettings = field(default_factory=AlertmanagerBridgeSettings)


def parse_bridge(raw: Any, loc: Locator) -> BridgeSettings:
    """The ``bridge`` section (``None`` or absent: the defaults)."""
    data = mapping(raw, "bridge", loc)
    only(data, BRIDGES, "bridge", loc)
    if "alertmanager" not in data:
        return BridgeSettings()
    return BridgeSettings(_alertmanager(data["alertmanager"], loc))


def _alertmanager(raw: Any, loc: Locator) -> AlertmanagerBridgeSettings:
    section = "bridge.alertmanager"
    data = mapping(raw, section, loc)
    defaults = AlertmanagerBridgeSettings()
    names = {f.name for f in fields(AlertmanagerBridgeSettings)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{section}.{key}"
        only([key], names, section, loc)  # key by key: a bad value before an unknown key is reported first
        default = getattr(defaults, key)
        if isinstance(default, str):
            values[key] = text(value, path, loc)
            if key == "worker_url":
                values[key] = _http_url(values[key], path, loc)
        else:
            setting = number(value, path, loc, integer=isinstance(default, int))
            if setting <= 0:
                raise loc.error(path, f"must be positive, got {value!r}")
            values[key] = int(setting) if isinstance(default, int) else setting
    settings = replace(defaults, **values)
    if settings.retry_max_s < settings.retry_initial_s:
        raise loc.error(
            f"{section}.retry_max_s",
            f"must be at least retry_initial_s ({settings.retry_initial_s:g}), got {settings.retry_max_s:g}",
        )
    return settings


def _http_url(value: str, path: str, loc: Locator) -> str:
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise loc.error(path, f"must be an http(s) URL like http://worker:6066, got {value!r}")
    return value.rstrip("/")
