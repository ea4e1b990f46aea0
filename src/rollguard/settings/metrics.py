"""The ``metrics`` section: per-metric overrides of the built-in margins, and of any quality score's.

Example::

    metrics:
      latency_ms.p95: {margin: 0.2}
      quality.eval_score.mean: {margin: 0.02, relative: false}
      tokens_out.mean: {enabled: false}
"""

from __future__ import annotations

from typing import Any, Final

from rollguard.domain.metrics import BUILTIN_METRICS, MetricSpec
from rollguard.settings.checks import Locator, boolean, mapping, number, only

OVERRIDES: Final = ("margin", "relative", "enabled")


def parse_metrics(raw: Any, loc: Locator) -> tuple[tuple[MetricSpec, ...], dict[str, dict[str, Any]]]:
    """The built-in metrics with their overrides applied, and the overrides of quality scores by key
    (``quality.<key>.mean``; the keys are only known once events carry them)."""
    by_name = {m.name: m for m in BUILTIN_METRICS}
    quality: dict[str, dict[str, Any]] = {}
    for name, settings_raw in mapping(raw, "metrics", loc).items():
        path = f"metrics.{name}"
        settings = mapping(settings_raw, path, loc)
        only(settings, OVERRIDES, path, loc)
        checked: dict[str, Any] = {}
        if "margin" in settings:
            checked["margin"] = number(settings["margin"], f"{path}.margin", loc)
        for flag in ("relative", "enabled"):
            if flag in settings:
                checked[flag] = boolean(settings[flag], f"{path}.{flag}", loc)
        if name.startswith("quality.") and name.endswith(".mean") and len(name) > len("quality..mean"):
            quality[name[len("quality.") : -len(".mean")]] = checked
        elif name in by_name:
            by_name[name] = by_name[name].with_overrides(**checked)
        else:
            known = ", ".join([*by_name, "quality.<key>.mean"])
            raise loc.error(path, f"unknown metric (expected one of: {known})")
    return tuple(by_name.values()), quality
