"""The worker section: the Faust worker's web page, delivery guarantee and replication, checked with
the rest of the file."""

from __future__ import annotations

import pytest
from config_errors import assert_fails

from rollguard.settings import Config, parse_config
from rollguard.settings.worker import WorkerSettings


def test_defaults_without_the_section() -> None:
    assert parse_config("worker:\n").worker == Config().worker == WorkerSettings()
    assert WorkerSettings() == WorkerSettings(True, 6066, "0.0.0.0", "at_least_once", 1)


def test_the_section_parses_into_typed_settings() -> None:
    worker = parse_config(
        "worker: {web_enabled: false, web_port: 7000, web_bind: "
        "127.0.0.1, processing_guarantee: exactly_once,"
        " replication: 3}"
    ).worker
    assert worker == WorkerSettings(False, 7000, "127.0.0.1", "exactly_once", 3)


def test_a_whole_float_is_a_whole_number_as_everywhere_in_the_file() -> None:
    worker = parse_config("worker: {web_port: 7000.0, replication: 2.0}").worker
    assert (worker.web_port, worker.replication) == (7000, 2) and isinstance(worker.web_port, int)


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("worker: 5", 1, "worker", "must be a mapping, got int"),
        (
            "worker:\n  web_prot: 7000",
            2,
            "worker.web_prot",
            "unknown setting (expected one of: processing_guarantee, "
            "replication, web_bind, web_enabled, web_port)",
        ),
        ("worker:\n  web_port: '7000'", 2, "worker.web_port", "must be a number, got '7000'"),
        ("worker:\n  web_port: 1.5", 2, "worker.web_port", "must be a whole number, got 1.5"),
        ("worker:\n  web_port: -1", 2, "worker.web_port", "must be at least 0, got -1"),
        ("worker:\n  web_port: 70000", 2, "worker.web_port", "must be at most 65535, got 70000"),
        ("worker:\n  web_enabled: 1", 2, "worker.web_enabled", "must be true or false"),
        ("worker:\n  web_bind: ''", 2, "worker.web_bind", "must be a non-empty string, got ''"),
        (
            "worker:\n  processing_guarantee: maybe",
            2,
            "worker.processing_guarantee",
            "must be one of at_least_once, exactly_once, got 'maybe'",
        ),
        ("worker:\n  replication: 0", 2, "worker.replication", "must be at least 1, got 0"),
        ("worker:\n  replication: x\n  bogus: 1\n", 2, "worker.replication", "must be a number, got 'x'"),
    ],
)
def test_errors_name_the_line_and_field(text: str, line: int, field: str, message: str) -> None:
    assert_fails(text, line, field, message)
