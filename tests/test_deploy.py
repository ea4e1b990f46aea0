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
    assert set(services) == {
        "kafka",
        "topic-init",
        "worker",
        "controller",
        "alertmanager",
        "bridge",
        "prometheus",
    }
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
    for name in ("topic-init", "worker", "controller", "bridge"):
        assert services[name]["image"].startswith("rollguard:")
        assert services[name]["build"]["dockerfile"] == "Dockerfile"
        assert services[name]["environment"]["ROLLGUARD_TOPICS_DIR"] == "/app/topics"
    assert (ROOT / services["worker"]["build"]["context"] / "Dockerfile").is_file()


def test_health_checks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("kafka", "worker", "alertmanager"):
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
    for name in ("controller", "bridge"):
        assert services[name]["depends_on"]["topic-init"] == {"condition": "service_completed_successfully"}
    assert services["bridge"]["depends_on"]["alertmanager"] == {"condition": "service_healthy"}


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


def _mounted(service: dict[str, Any], target: str) -> Path:
    """The file of the checkout mounted at ``target`` in the container."""
    for volume in service.get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if rest.split(":")[0] == target:
            return ROOT / source
    raise AssertionError(f"nothing is mounted at {target}")


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_services_point_at_each_other_as_their_files_say(compose: dict[str, Any]) -> None:
    """Ports, URLs and config files agree across the compose file and deploy/ (no Docker here: the
    consistency the containers would need, checked file by file)."""
    from rollguard.settings import load_config

    services = compose["services"]
    worker_config = _mounted(services["worker"], _option(services["worker"]["command"], "--config"))
    config = load_config(worker_config)
    web = config.worker
    assert config.worker.kafka.bootstrap == "kafka:9092"
    assert (
        web.web_bind == "0.0.0.0"
        and f"127.0.0.1:{web.web_port}:{web.web_port}" in services["worker"]["ports"]
    )
    assert f"127.0.0.1:{web.web_port}/rollguard/health/" in " ".join(
        services["worker"]["healthcheck"]["test"]
    )
    # The worker's status is what each alert's generatorURL points at; Prometheus scrapes its /metrics.
    bridge = services["bridge"]["command"]
    bridge_config = load_config(_mounted(services["bridge"], _option(bridge, "--config")))
    assert bridge_config.bridge.alertmanager.worker_url == f"http://worker:{web.web_port}"
    assert _option(bridge, "--url") == "http://alertmanager:9093"
    prometheus = yaml.safe_load(
        _mounted(services["prometheus"], "/etc/prometheus/prometheus.yml").read_text()
    )
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == [
        f"worker:{web.web_port}"
    ]
    # Alertmanager runs the routing file the tests start it with; the controller its flags and config.
    assert (
        _mounted(services["alertmanager"], "/etc/alertmanager/alertmanager.yml")
        == ROOT / "deploy/alertmanager.yml"
    )
    controller = services["controller"]["command"]
    assert _mounted(services["controller"], "/etc/rollguard/controller.yaml").is_file()
    flags_dir = _mounted(services["controller"], "/flags")
    assert (flags_dir / Path(_option(controller, "--flags")).name).is_file()
    assert _option(controller, "--key-file") == "/etc/rollguard/key"
    # Commands are signed with the key the controller checks them with.
    assert "ROLLGUARD_SIGNING_KEY" in services["worker"]["environment"]
    assert config.commands.signing_key_env == "ROLLGUARD_SIGNING_KEY"


def test_the_prometheus_file_is_valid_for_prometheus(compose: dict[str, Any]) -> None:
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus, installed by scripts/services.sh) is missing")
    path = _mounted(compose["services"]["prometheus"], "/etc/prometheus/prometheus.yml")
    done = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
