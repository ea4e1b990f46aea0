"""The otlp section: how GenAI spans become events; every key optional, every mistake named by line."""

from __future__ import annotations

from config_errors import config_error

from rollguard.settings import Config, parse_config
from rollguard.settings.otlp import FlagRollout, OtlpSettings, Price


def test_without_the_section_nothing_is_read_from_a_topic_and_the_hook_names_are_the_defaults() -> None:
    settings = parse_config("otlp:\n").otlp
    assert settings == Config().otlp == OtlpSettings()
    assert settings.topic is None and "feature_flag.evaluation" in settings.flag_events
    assert settings.arm_of("any-flag", "canary") == ("any-flag", "canary")
    assert settings.arm_of("any-flag", "blue") is None


def test_flags_rename_rollouts_and_map_their_own_variants_and_prices_match_model_versions() -> None:
    settings = parse_config(
        "otlp:\n  flags:\n    chat-model: {rollout: chat-assist, variants: {'off': control, 'on': canary}}\n"
        "  prices: {gpt-4o: {input_per_1k: 0.0025, output_per_1k: 0.01}}\n"
    ).otlp
    assert settings.flags["chat-model"].rollout == "chat-assist"
    assert settings.arm_of("chat-model", "on") == ("chat-assist", "canary")
    assert settings.arm_of("other-flag", "canary") is None  # only listed flags are rollouts
    assert settings.price("gpt-4o-2024-08-06") == Price(0.0025, 0.01)
    assert isinstance(settings.flags["chat-model"], FlagRollout)


def test_mistakes_are_named_with_their_line() -> None:
    err = config_error("otlp:\n  variants: {blue: canary, green: treatment}\n")
    assert (err.line, err.field) == (2, "otlp.variants.green")
    err = config_error("otlp:\n  flags:\n    chat: {variants: {on: canary}}\n")
    assert (err.line, err.field) == (3, "otlp.flags.chat.variants.True")
    assert "quote on/off" in err.message
    err = config_error("otlp:\n  encoding: protobuf\n")
    assert (err.line, err.field) == (2, "otlp.encoding")


def test_the_worker_checks_that_held_spans_are_decided_before_idle_rollouts_move_on() -> None:
    err = config_error("worker: {idle_after_s: 10}\notlp:\n  topic: otlp_spans\n  idle_flush_s: 10\n")
    assert err.field == "otlp.idle_flush_s" and "idle_after_s" in err.message


def test_a_join_window_longer_than_the_dedup_window_is_refused_for_the_worker() -> None:
    err = config_error("engine: {dedup_window_s: 20}\notlp:\n  topic: otlp_spans\n  join_window_s: 30\n")
    assert err.field == "otlp.join_window_s" and "dedup_window_s" in err.message
    assert parse_config("engine: {dedup_window_s: 20}\notlp: {join_window_s: 30}\n").otlp.join_window_s == 30
