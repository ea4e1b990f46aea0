"""The README's section for controller authors, run as written: the Python verification snippet against
commands signed by rollguard's planner, the config block, and the shell commands that start the
reference controller on the checked-in example files against a real broker."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from controller_testkit import KEY, CommandLink, command, evaluator
from rollguard.adapters.controller.consumer import ControllerTopics
from rollguard.adapters.replay import replay
from rollguard.policy.commands.signing import canonical_json
from rollguard.settings.config import Config
from rollguard.settings.controller import load_controller_settings
from rollguard.sim import generate, get_scenario, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def section() -> str:
    text = README.read_text()
    start = text.index("## Rollout controllers\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section(), flags=re.DOTALL)


def snippet() -> dict[str, Any]:
    (code,) = blocks("python")
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md (verification snippet)", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def planner_commands(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Commands as rollguard issues them: the demo's scenario replayed with a signing key."""
    out = tmp_path_factory.mktemp("signed")
    sc = get_scenario("error_spike_coding", seed=7, duration_s=1200.0, error_rate=0.08)
    write_jsonl(generate(sc), out / "events.jsonl")
    replay(out / "events.jsonl", Config(), out, signing_key=KEY, auto_ack_s=5.0)
    cmds = [json.loads(line) for line in (out / "commands.jsonl").read_text().splitlines()]
    assert cmds and all(c["signature"] for c in cmds)
    return cmds


def test_the_readme_snippet_verifies_commands_signed_by_rollguards_planner(
    planner_commands: list[dict[str, Any]],
) -> None:
    verify: Callable[[dict[str, Any], bytes, float], str | None] = snippet()["verify"]
    for c in [*planner_commands, command("promote", target_weight=0.25)]:
        assert verify(c, KEY, c["issued_at"]) is None
        assert verify(c, b"another-key", c["issued_at"]) == "unauthorized"
        assert verify({**c, "scope": {"tenant": "t9"}}, KEY, c["issued_at"]) == "unauthorized"
        assert verify({**c, "signature": ""}, KEY, c["issued_at"]) == "unauthorized"
        assert verify({**c, "signature": "é"}, KEY, c["issued_at"]) == "unauthorized"
        assert verify(c, KEY, c["expires_at"]) == "expired"


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e-7, 1e-6, 1.5e-6, 1e21, 1e16, 123456789012345680000.0, 1767225700.0, -0.0, 0.1])
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_JSON)
def test_the_readme_canonical_json_is_rollguards_canonical_json(value: Any) -> None:
    assert snippet()["canonical"](value) == canonical_json(value).decode()


def test_the_readme_controller_config_block_is_a_valid_config(tmp_path: Path) -> None:
    (config,) = blocks("yaml")
    path = tmp_path / "controller.yaml"
    path.write_text(config)
    settings = load_controller_settings(path)
    assert settings.mapping("search-v3").flag == "search-ranker"
    assert yaml.safe_load(config)["controller"]["context_keys"] == {"input_class": "inputClass"}


def _contracts(directory: Path) -> ControllerTopics:
    """Topic contracts with fresh names (control and acks roles), like topics/ but for this test alone."""
    tag = uuid.uuid4().hex[:8]
    shutil.copytree(ROOT / "topics" / "schemas", directory / "schemas")
    names = {}
    for role in ("control", "acks"):
        doc = yaml.safe_load((ROOT / "topics" / f"rollguard.{role}.yaml").read_text())
        doc["name"] = names[role] = f"readme-{tag}.{role}"
        doc["partitions"] = 2
        (directory / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc))
    return ControllerTopics(names["control"], names["acks"])


@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_the_readme_commands_run_the_reference_controller_on_the_example_files(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    (sh,) = blocks("sh")
    lines = [shlex.split(line) for line in sh.strip().splitlines()]
    assert [line[:3] for line in lines] == [
        ["rollguard", "topics", "apply"],
        ["rollguard", "controller", "flagd"],
    ]
    topics = _contracts(tmp_path / "topics")
    env = {**os.environ, "ROLLGUARD_TOPICS_DIR": str(tmp_path / "topics")}
    flags = tmp_path / "flags.json"
    shutil.copy(ROOT / "deploy" / "controller" / "flags.json", flags)
    (tmp_path / "command.key").write_bytes(KEY + b"\n")
    values = {
        "--bootstrap": kafka_bootstrap,
        "--flags": str(flags),
        "--key-file": str(tmp_path / "command.key"),
        "--state-dir": str(tmp_path / "state"),
    }

    def run_form(argv: list[str]) -> list[str]:
        out = [sys.executable, "-m", "rollguard.cli", *argv[1:]]
        for i in range(1, len(out)):
            if out[i - 1] in values:
                out[i] = values[out[i - 1]]
        if argv[1] == "controller":  # the session's broker is shared: a consumer group of this test's own
            out += ["--group-id", f"readme-controller-{tmp_path.name}-{os.getpid()}"]
        return out

    assert set(values) | {"--config"} <= set(lines[1])
    assert (ROOT / lines[1][lines[1].index("--config") + 1]).is_file()  # the checked-in example config
    apply = subprocess.run(run_form(lines[0]), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert apply.returncode == 0, apply.stderr
    proc = subprocess.Popen(
        run_form(lines[1]), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    link = CommandLink(kafka_bootstrap, topics)
    try:
        disable = command("disable_scope", "checkout-v2", scope={"input_class": "coding"})
        reduce = command("reduce_weight", "search-v3", target_weight=0.05)
        for c in (disable, reduce):
            link.send(c, key=c["rollout_id"])
        assert link.ack(disable, timeout_s=60)["status"] == "applied"
        assert link.ack(reduce, timeout_s=60)["observed_version"] == "2"
        doc = json.loads(flags.read_text())
        assert doc["flags"]["search-ranker"]["targeting"] == {"fractional": [["on", 5], ["off", 95]]}
        with evaluator(flags, "checkout-v2") as app:
            app.wait_version("2")
            assert app.canary_share(2000, inputClass="coding") == 0.0  # the config maps input_class
            share = app.canary_share(2000, inputClass="chat")
            assert abs(share - 0.10) < 4 * math.sqrt(0.09 / 2000)
    finally:
        link.close()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert (tmp_path / "state" / "flags.json.sqlite").is_file()
