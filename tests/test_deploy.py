"""docker-compose.yml and the Dockerfile, checked without Docker (none on these machines): structure,
health checks, start order, and that every `rollguard ...` command they run exists and parses."""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from rollguard.cli import build_parser, command_names

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def _commands(compose: dict[str, Any]) -> list[list[str]]:
    out = []
    for service in compose["services"].values():
        command = service.get("command")
        if isinstance(command, str):
            command = command.split()
        if command:
            out.append([str(c) for c in command])
    return out


def test_services_images_and_kraft(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", "topic-init", "worker"}
    kafka = services["kafka"]
    assert re.fullmatch(r"apache/kafka:3\.9\.\d+", kafka["image"])
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert not any("ZOOKEEPER" in key for key in env)
    assert str(env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"]) == "0"
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]) == "false"
    # The broker is reachable from the host on loopback only.
    for port in kafka.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), port
    for name in ("topic-init", "worker"):
        assert services[name]["image"].startswith("rollguard:")
        assert services[name]["build"]["dockerfile"] == "Dockerfile"
        assert services[name]["environment"]["ROLLGUARD_TOPICS_DIR"] == "/app/topics"
    assert (ROOT / services["worker"]["build"]["context"] / "Dockerfile").is_file()


def test_health_checks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("kafka", "worker"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"} and len(check["test"]) > 1
        assert check["retries"] >= 1
    assert "/rollguard/health/" in " ".join(services["worker"]["healthcheck"]["test"])
    assert services["topic-init"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert services["worker"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "topic-init": {"condition": "service_completed_successfully"},
    }
    assert services["topic-init"]["restart"] == "no"


def test_every_rollguard_command_exists_and_parses(compose: dict[str, Any]) -> None:
    known = command_names()
    parser = build_parser()
    commands = [c for c in _commands(compose) if c[0] == "rollguard"]
    assert {tuple(c[1:3]) for c in commands} >= {("topics", "apply")}
    assert any(c[1] == "worker" for c in commands)
    for command in commands:
        args = command[1:]
        words = tuple(itertools.takewhile(lambda a: not a.startswith("-"), args))
        assert words in known, f"{command}: `rollguard {' '.join(words)}` is not a CLI command"
        parsed = parser.parse_args(args)  # unknown options or missing values exit here
        assert callable(parsed.handler)
        if "--bootstrap" in args:
            assert parsed.bootstrap == "kafka:9092"


def test_dockerfile_installs_the_cli_and_the_contracts() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", text, re.M)
    assert "COPY topics ./topics" in text
    assert "ROLLGUARD_TOPICS_DIR=/app/topics" in text
    assert re.search(r"^USER (?!root)", text, re.M)


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    """Validated against the Compose Specification's JSON schema as vendored by check-jsonschema."""
    # Only the schema file is needed: locate the package without importing it (its CLI needs a newer
    # click than faust-streaming allows).
    spec = importlib.util.find_spec("check_jsonschema")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("check-jsonschema (ships the Compose spec schema) not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    schema_file = package / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
