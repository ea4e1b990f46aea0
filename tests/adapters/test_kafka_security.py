"""The TLS files of ``worker.kafka`` are checked when a command starts, before any client exists: a
missing or unreadable file names its field and path, a file that is not what it should be says the TLS
files do not load, a client key without its certificate is refused — one line, not a bare "No such file
or directory" from deep inside the first client. Files a plaintext connection does not use are not read.
(Real certificates from scripts/kafka_tls.py, the ones the test broker uses.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from rollguard.adapters.kafka_security import KafkaSecurity, security_of
from rollguard.cli import main
from rollguard.settings.worker import KafkaSettings
from secured_kit import another_ca


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two unrelated throwaway CAs, each with a client certificate it signed."""
    root = tmp_path_factory.mktemp("pki")
    return another_ca(root / "one"), another_ca(root / "two")


def _ssl(**files: str) -> KafkaSettings:
    return KafkaSettings(bootstrap="127.0.0.1:1", security_protocol="SSL", **files)


def test_real_certificates_give_a_tls_context(pki: tuple[Path, Path]) -> None:
    one, _ = pki
    security = security_of(
        _ssl(ssl_cafile=str(one / "ca.pem"), ssl_certfile=str(one / "client.crt"),
             ssl_keyfile=str(one / "client.key")),
        {},
    )  # fmt: skip
    assert isinstance(security, KafkaSecurity)
    assert security.ssl_context() is not None


def test_a_missing_ca_file_names_the_field_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ca.pem"
    assert security_of(_ssl(ssl_cafile=str(missing)), {}) == (
        f"worker.kafka.ssl_cafile: cannot read {missing}: No such file or directory"
    )


def test_a_file_that_is_not_a_certificate_says_the_tls_files_do_not_load(tmp_path: Path) -> None:
    not_a_ca = tmp_path / "ca.pem"
    not_a_ca.write_text("not a certificate\n")
    problem = security_of(_ssl(ssl_cafile=str(not_a_ca)), {})
    assert isinstance(problem, str)
    assert problem.startswith(f"worker.kafka: the TLS files do not load ({not_a_ca}): ")


def test_a_client_certificate_with_another_key_does_not_load(pki: tuple[Path, Path]) -> None:
    one, two = pki
    problem = security_of(_ssl(ssl_certfile=str(one / "client.crt"), ssl_keyfile=str(two / "client.key")), {})
    assert isinstance(problem, str) and problem.startswith("worker.kafka: the TLS files do not load ")


def test_a_client_key_without_its_certificate_is_refused(pki: tuple[Path, Path]) -> None:
    one, _ = pki
    assert security_of(_ssl(ssl_keyfile=str(one / "client.key")), {}) == (
        "worker.kafka.ssl_keyfile: needs ssl_certfile (the client certificate it belongs to)"
    )


def test_tls_files_are_not_read_when_the_protocol_uses_no_tls(tmp_path: Path) -> None:
    settings = KafkaSettings(security_protocol="PLAINTEXT", ssl_cafile=str(tmp_path / "absent.pem"))
    assert isinstance(security_of(settings, {}), KafkaSecurity)


def test_a_missing_ca_file_stops_a_command_at_start_naming_the_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "rollguard.yaml"
    missing = tmp_path / "ca.pem"
    config.write_text(
        "worker:\n  kafka:\n    bootstrap: 127.0.0.1:1\n    security_protocol: SASL_SSL\n"
        "    sasl_mechanism: SCRAM-SHA-512\n    sasl_username: rollguard\n"
        f"    sasl_password_env: RG_TEST_TLS_PASSWORD\n    ssl_cafile: {missing}\n"
    )
    monkeypatch.setenv("RG_TEST_TLS_PASSWORD", "x")
    monkeypatch.delenv("ROLLGUARD_BOOTSTRAP", raising=False)
    assert main(["preflight", "r", "--config", str(config)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"rollguard: {config}: worker.kafka.ssl_cafile: cannot read {missing}: " + (
        "No such file or directory"
    )
