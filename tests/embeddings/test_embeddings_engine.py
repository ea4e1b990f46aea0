"""The engine with response texts: budgeted, batched embedding; verdicts naming the cohort; no text out."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import orjson
from embedding_helpers import RefusingEmbedder, WordEmbedder, events_of

from rollguard.detect.engine import Engine
from rollguard.domain.events import Event
from rollguard.domain.verdicts import VerdictChange
from rollguard.embeddings.semantic_engine import SemanticEngine
from rollguard.settings.config import Config, parse_config
from rollguard.sim import generate, get_scenario

ONSET = 240.0


@functools.cache
def register_events() -> list[Event]:
    """10 minutes, 20 requests/s, 30% canary; the canary's chat answers hedge from minute 4."""
    sc = get_scenario("text_register", seed=2, duration_s=600, rate_per_s=20, canary_weight=0.3,
                      start_s=ONSET)  # fmt: skip
    return list(events_of(generate(sc)))


@functools.cache
def register_changes() -> list[VerdictChange]:
    return engine_with(WordEmbedder()).process_many(register_events())


def engine_with(embedder: Any, config: Config | None = None) -> Engine:
    engine = Engine(config or Config())
    engine.semantic = SemanticEngine.create(engine.config, embedder)
    return engine


def semantic(changes: list[VerdictChange]) -> list[VerdictChange]:
    return [c for c in changes if c.metric.startswith("semantic_drift")]


def test_the_cohort_whose_register_changed_is_named_while_the_others_are_not() -> None:
    changes = semantic(register_changes())
    regressed = {c.cohort: c for c in changes if c.state == "regressed"}
    assert "input_class=chat" in regressed
    assert not {"input_class=coding", "input_class=summarization", "input_class=billing"} & set(regressed)
    hit = regressed["input_class=chat"]
    assert hit.ts - register_events()[0].ts > ONSET
    assert hit.phase == "canary"


def test_verdicts_never_carry_response_text() -> None:
    events = register_events()
    changes = register_changes()
    blob = orjson.dumps([c.to_dict() for c in semantic(changes)]).decode()
    fragments = {ev.response_text[:20] for ev in events if ev.response_text and len(ev.response_text) >= 20}
    assert semantic(changes) and not any(f in blob for f in fragments)


def test_the_budget_counts_event_time_and_texts_are_embedded_in_batches() -> None:
    embedder = WordEmbedder()
    hub = SemanticEngine.create(parse_config("embeddings:\n  budget_per_s: 5\n  batch_size: 32\n"), embedder)
    events = register_events()
    for ev in events:
        hub.process(ev)
    hub.flush()
    duration = events[-1].ts - events[0].ts
    assert embedder.texts <= 5 * duration + 5 * 10  # the budget, plus one burst
    assert embedder.texts >= 0.8 * 5 * duration
    assert embedder.texts / embedder.calls > 8  # batched, not one call per text
    counters = hub.counters()
    assert counters["sampler"]["selected"] == embedder.texts == counters["embedded"]


def test_the_same_events_give_the_same_decisions() -> None:
    a = [c.to_dict() for c in register_changes()]
    b = [c.to_dict() for c in engine_with(WordEmbedder()).process_many(register_events())]
    assert a == b


def test_upstream_embeddings_are_used_as_they_are() -> None:
    rng = np.random.default_rng(0)
    centre = {"chat": rng.standard_normal(16), "coding": rng.standard_normal(16)}
    events = []
    for i, ev in enumerate(register_events()[:5000]):
        if ev.arm == "shadow" or ev.response_text is None:
            continue
        cls = ev.segment["input_class"] if ev.segment["input_class"] in centre else "coding"
        ev.response_embedding = (centre[cls] + rng.standard_normal(16)).tolist()
        ev.response_text = None if i % 2 else ev.response_text  # some carry both: the embedding wins
        events.append(ev)
    engine = engine_with(RefusingEmbedder())
    changes = semantic(engine.process_many(events))
    assert changes  # verdicts from upstream vectors, and the refusing embedder was never called
    assert engine.semantic is not None and engine.semantic.counters()["upstream_embeddings"] == len(events)


def test_a_restored_engine_continues_with_identical_semantic_decisions() -> None:
    events = register_events()[:7000]
    straight = engine_with(WordEmbedder())
    expected = [c.to_dict() for c in semantic(straight.process_many(events))]
    first = engine_with(WordEmbedder())
    got = [c for ev in events[:3500] for c in first.process(ev)]
    blob = orjson.loads(orjson.dumps(first.to_state()))
    resumed = Engine.from_state(blob)
    assert resumed.semantic is not None
    resumed.semantic.embedder = WordEmbedder()
    got += [c for ev in events[3500:] for c in resumed.process(ev)]
    got += resumed.flush()
    assert [c.to_dict() for c in semantic(got)] == expected


def test_without_texts_the_engine_never_builds_the_semantic_side() -> None:
    engine = Engine(Config())
    for ev in events_of(generate(get_scenario("aa", duration_s=60))):
        engine.process(ev)
    assert engine.semantic is None
