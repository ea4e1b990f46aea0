"""Every Kafka client a rollguard command makes, built one way: the cluster's address and security come
from the config's ``worker.kafka`` section, whichever command reads it.

The worker, ``bridge alertmanager``, ``controller flagd``, ``operator``, ``preflight``, ``topics apply``
and ``simulate`` all take ``--config FILE`` and reach the same cluster with the same settings (the same
environment overrides, the same rule for the password: never in the file, always in the environment
variable ``sasl_password_env`` names). A team with a SASL_SSL cluster configures it once; a command
cannot quietly fall back to plaintext because it builds its clients elsewhere.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rollguard.adapters import kafka_handshake
from rollguard.adapters.kafka_security import KafkaSecurity, security_of

if TYPE_CHECKING:
    from rollguard.settings.config import Config

log = logging.getLogger("rollguard.kafka")
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


def connection_at_start(
    config: Config, bootstrap: str | None, source: str | None
) -> tuple[str, KafkaSecurity] | None:
    """A service's bootstrap and security at start-up (:func:`connection_from`, a bootstrap required),
    or None once the reason there is none is printed in one line on stderr: the service exits 2."""
    try:
        connection = connection_from(config, bootstrap, source=source)
        return connection.required_bootstrap(), connection.security
    except KafkaSetupError as exc:
        print(f"rollguard: {exc}", file=sys.stderr)
        return None


def load_connection(config_path: str | None, bootstrap: str | None) -> KafkaConnection:
    """:func:`connection_from` for a config file path (``None``: the defaults and the environment).

    Raises :class:`~rollguard.settings.config.ConfigError` for a bad file and :class:`KafkaSetupError`
    for a section that cannot give a connection."""
    from rollguard.settings.config import load_config

    return connection_from(load_config(config_path), bootstrap, source=config_path)


class KafkaUnreachable(RuntimeError):
    """A client could not bootstrap over a secured listener: kafka-python reports a refused password or
    a TLS mismatch as a bootstrap timeout, so the message says which security was tried."""


class KafkaRefused(KafkaUnreachable):
    """A broker refused this client's security (the credentials, the SASL mechanism, a certificate):
    said at once, with what the broker said and which ``worker.kafka`` fields to check."""


# (bootstrap, security) a broker accepted in this process: the clients built after the first one (the
# bridge makes a reader per rebalance) need not ask again.
_accepted: set[tuple[str, KafkaSecurity]] = set()


def check_accepted(bootstrap: str, security: KafkaSecurity) -> None:
    """Raise :class:`KafkaRefused` if a broker of ``bootstrap`` refuses ``security`` (one connection, a
    fraction of a second; see :mod:`rollguard.adapters.kafka_handshake`); return when one accepts it or
    none answers yet: a broker that is starting is waited for by the client, as before."""
    if (bootstrap, security) in _accepted or security.protocol == "PLAINTEXT":
        return
    answer = kafka_handshake.answer(bootstrap, security)
    if isinstance(answer, kafka_handshake.Refusal):
        raise KafkaRefused(answer.line(security))
    if answer == kafka_handshake.ACCEPTED:
        _accepted.add((bootstrap, security))


def _reaching(bootstrap: str, security: KafkaSecurity, build: Callable[[], Any]) -> Any:
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError, SaslAuthenticationFailedError

    check_accepted(bootstrap, security)
    try:
        return build()
    except (KafkaTimeoutError, KafkaConnectionError, SaslAuthenticationFailedError) as exc:
        if security.protocol == "PLAINTEXT":
            raise
        _accepted.discard((bootstrap, security))
        check_accepted(bootstrap, security)  # a broker that came up meanwhile may say why it failed
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


# A member that joined its group before it knew a subscribed topic's partitions is assigned nothing
# until its next metadata refresh: kafka-python's default is every 5 minutes.
METADATA_MAX_AGE_MS = 30_000


def wait_for_topics(client: Any, topics: Sequence[str], stop: threading.Event | None = None) -> bool:
    """Wait until ``client`` (a KafkaConsumer) knows every topic's partitions, so that a group it joins
    next is assigned them: kafka-python joins with whatever metadata it holds, and a topic it has not
    fetched yet ("No partition metadata for topic") leaves the member idle until its next refresh.
    A topic that does not exist yet (a service started before ``rollguard topics apply``) is waited
    for, said in the log every 30 s; False when ``stop`` was set meanwhile."""
    said = -math.inf
    while True:
        missing = [t for t in topics if not client.partitions_for_topic(t)]
        if not missing:
            return True
        if time.monotonic() - said >= 30.0:
            said = time.monotonic()
            log.warning("waiting for the topic(s) %s to exist on the cluster", ", ".join(missing))
        if stop is not None and stop.wait(0.5):
            return False
        if stop is None:
            time.sleep(0.5)


def group_consumer(
    bootstrap: str,
    security: KafkaSecurity,
    topics: Sequence[str],
    *,
    listener: Any = None,
    stop: threading.Event | None = None,
    **settings: Any,
) -> Any:
    """A consumer in a group (``group_id`` in ``settings``) subscribed to ``topics`` only once it knows
    their partitions (see :func:`wait_for_topics`; unsubscribed if ``stop`` came first), with metadata
    refreshed every 30 s so that a member assigned nothing on a changing cluster does not stay so for
    minutes."""
    settings.setdefault("metadata_max_age_ms", METADATA_MAX_AGE_MS)
    reader = consumer(bootstrap, security, **settings)
    try:
        if wait_for_topics(reader, topics, stop):
            if listener is None:
                reader.subscribe(list(topics))
            else:
                reader.subscribe(list(topics), listener=listener)
    except BaseException:
        reader.close()
        raise
    return reader


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
