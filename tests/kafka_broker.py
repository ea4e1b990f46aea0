"""A real Kafka broker for the test session, via ``scripts/kafka.sh`` (one code path for people and tests).

Also collects timings (broker start, Faust group join, ...) that the conftest prints in the
terminal summary, so every run reports what start-up costs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SH = ROOT / "scripts" / "kafka.sh"
BOOTSTRAP_ENV = "ROLLGUARD_TEST_BOOTSTRAP"

#: name -> seconds, printed at the end of the session (see conftest.pytest_terminal_summary).
TIMINGS: dict[str, float] = {}


def record_timing(name: str, seconds: float) -> None:
    TIMINGS[name] = seconds


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    data_dir: Path
    start_s: float
    sasl_bootstrap: str | None = None
    ssl_bootstrap: str | None = None
    sasl_ssl_bootstrap: str | None = None
    mtls_bootstrap: str | None = None

    @property
    def tls_dir(self) -> Path:
        """The throwaway CA and certificates ``scripts/kafka.sh`` made for this start (with ``tls``)."""
        return self.data_dir / "tls"

    @property
    def ca_file(self) -> Path:
        """What a client trusts to reach the TLS listeners."""
        return self.tls_dir / "ca.pem"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KAFKA_SH), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


#: Broker field prefix -> the scripts/kafka.sh option that adds that listener.
_PORT_FLAGS = {
    "sasl": "--sasl-port",
    "ssl": "--ssl-port",
    "mtls": "--mtls-port",
    "sasl_ssl": "--sasl-ssl-port",
}


def fetch(timeout: float = 600.0) -> None:
    """Resolve the Kafka jars if needed (a no-op taking milliseconds when they are there)."""
    proc = _run("fetch", timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/kafka.sh fetch failed:\n{proc.stderr}")


def start(
    data_dir: Path,
    *,
    attempts: int = 3,
    timeout: float = 120.0,
    port: int | None = None,
    sasl_user: str | None = None,
    tls: bool = False,
) -> Broker:
    """Start a broker on a free port (or ``port``: a restart on the same address); retries on another
    port if one was taken meanwhile. ``sasl_user`` ("name:password") adds a SASL_PLAINTEXT listener
    (PLAIN, SCRAM-SHA-256/512), whose address is :attr:`Broker.sasl_bootstrap`. ``tls`` adds an SSL
    listener, one that requires a client certificate (``mtls_bootstrap``) and, with ``sasl_user``, a
    SASL_SSL one, all with certificates of a CA made for this start (:attr:`Broker.ca_file`)."""
    fetch()
    last = ""
    for _ in range(attempts):
        this_port = port or free_port()
        args = ["start", "--port", str(this_port), "--data-dir", str(data_dir)]
        wanted = (["sasl"] if sasl_user else []) + (["ssl", "mtls"] if tls else [])
        wanted += ["sasl_ssl"] if tls and sasl_user else []
        ports = {name: free_port() for name in wanted}
        for name, listener_port in ports.items():
            args += [_PORT_FLAGS[name], str(listener_port)]
        if sasl_user is not None:
            args += ["--sasl-user", sasl_user]
        listeners = {name: f"127.0.0.1:{listener_port}" for name, listener_port in ports.items()}
        t0 = time.monotonic()
        proc = _run(*args, timeout=timeout)
        if proc.returncode == 0:
            elapsed = time.monotonic() - t0
            line = os.environ.get("ROLLGUARD_KAFKA_LINE", "3")
            record_timing(f"kafka broker start, Kafka {line}.x line (format + JVM + ready)", elapsed)
            return Broker(
                f"127.0.0.1:{this_port}",
                data_dir,
                elapsed,
                sasl_bootstrap=listeners.get("sasl"),
                ssl_bootstrap=listeners.get("ssl"),
                sasl_ssl_bootstrap=listeners.get("sasl_ssl"),
                mtls_bootstrap=listeners.get("mtls"),
            )
        last = proc.stderr
        _run("stop", "--data-dir", str(data_dir), timeout=60)
    raise RuntimeError(f"could not start Kafka in {data_dir}:\n{last}")


def stop(broker: Broker) -> None:
    t0 = time.monotonic()
    proc = _run("stop", "--data-dir", str(broker.data_dir), timeout=90)
    record_timing("kafka broker stop", time.monotonic() - t0)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/kafka.sh stop failed:\n{proc.stderr}")


def external_bootstrap() -> str | None:
    """A user's own cluster, when ``ROLLGUARD_TEST_BOOTSTRAP`` is set."""
    value = os.environ.get(BOOTSTRAP_ENV, "").strip()
    return value or None
