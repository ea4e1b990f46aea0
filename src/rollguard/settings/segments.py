"""The ``segments`` section: which segment dimensions become cohorts (:class:`SegmentSettings`).

Example::

    segments:
      dimensions: [input_class, tenant]     # default: every dimension seen (up to max_dimensions)
      exclude: [request_region]
      groupings: [[input_class, tenant]]    # crosses, in addition to each dimension alone
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollguard.settings.checks import Locator, fill, mapping, name_list, sequence


@dataclass(frozen=True, slots=True)
class SegmentSettings:
    """Which segment dimensions become cohorts: each listed dimension alone, plus the groupings."""

    dimensions: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    groupings: tuple[tuple[str, ...], ...] = ()
    max_dimensions: int = 8


def parse_segments(raw: Any, loc: Locator) -> SegmentSettings:
    """The ``segments`` section (``None`` or absent: the defaults)."""
    return fill(
        SegmentSettings(),
        mapping(raw, "segments", loc),
        "segments",
        loc,
        {
            "dimensions": lambda v, p: None if v is None else name_list(v, p, loc),
            "exclude": lambda v, p: name_list(v, p, loc),
            "groupings": lambda v, p: _groupings(v, p, loc),
        },
    )


def _groupings(value: Any, path: str, loc: Locator) -> tuple[tuple[str, ...], ...]:
    """Crosses of two or more distinct dimensions, each sorted (``null``: none)."""
    out: list[tuple[str, ...]] = []
    for i, item in enumerate(sequence([] if value is None else value, path, loc, of="groupings")):
        grouping = name_list(item, f"{path}[{i}]", loc)
        if len(grouping) < 2 or len(set(grouping)) != len(grouping):
            raise loc.error(f"{path}[{i}]", "a grouping crosses two or more distinct dimensions")
        out.append(tuple(sorted(grouping)))
    return tuple(out)
