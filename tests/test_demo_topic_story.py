"""How ``rollguard demo --kafka`` tells what it reads from the topics: records of different topics come
in no guaranteed order, and the story must still read in the order things happened."""

from __future__ import annotations

import io

import orjson
from rich.console import Console

from rollguard.demo import demo_scenario, intro_of
from rollguard.demo_kafka import TopicStory
from rollguard.terminal.story import StoryTeller

NAMES = {"events": "e", "control": "c", "acks": "a", "alerts.critical": "x.critical",
         "alerts.warning": "x.warning", "alerts.info": "x.info"}  # fmt: skip


def _story() -> tuple[TopicStory, io.StringIO]:
    sc = demo_scenario("error_spike_coding", 30.0, 7)
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False, color_system=None)
    teller = StoryTeller(console, intro_of(sc, 1000, "here"), controller="the flagd controller")
    return TopicStory(teller, NAMES, sc.rollout_id, sc.start_ts), out


def _command(story: TopicStory) -> dict[str, object]:
    return {"rollout_id": story.rollout_id, "command_id": "cmd-1", "action": "disable_scope",
            "scope": {"input_class": "coding"}, "issued_at": story.clock + 60,
            "expires_at": story.clock + 960}  # fmt: skip


def test_an_ack_read_before_its_command_is_told_after_it_with_the_commands_action() -> None:
    story, out = _story()
    ack = {"rollout_id": story.rollout_id, "command_id": "cmd-1", "status": "applied", "reason": "done"}
    story.record("a", orjson.dumps(ack))
    assert "ACK" not in out.getvalue()
    story.record("c", orjson.dumps(_command(story)))
    text = out.getvalue()
    told = "ACK applied by the flagd controller: disable_scope cmd-1"
    assert text.index("COMMAND disable_scope") < text.index(told)
    assert "the canary is off for input_class=coding only" in text


def test_an_ack_whose_command_never_came_is_still_told_at_the_end() -> None:
    story, out = _story()
    ack = {"rollout_id": story.rollout_id, "command_id": "cmd-9", "status": "rejected", "reason": "bad"}
    story.record("a", orjson.dumps(ack))
    story.flush()
    assert "ACK rejected by the flagd controller:  cmd-9" in out.getvalue()


def test_records_of_other_rollouts_and_unreadable_records_are_passed_over() -> None:
    story, out = _story()
    story.record("c", b"\xff not json")
    story.record("c", orjson.dumps({**_command(story), "rollout_id": "someone-else"}))
    story.flush()
    assert "COMMAND" not in out.getvalue() and "ACK" not in out.getvalue()
