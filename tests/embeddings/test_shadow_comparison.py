"""Paired shadow tests per cohort: a slower or differently-worded shadow is named; an A/A shadow is not."""

from __future__ import annotations

import functools

from embedding_helpers import WordEmbedder, events_of

from rollguard.domain.events import Event
from rollguard.domain.verdicts import VerdictChange
from rollguard.embeddings.semantic_engine import SemanticEngine
from rollguard.settings.config import Config
from rollguard.sim import generate, get_scenario


@functools.cache
def shadow_events(name: str, **kw: float | str) -> list[Event]:
    return list(events_of(generate(get_scenario(name, seed=5, duration_s=400, rate_per_s=20, **kw))))


def run(events: list[Event]) -> tuple[list[VerdictChange], SemanticEngine]:
    hub = SemanticEngine.create(Config(), WordEmbedder())
    out = [c for ev in events for c in hub.process(ev)]
    out += hub.flush()
    return out, hub


def test_a_shadow_that_answers_slower_and_tersely_in_one_cohort_is_named_there() -> None:
    changes, _ = run(shadow_events("shadow_text", start_s=0.0, latency=1.5, register="terse"))
    regressed = {(c.metric, c.cohort) for c in changes if c.state == "regressed"}
    assert ("shadow.latency_ms", "input_class=coding") in regressed
    assert ("shadow.embedding", "input_class=coding") in regressed
    assert not any(cohort == "input_class=chat" for _, cohort in regressed)
    hit = next(c for c in changes if c.metric == "shadow.latency_ms" and c.state == "regressed")
    assert hit.phase == "shadow" and hit.evidence["relative_effect"] > 0.3
    assert hit.evidence["paired"] > 0 and "unpaired_live" in hit.evidence


def test_an_identical_shadow_is_never_regressed_and_losses_are_counted() -> None:
    events = shadow_events("shadow_aa")
    changes, hub = run(events)
    assert not [c for c in changes if c.state == "regressed"]
    assert any(c.metric == "shadow.latency_ms" and c.state == "non_inferior" for c in changes)
    counts = hub.counters()["shadow"]["shadow_aa-5"]
    assert counts["paired"] > 2000
    # only control requests are mirrored, and 5% of their copies never arrive: those live events wait,
    # then count as unpaired (still waiting at the end of the stream: pending)
    canary = sum(ev.arm == "canary" for ev in events)
    lost = (counts["unpaired_live"] + hub.counters()["pending_pairs"] - canary) / (counts["live"] - canary)
    assert 0.03 < lost < 0.07
    # pairing starts at a rollout's first shadow event: only copies of the few requests answered just
    # before it find no live partner
    assert counts["unpaired_shadow"] <= 10
