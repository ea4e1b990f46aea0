"""The ``worker`` section: how ``rollguard worker`` runs its Faust app (:class:`WorkerSettings`).

Only the streaming worker (:mod:`rollguard.adapters.worker`) reads it, but it is checked with the rest
of the file, so a bad value fails every command at start, not the worker at its first use.

Example::

    worker:
      web_port: 6066                        # the health page, /rollguard/health/
      web_bind: 127.0.0.1
      processing_guarantee: exactly_once    # Kafka transactions; default at_least_once
      replication: 3                        # of the topics the worker creates (re-key, changelogs)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from rollguard.settings.checks import Locator, choice, fill, mapping, whole

PROCESSING_GUARANTEES: Final = ("at_least_once", "exactly_once")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """The ``worker:`` section of the config file (all optional).

    A group of related settings (e.g. the Kafka client's security: protocol, SASL, TLS files) belongs
    in its own dataclass held by a field here, parsed by its own check in :func:`parse_worker`."""

    web_enabled: bool = True
    web_port: int = 6066
    web_bind: str = "0.0.0.0"
    processing_guarantee: str = "at_least_once"
    replication: int = 1


def parse_worker(raw: Any, loc: Locator) -> WorkerSettings:
    """The ``worker`` section (``None`` or absent: the defaults)."""
    return fill(
        WorkerSettings(),
        mapping(raw, "worker", loc),
        "worker",
        loc,
        {
            "web_port": lambda v, p: _port(v, p, loc),
            "processing_guarantee": lambda v, p: choice(v, p, loc, PROCESSING_GUARANTEES),
            "replication": lambda v, p: whole(v, p, loc, minimum=1),
        },
    )


def _port(value: Any, path: str, loc: Locator) -> int:
    """A TCP port (0: any free one)."""
    port = whole(value, path, loc)
    if port > 65535:
        raise loc.error(path, f"must be at most 65535, got {value!r}")
    return port
