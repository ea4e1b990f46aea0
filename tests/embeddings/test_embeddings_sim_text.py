"""Simulated answers for the semantic tests: per-class wording, a register or topic change where injected."""

from __future__ import annotations

from typing import Any

import pytest

from rollguard.sim import Injection, ScenarioError, TextSpec, generate, get_scenario
from rollguard.sim.text import sentence_pool

HEDGES = ("I might be wrong", "It is possible that", "I am not entirely sure", "With some caveats")


def hedged(e: dict[str, Any]) -> bool:
    return any(e["response_text"].startswith(h) for h in HEDGES)


def test_sentences_change_register_only_in_the_marked_cohort_arm_and_time() -> None:
    sc = get_scenario(
        "text_register", seed=1, duration_s=240, start_s=120.0, canary_weight=0.5, kind="sentences"
    )
    ok = [e for e in generate(sc) if e["status"] == "ok"]
    t0 = sc.start_ts

    def marked(e: dict[str, Any]) -> bool:
        return e["arm"] == "canary" and e["segment"]["input_class"] == "chat" and e["ts"] - t0 >= 120

    assert all(hedged(e) for e in ok if marked(e))
    assert not any(hedged(e) for e in ok if not marked(e))


def test_each_input_class_has_its_own_wording() -> None:
    chat, coding = (
        set(" ".join(sentence_pool("chat")).split()),
        set(" ".join(sentence_pool("coding")).split()),
    )
    assert len(chat & coding) < 0.3 * min(len(chat), len(coding))


def test_off_topic_drift_reaches_the_requested_share() -> None:
    sc = get_scenario("text_topic", seed=2, duration_s=300, start_s=0.0, canary_weight=0.5, share=0.3)
    canary_coding = [e for e in generate(sc) if e["status"] == "ok" and e["arm"] == "canary"
                     and e["segment"]["input_class"] == "coding"]  # fmt: skip
    chat_words = ("suggest", "enjoy", "plan a", "works well")
    off = sum(any(w in e["response_text"] for w in chat_words) for e in canary_coding) / len(canary_coding)
    assert off == pytest.approx(0.3, abs=0.06)


def test_pools_are_finite_and_the_same_for_every_seed() -> None:
    texts = []
    for seed in (1, 2):
        sc = get_scenario("text_aa", seed=seed, duration_s=120, pool_size=50)
        texts.append({e["response_text"] for e in generate(sc) if e["status"] == "ok"})
    pooled = {
        t for c in ("chat", "coding", "summarization", "billing", "legal") for t in sentence_pool(c, size=50)
    }
    assert texts[0] <= pooled and texts[1] <= pooled
    assert len(texts[0] & texts[1]) > 100


def test_an_unknown_register_is_a_scenario_error() -> None:
    sc = get_scenario("text_aa", duration_s=30)
    sc.injections.append(Injection("text", 1.0, 0.0, params={"register": "pirate"}))
    with pytest.raises(ScenarioError, match="unknown register 'pirate'"):
        list(generate(sc))
    sc.response_text = TextSpec(kind="nope")
    with pytest.raises(ScenarioError, match="unknown 'nope'"):
        list(generate(sc))
