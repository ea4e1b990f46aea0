"""A broker with secured listeners for the tests that prove rollguard reaches a secured cluster, and the
pieces every such test needs: the credentials, a description of each listener (the ``worker.kafka``
section rollguard reads, and kafka-python settings of the test's own clients), a config file, and the
real CLIs run against topics of the test's own.

One broker serves them all (one JVM less on a small machine): SASL_PLAINTEXT, SSL, SSL that requires
a client certificate, and SASL_SSL, with PLAIN and SCRAM-SHA-256/512 on the SASL ones and certificates
of a CA made for this session only (``scripts/kafka.sh``, ``scripts/kafka_tls.py``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

import kafka_broker
from rollguard.adapters.topic_contracts import default_topics_dir

USER, PASSWORD = "rollguard", "s3cret-for-tests"
PASSWORD_ENV = "RG_TEST_KAFKA_PASSWORD"
SIGNING_KEY = "secured-test-signing-key"
SIGNING_KEY_ENV = "RG_TEST_SIGNING_KEY"


@pytest.fixture(scope="session")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kafka_broker.Broker]:
    """A broker of its own with every secured listener (``sasl_bootstrap``, ``ssl_bootstrap``,
    ``mtls_bootstrap``, ``sasl_ssl_bootstrap``) and the CA its clients trust (``ca_file``)."""
    broker = kafka_broker.start(
        tmp_path_factory.mktemp("secured-kafka"), sasl_user=f"{USER}:{PASSWORD}", tls=True
    )
    try:
        yield broker
    finally:
        kafka_broker.stop(broker)


@pytest.fixture(scope="session")
def sasl_broker(secured_broker: kafka_broker.Broker) -> kafka_broker.Broker:
    """The same broker, for tests of its SASL_PLAINTEXT listener at ``sasl_bootstrap``."""
    return secured_broker


@dataclass(frozen=True)
class Listener:
    """One listener of the secured broker, as a client must be set up to reach it."""

    bootstrap: str
    protocol: str
    mechanism: str | None = None  # SASL only
    ca_file: Path | None = None  # TLS only: the CA the client trusts
    client_cert: tuple[Path, Path] | None = None  # mutual TLS: certificate and key

    def kafka_section(self) -> dict[str, Any]:
        """``worker.kafka`` for this listener, the password left to ``$RG_TEST_KAFKA_PASSWORD``."""
        section: dict[str, Any] = {"bootstrap": self.bootstrap, "security_protocol": self.protocol}
        if self.mechanism:
            section.update(sasl_mechanism=self.mechanism, sasl_username=USER, sasl_password_env=PASSWORD_ENV)
        if self.ca_file:
            section["ssl_cafile"] = str(self.ca_file)
        if self.client_cert:
            section.update(ssl_certfile=str(self.client_cert[0]), ssl_keyfile=str(self.client_cert[1]))
        return section

    def client_kwargs(self, password: str = PASSWORD) -> dict[str, Any]:
        """kafka-python settings of the test's own clients, spelled as kafka-python documents them
        (not through rollguard's own translation, which is what the tests check)."""
        kwargs: dict[str, Any] = {"bootstrap_servers": self.bootstrap, "security_protocol": self.protocol}
        if self.mechanism:
            kwargs.update(
                sasl_mechanism=self.mechanism, sasl_plain_username=USER, sasl_plain_password=password
            )
        if self.ca_file:
            kwargs["ssl_cafile"] = str(self.ca_file)
        if self.client_cert:
            kwargs.update(ssl_certfile=str(self.client_cert[0]), ssl_keyfile=str(self.client_cert[1]))
        return kwargs


def _address(value: str | None, what: str) -> str:
    if value is None:
        raise AssertionError(f"the broker has no {what} listener")
    return value


def sasl_plaintext(broker: kafka_broker.Broker, mechanism: str = "PLAIN") -> Listener:
    return Listener(_address(broker.sasl_bootstrap, "SASL_PLAINTEXT"), "SASL_PLAINTEXT", mechanism)


def sasl_ssl(broker: kafka_broker.Broker, mechanism: str = "SCRAM-SHA-512") -> Listener:
    return Listener(_address(broker.sasl_ssl_bootstrap, "SASL_SSL"), "SASL_SSL", mechanism, broker.ca_file)


def tls(broker: kafka_broker.Broker, ca_file: Path | None = None) -> Listener:
    """The SSL listener (the server proves itself; the client does not), trusting ``ca_file`` (default:
    the broker's own CA)."""
    return Listener(_address(broker.ssl_bootstrap, "SSL"), "SSL", None, ca_file or broker.ca_file)


def mutual_tls(broker: kafka_broker.Broker, client_cert: tuple[Path, Path] | None = None) -> Listener:
    """The SSL listener that requires a client certificate (default: one the broker's CA signed)."""
    cert = client_cert or (broker.tls_dir / "client.crt", broker.tls_dir / "client.key")
    return Listener(_address(broker.mtls_bootstrap, "mutual TLS"), "SSL", None, broker.ca_file, cert)


def another_ca(directory: Path) -> Path:
    """A throwaway CA (and a client certificate it signed) that the broker has never heard of."""
    subprocess.run(
        [sys.executable, str(kafka_broker.ROOT / "scripts" / "kafka_tls.py"), "--out", str(directory),
         "--label", "unrelated"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return directory


@contextmanager
def late_listener(target: str, delay_s: float) -> Iterator[str]:
    """An address whose listener is not up for ``delay_s`` (connections refused, as by a broker still
    starting) and then relays every connection to ``target``, byte for byte (TLS and SASL pass through
    to the real broker)."""
    port = kafka_broker.free_port()
    host, target_port = target.rsplit(":", 1)
    stop = threading.Event()
    open_sockets: list[socket.socket] = []

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the other side closed

    def serve() -> None:
        if stop.wait(delay_s):
            return
        with socket.create_server(("127.0.0.1", port)) as server:
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection((host, int(target_port)))
                open_sockets.extend((client, upstream))
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=pipe, args=(source, sink), daemon=True).start()

    server_thread = threading.Thread(target=serve, daemon=True)
    server_thread.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop.set()
        server_thread.join(timeout=5)
        for sock in open_sockets:
            sock.close()


def write_config(path: Path, listener: Listener, **sections: Any) -> Path:
    """A rollguard config whose ``worker.kafka`` is ``listener`` (``worker`` in ``sections`` is merged
    over it)."""
    worker = {**sections.pop("worker", {}), "kafka": listener.kafka_section()}
    path.write_text(yaml.safe_dump({"worker": worker, **sections}))
    return path


def cli_env(password: str = PASSWORD) -> dict[str, str]:
    """The environment of a rollguard command: the password where the config says, the signing key."""
    env = {**os.environ, PASSWORD_ENV: password, SIGNING_KEY_ENV: SIGNING_KEY}
    env.pop("ROLLGUARD_BOOTSTRAP", None)  # the config's bootstrap or --bootstrap, nothing else
    return env


def read_records(
    listener: Listener,
    topic: str,
    timeout_s: float = 20.0,
    until: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """The records of ``topic``, read over ``listener`` from its beginning to its end as it was when the
    read began (or, with ``until``, until a record satisfies it)."""
    consumer = KafkaConsumer(**listener.client_kwargs(), enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                found.extend(orjson.loads(r.value) for r in records)
            if until is not None and any(until(r) for r in found):
                break
            if until is None and all(consumer.position(tp) >= ends[tp] for tp in tps):
                break
        return found
    finally:
        consumer.close()


@dataclass(frozen=True)
class Secured:
    """A listener, a config describing it, and topic contracts of a test module's own."""

    listener: Listener
    config: Path
    contracts: Path
    names: dict[str, str]  # role -> topic name
    applied: subprocess.CompletedProcess[str]  # what `rollguard topics apply` said creating them

    def run(
        self, *argv: str, password: str = PASSWORD, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rollguard.cli", *argv],
            capture_output=True, text=True, env=cli_env(password), timeout=timeout, check=False,
        )  # fmt: skip

    def read(
        self, role: str, timeout_s: float = 20.0, until: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        return read_records(self.listener, self.names[role], timeout_s, until)

    def assert_topics_created(self) -> None:
        """``rollguard topics apply`` (run at setup) created every contract's topic on this listener."""
        assert self.applied.returncode == 0, self.applied.stderr
        assert f"against {self.listener.bootstrap}" in self.applied.stdout
        assert f"{len(self.names)} created" in self.applied.stdout
        admin = KafkaAdminClient(**self.listener.client_kwargs())
        try:
            assert set(self.names.values()) <= set(admin.list_topics())
        finally:
            admin.close()

    def through(self, listener: Listener, config: Path) -> Secured:
        """The same topics and config reached over another ``listener`` of the broker (its config
        written to ``config``)."""
        doc = yaml.safe_load(self.config.read_text())
        doc["worker"]["kafka"] = listener.kafka_section()
        config.write_text(yaml.safe_dump(doc))
        return replace(self, listener=listener, config=config)

    def publish(self, role: str, key: str, record: dict[str, Any]) -> None:
        producer = KafkaProducer(**self.listener.client_kwargs(), acks="all")
        try:
            producer.send(self.names[role], key=key.encode(), value=orjson.dumps(record)).get(timeout=30)
        finally:
            producer.close()


def secured_topics(listener: Listener, work: Path, prefix: str, **sections: Any) -> Secured:
    """Contracts for every role under names of their own (``prefix.ROLE.TAG``), created by
    ``rollguard topics apply`` with no ``--bootstrap``: the config's ``worker.kafka`` is ``listener``.
    Its outcome is :attr:`Secured.applied`, for the test that checks it."""
    src, contracts = default_topics_dir(), work / "topics"
    (contracts / "schemas").mkdir(parents=True)
    for schema in (src / "schemas").iterdir():
        (contracts / "schemas" / schema.name).write_bytes(schema.read_bytes())
    tag = uuid.uuid4().hex[:8]
    names: dict[str, str] = {}
    for path in sorted(src.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        doc.update(name=f"{prefix}.{doc['role']}.{tag}", retention="1h", partitions=2)
        (contracts / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc))
        names[doc["role"]] = doc["name"]
    config = write_config(
        work / "rollguard.yaml", listener, commands={"signing_key_env": SIGNING_KEY_ENV}, **sections
    )
    unapplied = Secured(listener, config, contracts, names, subprocess.CompletedProcess([], 0))
    applied = unapplied.run("topics", "apply", "--config", str(config), "--dir", str(contracts))
    return Secured(listener, config, contracts, names, applied)
