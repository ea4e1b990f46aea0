"""One command in, one ack out, on a real file and a real state directory (no Kafka here): what is
written, what is left byte for byte, and what a restarted controller answers."""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from controller_testkit import KEY, ROLLOUT, canary_flags, command, write_flags
from rollguard.adapters.controller.flag_file import FlagFileChanged, read_flags, replace_flags
from rollguard.adapters.controller.handler import FlagdFileController
from rollguard.adapters.controller.state import ControllerState
from rollguard.policy.commands.planner import Planner, RolloutCommands
from rollguard.policy.readiness.rollout import RolloutReadiness
from rollguard.settings.commands import CommandSettings
from rollguard.settings.controller import ControllerSettings, RolloutFlagSettings
from rollguard.settings.promotion import PromotionSettings
from rollguard.settings.readiness import ReadinessSettings


class Clock:
    """The controller's wall clock, movable by the test (commands are issued against real time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return write_flags(tmp_path / "flags.json", canary_flags())


def controller(
    flags: Path,
    state_dir: Path,
    clock: Clock | None = None,
    settings: ControllerSettings | None = None,
    **kw: Any,
) -> FlagdFileController:
    return FlagdFileController(
        flags,
        KEY,
        settings or ControllerSettings(),
        ControllerState(state_dir, flags.name),
        clock=clock or Clock(),
        **kw,
    )


def send(ctl: FlagdFileController, record: dict[str, Any]) -> dict[str, Any] | None:
    return ctl.handle(orjson.dumps(record))


def test_an_applied_command_rewrites_the_file_and_acks_its_new_version(flags: Path, tmp_path: Path) -> None:
    ctl = controller(flags, tmp_path / "state")
    c = command("reduce_weight", target_weight=0.05)
    ack = send(ctl, c)
    assert ack is not None
    assert ack["status"] == "applied" and ack["observed_version"] == "2" and ack["controller"] == "flagd-file"
    assert ack["command_id"] == c["command_id"] and ack["rollout_id"] == ROLLOUT
    assert abs(ack["at"] - time.time()) < 5
    doc = json.loads(flags.read_text())
    assert doc["flags"][ROLLOUT]["targeting"] == {"fractional": [["canary", 5], ["control", 95]]}
    assert doc["$schema"] == canary_flags()["$schema"]  # the rest of the file is kept


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: command("rollback", key=b"not-the-key"), "unauthorized"),
        (lambda: {**command("reduce_weight", target_weight=0.05), "target_weight": 0.0}, "unauthorized"),
        (lambda: command("rollback", key=None), "unauthorized"),
        (lambda: command("rollback", issued_at=time.time() - 1000, ttl_s=900), "expired"),
        (lambda: command("reduce_weight", target_weight=7.0), "invalid"),
        (lambda: command("rollback", expected_version="41"), "conflict"),
    ],
    ids=["forged", "tampered", "unsigned", "expired", "invalid", "conflict"],
)
def test_a_rejected_command_leaves_the_file_byte_for_byte(
    flags: Path, tmp_path: Path, make: Any, code: str
) -> None:
    before = flags.read_bytes()
    stat = os.stat(flags)
    ack = send(controller(flags, tmp_path / "state"), make())
    assert ack is not None and ack["status"] == "rejected" and ack["reason_code"] == code and ack["reason"]
    assert flags.read_bytes() == before and os.stat(flags).st_mtime_ns == stat.st_mtime_ns


def test_an_older_sequence_than_one_applied_is_superseded(flags: Path, tmp_path: Path) -> None:
    ctl = controller(flags, tmp_path / "state")
    assert send(ctl, command("reduce_weight", target_weight=0.05, sequence=7))["status"] == "applied"  # type: ignore[index]
    before = flags.read_bytes()
    ack = send(ctl, command("promote", target_weight=0.5, sequence=6))
    assert ack is not None and ack["reason_code"] == "superseded" and flags.read_bytes() == before
    assert send(ctl, command("promote", target_weight=0.5, sequence=8))["status"] == "applied"  # type: ignore[index]


def test_a_dry_run_computes_the_change_and_writes_nothing(flags: Path, tmp_path: Path) -> None:
    before = flags.read_bytes()
    ctl = controller(flags, tmp_path / "state")
    ack = send(ctl, command("disable_scope", scope={"input_class": "coding"}, dry_run=True, sequence=50))
    assert ack is not None and ack["status"] == "dry_run_ok" and ack["observed_version"] == "1"
    assert ack["reason"].startswith("would apply: context input_class=coding -> control")
    assert flags.read_bytes() == before
    # a rehearsal does not advance the sequence: an older real command still applies
    assert send(ctl, command("rollback", sequence=10))["status"] == "applied"  # type: ignore[index]


def test_unsigned_commands_apply_when_the_controller_accepts_them(flags: Path, tmp_path: Path) -> None:
    ack = send(controller(flags, tmp_path / "state", accept_unsigned=True), command("rollback", key=None))
    assert ack is not None and ack["status"] == "applied"


def test_after_a_restart_a_redelivered_command_gets_its_original_ack_even_once_expired(
    flags: Path, tmp_path: Path
) -> None:
    clock = Clock()
    c = command("disable_scope", scope={"input_class": "coding"}, ttl_s=60)
    first = send(controller(flags, tmp_path / "state", clock), c)
    assert first is not None and first["status"] == "applied"
    after = flags.read_bytes()
    clock.offset = 3600.0  # an hour later the command has long expired
    again = send(controller(flags, tmp_path / "state", clock), c)
    assert again == first
    assert flags.read_bytes() == after
    # without the state the same command would be refused: the state is what answers
    fresh = send(controller(flags, tmp_path / "other-state", clock), c)
    assert fresh is not None and fresh["reason_code"] == "expired"


def test_a_forged_copy_of_an_applied_command_is_refused_and_does_not_replace_its_record(
    flags: Path, tmp_path: Path
) -> None:
    ctl = controller(flags, tmp_path / "state")
    c = command("reduce_weight", target_weight=0.05)
    first = send(ctl, c)
    forged = send(ctl, {**c, "target_weight": 0.9})
    assert forged is not None and forged["reason_code"] == "unauthorized"
    assert send(ctl, c) == first


def test_messages_for_someone_else_get_no_answer(flags: Path, tmp_path: Path) -> None:
    ctl = controller(flags, tmp_path / "state")
    before = flags.read_bytes()
    assert send(ctl, command("silence", operator={"matchers": {}})) is None
    assert send(ctl, command("rollback", requires_approval=True)) is None
    assert send(ctl, command("rollback", rollout="someone-elses-rollout")) is None
    assert ctl.handle(b"not json") is None
    assert flags.read_bytes() == before


def test_a_configured_rollout_whose_flag_is_missing_is_answered_invalid(flags: Path, tmp_path: Path) -> None:
    settings = ControllerSettings(rollouts={"search-v3": RolloutFlagSettings(flag="search-model")})
    ack = send(
        controller(flags, tmp_path / "state", settings=settings), command("rollback", rollout="search-v3")
    )
    assert ack is not None and ack["status"] == "rejected" and ack["reason_code"] == "invalid"
    assert "'search-model' is not defined" in ack["reason"] and ack["flag"] == "search-model"


def test_a_mapped_rollout_edits_its_flag_with_its_variants(tmp_path: Path) -> None:
    doc = canary_flags("search-model")
    doc["flags"]["search-model"]["variants"] = {"off": False, "on": True}
    doc["flags"]["search-model"]["defaultVariant"] = "off"
    doc["flags"]["search-model"]["targeting"] = {"fractional": [["on", 10], ["off", 90]]}
    flags = write_flags(tmp_path / "flags.json", doc)
    settings = ControllerSettings(
        rollouts={
            "search-v3": RolloutFlagSettings(flag="search-model", control_variant="off", canary_variant="on")
        }
    )
    ack = send(
        controller(flags, tmp_path / "state", settings=settings),
        command("reduce_weight", rollout="search-v3", target_weight=0.02),
    )
    assert ack is not None and ack["status"] == "applied", ack
    assert json.loads(flags.read_text())["flags"]["search-model"]["targeting"] == {
        "fractional": [["on", 2], ["off", 98]]
    }


def test_a_flags_file_that_disappeared_fails_the_command(flags: Path, tmp_path: Path) -> None:
    ctl = controller(flags, tmp_path / "state")
    flags.unlink()
    ack = send(ctl, command("rollback"))
    assert ack is not None and ack["status"] == "failed" and ack["reason_code"] == "error"
    assert "cannot read" in ack["reason"]


def test_the_file_is_replaced_only_if_it_still_holds_what_the_edit_was_computed_from(flags: Path) -> None:
    raw, doc = read_flags(flags)
    flags.write_text(flags.read_text().replace('"1"', '"1-edited-by-hand"'))
    edited = flags.read_bytes()
    with pytest.raises(FlagFileChanged):
        replace_flags(flags, doc, raw)
    assert flags.read_bytes() == edited
    assert [p.name for p in flags.parent.iterdir()] == ["flags.json"]  # no temporary file left behind


def test_every_replacement_has_a_later_mtime_and_keeps_the_file_mode(flags: Path) -> None:
    os.chmod(flags, 0o640)
    mtimes = [os.stat(flags).st_mtime_ns]
    for i in range(5):
        raw, doc = read_flags(flags)
        doc["flags"][ROLLOUT]["metadata"]["version"] = str(i + 2)
        replace_flags(flags, doc, raw)
        mtimes.append(os.stat(flags).st_mtime_ns)
    assert all(b > a for a, b in itertools.pairwise(mtimes))
    assert os.stat(flags).st_mode & 0o777 == 0o640
    assert json.loads(flags.read_text())["flags"][ROLLOUT]["metadata"]["version"] == "6"


def test_rollguards_revert_rehearsal_is_answered_dry_run_ok_and_changes_nothing(
    flags: Path, tmp_path: Path
) -> None:
    planner = Planner(CommandSettings(), PromotionSettings(), KEY)
    rehearsal = planner.rehearsal(RolloutCommands(ROLLOUT), time.time())
    assert rehearsal["rehearsal"] and rehearsal["dry_run"] and rehearsal["action"] == "rollback"
    before = flags.read_bytes()
    ack = send(controller(flags, tmp_path / "state"), rehearsal)
    assert ack is not None and ack["status"] == "dry_run_ok" and ack["command_id"] == rehearsal["command_id"]
    assert ack["reason"].startswith("would apply: ")
    assert flags.read_bytes() == before


def test_a_readiness_record_on_the_control_topic_is_skipped_without_an_answer(
    flags: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ready = RolloutReadiness(ROLLOUT)
    record = ready.record_if_changed(ReadinessSettings(), time.time(), KEY, "rollguard", None)
    assert record is not None and record["kind"] == "readiness"
    before = flags.read_bytes()
    with caplog.at_level(logging.INFO, logger="rollguard.controller"):
        assert send(controller(flags, tmp_path / "state"), record) is None
    assert "skipping the readiness record of checkout-v2" in caplog.text
    assert "no command" not in caplog.text  # not mistaken for a malformed command
    assert flags.read_bytes() == before
