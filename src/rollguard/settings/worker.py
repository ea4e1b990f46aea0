"""The ``worker`` section: how ``rollguard worker`` connects to Kafka and runs (:class:`WorkerSettings`).

The streaming worker (:mod:`rollguard.adapters.worker`) reads all of it; ``kafka`` is also how every
other command that talks to Kafka reaches the cluster (:mod:`rollguard.adapters.kafka_clients`). It is
checked with the rest of the file, so a bad value fails every command at start, not the worker at its
first use. Secrets are never written in the file: ``kafka.sasl_password_env`` names the environment
variable that holds the password, and every connection setting can be overridden from the environment
(``ROLLGUARD_BOOTSTRAP``, ``ROLLGUARD_KAFKA_SECURITY_PROTOCOL``, ``ROLLGUARD_KAFKA_SASL_MECHANISM``,
``ROLLGUARD_KAFKA_SASL_USERNAME``).

Example::

    worker:
      app_id: rollguard                     # consumer group; table and internal topic names
      web_port: 6066                        # /metrics, /status, /rollguard/health/
      web_bind: 127.0.0.1                   # the status pages are read-only but not public
      idle_after_s: 30                      # an idle rollout's clock moves on after this much wall time
      session_timeout_s: 10                 # a dead worker's partitions move to the others after this
      store: rocksdb                        # or memory (re-reads the changelog at every start)
      data_dir: /var/lib/rollguard
      kafka:
        bootstrap: kafka-1:9093,kafka-2:9093
        client_id: rollguard-worker
        security_protocol: SASL_SSL         # PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
        sasl_mechanism: SCRAM-SHA-512       # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
        sasl_username: rollguard
        sasl_password_env: ROLLGUARD_KAFKA_PASSWORD
        ssl_cafile: /etc/rollguard/ca.pem
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from rollguard.settings.checks import Locator, choice, fill, mapping, positive, text, whole

PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
STORES: Final = ("memory", "rocksdb")
ENV_OVERRIDES: Final = {
    "bootstrap": "ROLLGUARD_BOOTSTRAP",
    "security_protocol": "ROLLGUARD_KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "ROLLGUARD_KAFKA_SASL_MECHANISM",
    "sasl_username": "ROLLGUARD_KAFKA_SASL_USERNAME",
}


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How to reach the cluster: bootstrap servers, client id and security (TLS, SASL PLAIN/SCRAM)."""

    bootstrap: str | None = None
    client_id: str | None = None
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password_env: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def with_environment(self, environ: Mapping[str, str]) -> KafkaSettings:
        """These settings with the environment's overrides applied (the environment wins)."""
        found = {name: environ[var] for name, var in ENV_OVERRIDES.items() if environ.get(var)}
        return replace(self, **found) if found else self


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """The ``worker:`` section of the config file (all optional)."""

    app_id: str = "rollguard"
    instance: str = "rollguard"
    web_enabled: bool = True
    web_port: int = 6066
    web_bind: str = "127.0.0.1"
    replication: int = 1
    store: str = "memory"
    data_dir: str | None = None
    idle_after_s: float = 30.0
    tick_s: float = 1.0
    checkpoint_every_s: float = 5.0
    checkpoint_max_lag: int = 20_000
    rocksdb_block_cache_mb: int = 16
    session_timeout_s: float = 10.0
    kafka: KafkaSettings = field(default_factory=KafkaSettings)


def parse_worker(raw: Any, loc: Locator) -> WorkerSettings:
    """The ``worker`` section (``None`` or absent: the defaults)."""
    data = mapping(raw, "worker", loc)
    settings = fill(
        WorkerSettings(),
        data,
        "worker",
        loc,
        {
            "web_port": lambda v, p: _port(v, p, loc),
            "replication": lambda v, p: whole(v, p, loc, minimum=1),
            "store": lambda v, p: choice(v, p, loc, STORES),
            "tick_s": lambda v, p: positive(v, p, loc),
            "session_timeout_s": lambda v, p: positive(v, p, loc),
            "checkpoint_max_lag": lambda v, p: positive(v, p, loc, integer=True),
        },
        nested=("kafka",),
    )
    if "kafka" in data:
        settings = replace(settings, kafka=_kafka(data["kafka"], loc))
    return settings


def _kafka(raw: Any, loc: Locator) -> KafkaSettings:
    settings = fill(
        KafkaSettings(),
        mapping(raw, "worker.kafka", loc),
        "worker.kafka",
        loc,
        {
            "bootstrap": lambda v, p: _bootstrap(v, p, loc),
            "security_protocol": lambda v, p: choice(v, p, loc, PROTOCOLS),
            "sasl_mechanism": lambda v, p: choice(v, p, loc, MECHANISMS),
        },
    )
    if settings.security_protocol.startswith("SASL_") and not settings.sasl_username:
        raise loc.error(
            "worker.kafka.sasl_username", f"required with security_protocol {settings.security_protocol}"
        )
    return settings


def _bootstrap(value: Any, path: str, loc: Locator) -> str:
    servers = text(value, path, loc)
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            raise loc.error(path, f"must be HOST:PORT[,HOST:PORT...], got {server.strip()!r}")
    return servers


def _port(value: Any, path: str, loc: Locator) -> int:
    """A TCP port (0: any free one)."""
    port = whole(value, path, loc)
    if port > 65535:
        raise loc.error(path, f"must be at most 65535, got {value!r}")
    return port
