"""The reference controller end to end: commands on a real broker, acks back, and the flag as an
application evaluates it (OpenFeature SDK + flagd provider, in-process, FILE source on the very file
the controller writes)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller_testkit import (
    CommandLink,
    RunningController,
    canary_flags,
    command,
    create_topics,
    evaluator,
    make_topics,
    write_flags,
)
from rollguard.adapters.controller.consumer import ControllerTopics

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

KEYS = 6000  # targeting keys per share measurement


def tolerance(p: float, n: int = KEYS) -> float:
    """Four standard errors of a share p over n keys."""
    return 4 * math.sqrt(p * (1 - p) / n)


@pytest.fixture
def topics(kafka_bootstrap: str) -> ControllerTopics:
    return make_topics(kafka_bootstrap)


@pytest.fixture
def link(kafka_bootstrap: str, topics: ControllerTopics) -> Iterator[CommandLink]:
    lk = CommandLink(kafka_bootstrap, topics)
    yield lk
    lk.close()


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return write_flags(tmp_path / "flags.json", canary_flags())


def test_commands_reshape_the_split_that_applications_evaluate(
    kafka_bootstrap: str, topics: ControllerTopics, link: CommandLink, flags: Path, tmp_path: Path
) -> None:
    # the tolerance separates the splits the test tells apart: 10 % from 5 %, and 5 % from 0
    assert tolerance(0.10) + tolerance(0.05) < 0.05 and tolerance(0.05) < 0.05
    ctl = RunningController(kafka_bootstrap, topics, flags, tmp_path / "state")
    try:
        with evaluator(flags) as app:
            assert abs(app.canary_share(KEYS, input_class="coding") - 0.10) < tolerance(0.10)

            disable = command("disable_scope", scope={"input_class": "coding"})
            link.send(disable)
            ack = link.ack(disable)
            assert ack["status"] == "applied" and ack["controller"] == "flagd-file"
            assert ack["observed_version"] == "2"
            app.wait_version("2")
            assert app.canary_share(KEYS, input_class="coding") == 0.0
            assert abs(app.canary_share(KEYS, input_class="chat") - 0.10) < tolerance(0.10)
            assert abs(app.canary_share(KEYS) - 0.10) < tolerance(0.10)  # no input_class at all

            reduce = command("reduce_weight", target_weight=0.05)
            link.send(reduce)
            assert link.ack(reduce)["observed_version"] == "3"
            app.wait_version("3")
            assert abs(app.canary_share(KEYS, input_class="chat") - 0.05) < tolerance(0.05)
            assert app.canary_share(KEYS, input_class="coding") == 0.0

            rollback = command("rollback")
            link.send(rollback)
            assert link.ack(rollback)["observed_version"] == "4"
            app.wait_version("4")
            for attrs in ({"input_class": "chat"}, {"input_class": "coding"}, {}):
                assert app.canary_share(KEYS, **attrs) == 0.0
            assert app.variant(None) == "control"  # contexts without a targeting key too
    finally:
        ctl.stop()


def test_forged_tampered_expired_superseded_and_unsigned_commands_are_rejected_and_the_file_untouched(
    kafka_bootstrap: str, topics: ControllerTopics, link: CommandLink, flags: Path, tmp_path: Path
) -> None:
    ctl = RunningController(kafka_bootstrap, topics, flags, tmp_path / "state")
    try:
        applied = command("reduce_weight", target_weight=0.05, sequence=10)
        link.send(applied)
        assert link.ack(applied)["status"] == "applied"
        before, mtime = flags.read_bytes(), os.stat(flags).st_mtime_ns

        tampered = command("disable_scope", scope={"input_class": "coding"}, sequence=11)
        tampered["scope"] = {"input_class": "chat"}  # changed after signing
        cases = {
            "unauthorized (forged)": command("rollback", sequence=12, key=b"an-attacker-key"),
            "unauthorized (tampered)": tampered,
            "expired": command("rollback", sequence=13, issued_at=time.time() - 120, ttl_s=60),
            "superseded": command("rollback", sequence=9),
            "unauthorized (unsigned)": command("rollback", sequence=14, key=None),
        }
        ignored = [
            command("acknowledge_alert", operator={"alert_id": "al-1"}),
            command("rollback", sequence=15, requires_approval=True),
        ]
        for record in [*ignored, *cases.values()]:
            link.send(record)
        for expected, record in cases.items():
            ack = link.ack(record)
            assert ack["status"] == "rejected" and ack["reason"], ack
            assert ack["reason_code"] == expected.split()[0], (expected, ack)
        # a message for the same rollout after them is answered: everything before it was read
        probe = command("reduce_weight", target_weight=0.05, sequence=16)
        link.send(probe)
        assert link.ack(probe)["status"] == "applied"
        assert not [a for a in link.acks if a["command_id"] in {r["command_id"] for r in ignored}]
        assert flags.read_bytes() == before and os.stat(flags).st_mtime_ns == mtime
    finally:
        ctl.stop()


def test_a_dry_run_acks_dry_run_ok_and_leaves_the_file_untouched(
    kafka_bootstrap: str, topics: ControllerTopics, link: CommandLink, flags: Path, tmp_path: Path
) -> None:
    before = flags.read_bytes()
    ctl = RunningController(kafka_bootstrap, topics, flags, tmp_path / "state")
    try:
        rehearsal = command("rollback", dry_run=True)
        link.send(rehearsal)
        ack = link.ack(rehearsal)
        assert ack["status"] == "dry_run_ok" and ack["reason"].startswith("would apply: defaultVariant")
        assert ack["observed_version"] == "1"
    finally:
        ctl.stop()
    assert flags.read_bytes() == before


def test_a_restarted_controller_answers_a_redelivered_command_with_its_original_ack(
    kafka_bootstrap: str, topics: ControllerTopics, link: CommandLink, flags: Path, tmp_path: Path
) -> None:
    disable = command("disable_scope", scope={"input_class": "coding"}, ttl_s=2.0)
    rejected = command("rollback", key=b"an-attacker-key")
    first = RunningController(kafka_bootstrap, topics, flags, tmp_path / "state")
    try:
        link.send(disable)
        original = link.ack(disable)
        assert original["status"] == "applied"
    finally:
        first.stop()
    after = flags.read_bytes()
    time.sleep(max(0.0, disable["expires_at"] - time.time()) + 0.1)  # it has expired by now

    # a new consumer group reads the control topic from its start: every command is redelivered
    second = RunningController(kafka_bootstrap, topics, flags, tmp_path / "state")
    try:
        link.send(rejected)
        assert link.ack(rejected)["reason_code"] == "unauthorized"
        again = link.acks_for(disable["command_id"], count=2)[1]
    finally:
        second.stop()
    assert again == original  # the same ack, byte for byte, not "expired"
    assert flags.read_bytes() == after


def test_a_controller_started_before_its_topics_exist_waits_for_them_and_then_answers(
    kafka_bootstrap: str, flags: Path, tmp_path: Path
) -> None:
    # Started before `rollguard topics apply`: it waits for the topic (saying so in its log), then joins
    # its group knowing the topic's partitions, and answers.
    topics = make_topics(kafka_bootstrap, create=False)
    ctl = RunningController(kafka_bootstrap, topics, flags, tmp_path / "state")
    try:
        time.sleep(3.0)
        assert ctl.thread.is_alive() and ctl.error is None
        create_topics(kafka_bootstrap, topics)
        link = CommandLink(kafka_bootstrap, topics)
        try:
            rollback = command("rollback")
            link.send(rollback)
            assert link.ack(rollback, timeout_s=60.0)["status"] == "applied"
        finally:
            link.close()
    finally:
        ctl.stop()
