"""Kafka connection security (TLS, SASL PLAIN/SCRAM) once, for every client rollguard makes.

The worker (faust-streaming on aiokafka), its read-back consumer (aiokafka) and the admin calls
(kafka-python) each spell the same settings differently; this translates one description into each.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from rollguard.settings.worker import KafkaSettings

PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    username: str | None = None
    password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def faust_credentials(self) -> Any:
        """``broker_credentials`` for a Faust app (None: plaintext)."""
        import faust

        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.username,
                password=self.password,
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context(),
            )
        if self.uses_tls:
            return faust.SSLCredentials(self.ssl_context())
        return None

    def aiokafka_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            kwargs["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        return kwargs

    def kafka_python_kwargs(self) -> dict[str, Any]:
        """kafka-python names these settings as aiokafka does (aiokafka began as its asyncio port)."""
        return self.aiokafka_kwargs()


def security_of(kafka: KafkaSettings, environ: Mapping[str, str]) -> KafkaSecurity | str:
    """The client security the ``worker.kafka`` settings describe, or why it cannot be built (a missing
    password, a user name the environment made necessary, a TLS file that cannot be read or loaded).
    Every command that talks to Kafka builds its security here (:mod:`rollguard.adapters.kafka_clients`),
    so they all follow one rule."""
    password = None
    if kafka.security_protocol.startswith("SASL_"):
        if not kafka.sasl_username:
            return f"worker.kafka.sasl_username: required with security_protocol {kafka.security_protocol}"
        name = kafka.sasl_password_env or "ROLLGUARD_KAFKA_SASL_PASSWORD"
        password = environ.get(name)
        if not password:
            return (
                f"worker.kafka: {kafka.security_protocol} needs a password in the environment variable {name}"
            )
    security = KafkaSecurity(
        kafka.security_protocol,
        kafka.sasl_mechanism,
        kafka.sasl_username,
        password,
        kafka.ssl_cafile,
        kafka.ssl_certfile,
        kafka.ssl_keyfile,
    )
    return _tls_problem(security) or security


def _tls_problem(security: KafkaSecurity) -> str | None:
    """Why the TLS files cannot give a context, checked before any client exists: otherwise each client
    fails on its own with a bare "No such file or directory" that names neither the file nor the field."""
    if not security.uses_tls:
        return None
    if security.ssl_keyfile and not security.ssl_certfile:
        return "worker.kafka.ssl_keyfile: needs ssl_certfile (the client certificate it belongs to)"
    files = {"ssl_cafile": security.ssl_cafile, "ssl_certfile": security.ssl_certfile,
             "ssl_keyfile": security.ssl_keyfile}  # fmt: skip
    for field, path in files.items():
        if path is None:
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            return f"worker.kafka.{field}: cannot read {path}: {exc.strerror or exc}"
    try:
        security.ssl_context()
    except (ssl.SSLError, ValueError) as exc:
        return f"worker.kafka: the TLS files do not load ({', '.join(p for p in files.values() if p)}): {exc}"
    return None
