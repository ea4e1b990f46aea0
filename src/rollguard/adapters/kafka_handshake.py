"""Whether a cluster refuses a client's security, learnt from one connection before the client is built.

kafka-python 3.0 retries a refused password or a failed TLS handshake like a broker that is not up yet,
until its ``bootstrap_timeout_ms`` (30 s), and then says only "Unable to bootstrap"; its reader also
drops a SASL error answer that arrives together with the broker's close, so often the refusal
is "socket disconnected" and cannot be told from a broker going away. An operator who mistyped a
password would wait half a minute to learn nothing. So before a secured client is built, one
connection with the same security (aiokafka's, which reads the broker's answer before its close) asks
each bootstrap broker: a definite refusal (the credentials, the SASL mechanism, the broker's
certificate, the client's certificate) ends the command at once; a broker that cannot be reached or
answers slowly (starting, restarting, far away) is left to the client, which waits for it as before.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Literal

from rollguard.adapters.kafka_security import KafkaSecurity

# kafka-python's loggers have a NullHandler, aiokafka's none: without one, a command that configures no
# logging would print aiokafka's warnings (PLAIN "in the clear") through logging's last resort, lines
# kafka-python's own clients keep quiet; a command that configures logging still sees them.
logging.getLogger("aiokafka").addHandler(logging.NullHandler())

#: How long one look waits for a broker's answer before leaving the broker to the client's own wait.
LOOK_TIMEOUT_S = 5.0

# Not an answer about our security: the peer closed or reset the connection during the handshake, as a
# broker that stops or restarts may.
_NO_ANSWER = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


#: A broker took the security (connected, and authenticated where SASL is on).
ACCEPTED: Final = "accepted"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A broker's definite "no" to this client's security: where, what it said, and what to check."""

    address: str
    what: str  # "refused the credentials", "is not trusted", ...
    said: str
    check: str

    def line(self, security: KafkaSecurity) -> str:
        who = f" as {security.username} ({security.sasl_mechanism})" if security.uses_sasl else ""
        return f"{self.address} {self.what} over {security.protocol}{who}: {self.said}; check {self.check}"


Answer = Refusal | Literal["accepted"] | None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def refusal_of(exc: BaseException, address: str, security: KafkaSecurity) -> Refusal | None:
    """The refusal ``exc`` (raised connecting to ``address``) stands for, or None: not an answer about
    the security (unreachable, timed out, closed) — a broker that may yet come up."""
    from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError

    for cause in _causes(exc):
        if isinstance(cause, SaslAuthenticationFailed):
            return Refusal(
                address, "refused the credentials", _said(cause),
                "worker.kafka.sasl_username, sasl_mechanism and the password in the environment",
            )  # fmt: skip
        if isinstance(cause, UnsupportedSaslMechanismError):
            return Refusal(
                address, f"does not take {security.sasl_mechanism}", _said(cause),
                "worker.kafka.sasl_mechanism (and security_protocol: is that the listener's?)",
            )  # fmt: skip
        if isinstance(cause, ssl.SSLCertVerificationError):
            return Refusal(
                address, "is not trusted", _said(cause),
                "worker.kafka.ssl_cafile (the CA that signed the broker's certificate)",
            )  # fmt: skip
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, _NO_ANSWER):
            if "ALERT" in (cause.reason or ""):  # the broker ended the handshake: our certificate
                check = "worker.kafka.ssl_certfile and ssl_keyfile" + (
                    " (a certificate the listener's CA signed)"
                    if security.ssl_certfile
                    else ": the listener requires a client certificate"
                )
                return Refusal(address, "refused the TLS handshake", _said(cause), check)
            return Refusal(
                address, "failed the TLS handshake", _said(cause),
                "worker.kafka.security_protocol (is the listener TLS?) and the TLS files",
            )  # fmt: skip
    return None


def _said(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):  # "[SSL: REASON] text (_ssl.c:1006)": the file and line say nothing
        return str(exc.args[1] if len(exc.args) > 1 else exc).split(" (_ssl.c:")[0]
    text = str(exc)
    if "[Error " in text:  # aiokafka: "[Error 58] SaslAuthenticationFailed: Authentication failed: …"
        text = text.split(": ", 1)[-1]
    return text


def addresses(bootstrap: str) -> list[tuple[str, int]]:
    """``host:port`` pairs of a bootstrap list, in order (IPv6 in brackets), as the clients read it."""
    from aiokafka.conn import collect_hosts

    return [(host, port) for host, port, _family in collect_hosts(bootstrap, randomize=False)]


async def _look(host: str, port: int, security: KafkaSecurity, timeout_s: float) -> BaseException | None:
    from aiokafka.conn import create_conn

    connecting = create_conn(
        host, port, client_id="rollguard-handshake", request_timeout_ms=int(timeout_s * 1000),
        **security.aiokafka_kwargs(),
    )  # fmt: skip
    try:
        conn: Any = await asyncio.wait_for(connecting, timeout_s)
    except Exception as exc:  # every failure: refusal_of sorts them
        return exc
    conn.close()
    return None


async def _first_answer(bootstrap: str, security: KafkaSecurity, timeout_s: float) -> Answer:
    for host, port in addresses(bootstrap):
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        failure = await _look(host, port, security, timeout_s)
        if failure is None:
            return ACCEPTED
        refusal = refusal_of(failure, address, security)
        if refusal is not None:
            return refusal
    return None  # none answered: the client waits for them as it always did


def answer(bootstrap: str, security: KafkaSecurity, timeout_s: float = LOOK_TIMEOUT_S) -> Answer:
    """The first definite answer of a broker of ``bootstrap`` to ``security`` (asked in order until one
    accepts or refuses): a :class:`Refusal`, :data:`ACCEPTED`, or None when none answered within
    ``timeout_s`` each (refused connections, no reply). The look runs its event loop in a thread of its
    own: ``asyncio.run`` in the caller's thread would leave it with no current loop (Faust, started next
    by ``rollguard worker``, asks for it) and cannot run inside a loop."""
    with ThreadPoolExecutor(1, thread_name_prefix="rollguard-handshake") as pool:
        return pool.submit(asyncio.run, _first_answer(bootstrap, security, timeout_s)).result()
