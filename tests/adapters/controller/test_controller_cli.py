"""``rollguard controller flagd`` refuses bad start-up input with one line and exit 2, before any Kafka."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller_testkit import canary_flags, write_flags
from rollguard.cli import command_names, main


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    key = tmp_path / "command.key"
    key.write_text("secret\n")
    return {"flags": write_flags(tmp_path / "flags.json", canary_flags()), "key": key}


def run(files: dict[str, Path], *extra: str) -> int:
    # a closed port: any attempt to reach Kafka would fail, so exit 2 proves it stopped before that
    args = ["--bootstrap", "127.0.0.1:1", "--flags", str(files["flags"]), "--key-file", str(files["key"])]
    return main(["controller", "flagd", *args, *extra])


def test_the_cli_has_the_controller_command() -> None:
    assert ("controller", "flagd") in command_names()


def test_a_bad_controller_config_stops_the_start_with_file_line_and_field(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("controller:\n  control_variant: canary\n")
    assert run(files, "--config", str(config)) == 2
    err = capsys.readouterr().err
    assert f"{config}:2: controller.canary_variant: must differ from control_variant" in err


def test_an_empty_key_file_stops_the_start(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files["key"].write_text("\n")
    assert run(files) == 2
    assert "the key file is empty" in capsys.readouterr().err


def test_a_flags_file_that_is_not_json_stops_the_start(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = "flags:\n  - not json\n"
    files["flags"].write_text(before)
    assert run(files) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    assert files["flags"].read_text() == before
