"""Every Kafka client a rollguard command makes, built one way: the cluster's address and security come
from the config's ``worker.kafka`` section, whichever command reads it.

The worker, ``bridge alertmanager``, ``controller flagd``, ``operator``, ``preflight``, ``topics apply``
and ``simulate`` all take ``--config FILE`` and reach the same cluster with the same settings (the same
environment overrides, the same rule for the password: never in the file, always in the environment
variable ``sasl_password_env`` names). A team with a SASL_SSL cluster configures it once; a command
cannot quietly fall back to plaintext because it builds its clients elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rollguard.adapters.kafka_security import KafkaSecurity, security_of

if TYPE_CHECKING:
    from rollguard.settings.config import Config

PLAINTEXT = KafkaSecurity()
CONFIG_HELP = "rollguard config file (YAML): the cluster's address and security are its worker.kafka section"
BOOTSTRAP_DEFAULT = "default: worker.kafka.bootstrap of --config, or ROLLGUARD_BOOTSTRAP"


class KafkaSetupError(ValueError):
    """The config cannot give a usable Kafka connection (a missing password, no bootstrap): one line."""


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """Where the cluster is (``None``: neither ``--bootstrap`` nor the config say) and how to reach it."""

    bootstrap: str | None
    security: KafkaSecurity = field(default=PLAINTEXT)

    def required_bootstrap(self) -> str:
        if not self.bootstrap:
            raise KafkaSetupError(
                "no Kafka: pass --bootstrap, or set worker.kafka.bootstrap (or ROLLGUARD_BOOTSTRAP)"
            )
        return self.bootstrap


def connection_from(
    config: Config,
    bootstrap: str | None,
    *,
    source: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> KafkaConnection:
    """The connection of ``config``'s ``worker.kafka`` (environment overrides applied, as the worker
    does); a ``bootstrap`` given on the command line wins over the section's. ``source`` (the config
    file) prefixes the error, so the one line says where to look."""
    env = os.environ if environ is None else environ
    kafka = config.worker.kafka.with_environment(env)
    security = security_of(kafka, env)
    if isinstance(security, str):
        raise KafkaSetupError(f"{source}: {security}" if source else security)
    return KafkaConnection(bootstrap or kafka.bootstrap, security)


def load_connection(config_path: str | None, bootstrap: str | None) -> KafkaConnection:
    """:func:`connection_from` for a config file path (``None``: the defaults and the environment).

    Raises :class:`~rollguard.settings.config.ConfigError` for a bad file and :class:`KafkaSetupError`
    for a section that cannot give a connection."""
    from rollguard.settings.config import load_config

    return connection_from(load_config(config_path), bootstrap, source=config_path)


class KafkaUnreachable(RuntimeError):
    """A client could not bootstrap over a secured listener: kafka-python reports a refused password or
    a TLS mismatch as a bootstrap timeout, so the message says which security was tried."""


def _reaching(bootstrap: str, security: KafkaSecurity, build: Callable[[], Any]) -> Any:
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError, SaslAuthenticationFailedError

    try:
        return build()
    except (KafkaTimeoutError, KafkaConnectionError, SaslAuthenticationFailedError) as exc:
        if security.protocol == "PLAINTEXT":
            raise
        who = f" as {security.username}" if security.uses_sasl else ""
        raise KafkaUnreachable(
            f"{exc} (over {security.protocol}{who}: is that the listener's protocol, and are the "
            "worker.kafka credentials and TLS files right?)"
        ) from exc


def consumer(bootstrap: str, security: KafkaSecurity, *topics: str, **settings: Any) -> Any:
    """A kafka-python ``KafkaConsumer`` over ``security``."""
    from kafka.consumer.group import KafkaConsumer

    kwargs = security.kafka_python_kwargs()
    return _reaching(
        bootstrap, security, lambda: KafkaConsumer(*topics, bootstrap_servers=bootstrap, **kwargs, **settings)
    )


def producer(bootstrap: str, security: KafkaSecurity, **settings: Any) -> Any:
    """A kafka-python ``KafkaProducer`` over ``security``."""
    from kafka.producer.kafka import KafkaProducer

    kwargs = security.kafka_python_kwargs()
    return _reaching(
        bootstrap, security, lambda: KafkaProducer(bootstrap_servers=bootstrap, **kwargs, **settings)
    )


def admin(bootstrap: str, security: KafkaSecurity, **settings: Any) -> Any:
    """A kafka-python ``KafkaAdminClient`` over ``security``."""
    from kafka.admin import KafkaAdminClient

    kwargs = security.kafka_python_kwargs()
    return _reaching(
        bootstrap, security, lambda: KafkaAdminClient(bootstrap_servers=bootstrap, **kwargs, **settings)
    )
