"""Throwaway TLS material for a test broker: a CA, a server certificate it signs, and a client one.

Used by ``scripts/kafka.sh start --ssl-port/--sasl-ssl-port/--mtls-port`` (fresh on every start, so
nothing secret is ever committed) and by tests that need a second, unrelated CA. Writes into ``--out``:

    ca.pem          the CA certificate: what clients trust (``worker.kafka.ssl_cafile``)
    server.key/.crt the broker's PKCS#8 key and certificate chain (``ssl.keystore.type=PEM``)
    client.crt/.key a client certificate and key for mutual TLS (``ssl_certfile`` / ``ssl_keyfile``)

The server certificate names 127.0.0.1 and localhost, so clients verify the host name as they should.
The CA's own key is never written: nothing more can be signed once this exits.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import sys
from pathlib import Path

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:  # pragma: no cover - a checkout without the dev environment
    sys.exit("kafka_tls.py needs the 'cryptography' package (make env installs it)")

VALID_FOR = dt.timedelta(days=2)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _builder(subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
    )


def write(out: Path, label: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_cn = f"rollguard throwaway CA ({label})"
    ca = (
        _builder(ca_cn, _name(ca_cn), ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf_usage = x509.KeyUsage(True, False, True, False, False, False, False, False, False)

    server_key = _key()
    server = (
        _builder("localhost", ca.subject, server_key)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(leaf_usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    client_key = _key()
    client = (
        _builder("rollguard-client", ca.subject, client_key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(leaf_usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (out / "ca.pem").write_bytes(_pem(ca))
    (out / "server.key").write_bytes(_pkcs8(server_key))
    (out / "server.crt").write_bytes(_pem(server) + _pem(ca))
    (out / "client.crt").write_bytes(_pem(client))
    (out / "client.key").write_bytes(_pkcs8(client_key))
    for private in ("server.key", "client.key"):
        (out / private).chmod(0o600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the PEM files")
    parser.add_argument("--label", default="test broker", help="put in the CA's name, to tell CAs apart")
    args = parser.parse_args(argv)
    write(args.out, args.label)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
