"""Semantic drift per cohort: fires where the canary's answers changed, quiet on A/A, explains itself."""

from __future__ import annotations

import math

import numpy as np
import orjson

from rollguard.domain.verdicts import VerdictChange
from rollguard.embeddings.features import FeatureMap
from rollguard.embeddings.reference import ReferenceSet
from rollguard.embeddings.semantic_drift import SemanticMonitor
from rollguard.settings.embeddings import EmbeddingSettings

DIM = 32
CLASSES = ("chat", "coding", "legal")
SHARES = (0.6, 0.3, 0.1)
T0 = 1_767_225_600.0


class Answers:
    """Synthetic answer embeddings: a topic centre per input class, a style direction, noise."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(1000 + seed)
        self.centres = rng.standard_normal((len(CLASSES), DIM)) * 1.5
        self.style = rng.standard_normal(DIM)
        self.rng = np.random.default_rng(seed)

    def draw(
        self, n: int, canary_share: float, drift: dict[str, float]
    ) -> tuple[list[int], list[dict[str, str]], np.ndarray]:
        cls = self.rng.choice(len(CLASSES), n, p=SHARES)
        arms = (self.rng.random(n) < canary_share).astype(int)
        x = self.centres[cls] + self.rng.standard_normal((n, DIM))
        for name, shift in drift.items():
            hit = (cls == CLASSES.index(name)) & (arms == 1)
            x[hit] += shift * self.style
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return arms.tolist(), [{"input_class": CLASSES[c]} for c in cls], x


def run(
    monitor: SemanticMonitor, answers: Answers, batches: int, drift_from: int = 0,
    drift: dict[str, float] | None = None, per_batch: int = 60, canary_share: float = 0.3,
) -> list[VerdictChange]:  # fmt: skip
    out: list[VerdictChange] = []
    for b in range(batches):
        now = T0 + 2.0 * b
        arms, segs, x = answers.draw(per_batch, canary_share, (drift or {}) if b >= drift_from else {})
        monitor.observe(now, arms, segs, x)
        out.extend(monitor.evaluate(now))
    return out


def regressed(changes: list[VerdictChange]) -> dict[str, VerdictChange]:
    first: dict[str, VerdictChange] = {}
    for c in changes:
        if c.state == "regressed":
            first.setdefault(c.cohort, c)
    return first


def test_a_change_of_style_in_one_cohort_is_regressed_there_and_nowhere_else() -> None:
    monitor = SemanticMonitor("r1", EmbeddingSettings())
    changes = run(monitor, Answers(), 300, drift={"coding": 0.8})
    hits = regressed(changes)
    assert "input_class=coding" in hits
    assert not {"input_class=chat", "input_class=legal"} & set(hits)
    change = hits["input_class=coding"]
    assert (change.kind, change.metric, change.scope) == (
        "verdict",
        "semantic_drift",
        {"input_class": "coding"},
    )


def test_same_answers_in_both_arms_never_regress_and_become_non_inferior() -> None:
    states: dict[str, str] = {}
    for seed in range(5):
        monitor = SemanticMonitor("aa", EmbeddingSettings())
        changes = run(monitor, Answers(seed), 250)
        assert not regressed(changes), seed
        for c in changes:
            states[c.cohort] = c.state
    assert states["*"] == "non_inferior"


def test_a_change_in_the_middle_of_the_canary_is_caught_by_a_recent_window() -> None:
    monitor = SemanticMonitor("r1", EmbeddingSettings())
    changes = run(monitor, Answers(1), 400, drift_from=200, drift={"chat": 0.6})
    hit = regressed(changes)["input_class=chat"]
    delay = hit.ts - (T0 + 2.0 * 200)
    assert 0 < delay < 180
    assert hit.evidence["window"] == "recent"
    assert hit.evidence["statistic"] >= hit.evidence["threshold"]


def test_evidence_is_numbers_that_explain_the_verdict() -> None:
    monitor = SemanticMonitor("r1", EmbeddingSettings())
    hit = regressed(run(monitor, Answers(), 300, drift={"coding": 1.2}))["input_class=coding"]
    ev = hit.evidence
    assert ev["n_canary"] >= 50 and ev["n_control"] >= 50
    assert ev["interval"][0] > 0 and ev["margin"] == 0.25 and ev["alpha"] < 0.001
    assert ev["method"].startswith(("mahalanobis", "windowed"))
    orjson.dumps(hit.to_dict())  # JSON-ready
    assert all(isinstance(v, int | float | str | list | bool) or v is None for v in ev.values())


def test_cumulative_evidence_names_the_cluster_that_moved() -> None:
    monitor = SemanticMonitor("r1", EmbeddingSettings())
    changes = run(monitor, Answers(2), 600)
    last = [c for c in changes if c.cohort == "*"][-1]
    assert {"cluster", "cluster_share_canary", "cluster_share_control", "centroid_cosine_distance"} <= set(
        last.evidence
    )


def test_a_restored_monitor_continues_with_identical_decisions() -> None:
    a = Answers(3)
    straight = SemanticMonitor("r1", EmbeddingSettings())
    expected = run(straight, a, 250, drift_from=150, drift={"legal": 1.0})
    b = Answers(3)
    first = SemanticMonitor("r1", EmbeddingSettings())
    got = run(first, b, 120)
    blob = orjson.loads(orjson.dumps(first.to_state()))
    resumed = SemanticMonitor.from_state(blob, EmbeddingSettings())
    got += [c for c in _continue(resumed, b, 120, 250, 150, {"legal": 1.0})]
    assert [c.to_dict() for c in got] == [c.to_dict() for c in expected]


def _continue(monitor: SemanticMonitor, answers: Answers, start: int, end: int, drift_from: int,
              drift: dict[str, float]) -> list[VerdictChange]:  # fmt: skip
    out: list[VerdictChange] = []
    for b in range(start, end):
        now = T0 + 2.0 * b
        arms, segs, x = answers.draw(60, 0.3, drift if b >= drift_from else {})
        monitor.observe(now, arms, segs, x)
        out.extend(monitor.evaluate(now))
    return out


def test_a_control_that_drifted_too_cannot_hide_the_canary_from_the_reference() -> None:
    """Both arms moved the same way: no canary-vs-control drift, but both differ from what was approved."""
    answers = Answers(4)
    _, segs, approved = answers.draw(3000, 0.0, {})
    reference = ReferenceSet(approved.astype(np.float32), segs)
    monitor = SemanticMonitor("r1", EmbeddingSettings(), reference=reference)
    changes: list[VerdictChange] = []
    for b in range(300):
        arms, segs, x = answers.draw(60, 0.3, {})
        chat = np.array([s["input_class"] == "chat" for s in segs])
        x[chat] += 0.5 * answers.style / math.sqrt(DIM)  # both arms, chat only
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        monitor.observe(T0 + 2 * b, arms, segs, x)
        changes.extend(monitor.evaluate(T0 + 2 * b))
    by_metric = {(c.metric, c.cohort) for c in changes if c.state == "regressed"}
    assert ("semantic_drift.reference", "input_class=chat") in by_metric
    assert not any(metric == "semantic_drift" for metric, _ in by_metric)


def test_the_feature_map_is_deterministic_standardised_and_sees_novelty() -> None:
    answers = Answers(5)
    _, _, x = answers.draw(400, 0.0, {})
    a = FeatureMap.fit(x, 8, 12, seed=1)
    b = FeatureMap.from_state(orjson.loads(orjson.dumps(FeatureMap.fit(x, 8, 12, seed=1).to_state())))
    fa, ca = a.transform(x)
    fb, cb = b.transform(x)
    assert np.allclose(fa, fb) and (ca == cb).all()
    assert a.dim == 8 + 11 + 2
    assert np.allclose(fa.mean(axis=0), 0.0, atol=1e-6)
    novel = np.random.default_rng(0).standard_normal((100, DIM))
    novel /= np.linalg.norm(novel, axis=1, keepdims=True)
    fn, _ = a.transform(novel)
    assert fn[:, -2:].mean() > fa[:, -2:].mean() + 1.0  # farther from every accepted answer
