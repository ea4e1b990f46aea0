"""The semantic side of the engine: sampling, batched embedding, drift monitors and shadow pairing.

API (what :class:`rollguard.detect.engine.Engine` calls)
-------------------------------------------------
- ``check_model(config)``: at start; raises :class:`~rollguard.embeddings.embedder.EmbeddingModelError`
  when ``embeddings.enabled: true`` and the model is unusable (``auto`` falls back quietly to
  upstream ``response_embedding`` only; ``false`` skips embeddings).
- ``SemanticEngine.create(config, embedder=None)``: one per engine (per worker), built at the first
  event that carries ``response_text``/``response_embedding`` or is a shadow event.
- ``process(event, phase) -> list[VerdictChange]``: every released event (event-time order).
- ``flush() -> list[VerdictChange]``: embed what is queued and re-read the tests (end of stream).
- ``counters() -> dict``: sampling, embedding and pairing counts (for summaries and benchmarks).
- ``to_state()`` / ``SemanticEngine.from_state(state, config, embedder)``: JSON-compatible state.

Flow: a live event with a text is offered to the :class:`~rollguard.embeddings.sampler.BudgetSampler`
(stratum = its rollout, cell and arm); a kept one joins the queue with its weight ``1/p``; an event that
carries ``response_embedding`` joins it as is (weight 1, no budget spent). The queue is embedded in one
``encode`` call when it holds ``batch_size`` texts or its oldest entry is ``max_batch_delay_s`` old in
event time, then each rollout's :class:`~rollguard.embeddings.semantic_drift.SemanticMonitor` takes its
vectors and re-reads its tests. Shadow events and every live event of a rollout that has shadow
traffic go through the rollout's :class:`~rollguard.embeddings.shadow.ShadowPairer`; completed pairs
feed the paired scalar tests at once and, when sampled (by request id, both partners together), the
paired embedding test. Everything is a function of the events: no clock, no randomness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from rollguard.domain.events import Event
from rollguard.domain.verdicts import VerdictChange
from rollguard.embeddings.embedder import Embedder, EmbeddingModelError, load_embedder
from rollguard.embeddings.reference import ReferenceSet, ReferenceSetError, load_reference
from rollguard.embeddings.sampler import CANARY, CONTROL, PAIR, BudgetSampler
from rollguard.embeddings.semantic_drift import SemanticMonitor
from rollguard.embeddings.shadow import Half, Pair, ShadowComparison, ShadowPairer
from rollguard.settings.config import Config

FloatArray = npt.NDArray[np.float32]
OTHER_CELL: Final = "~other"


def check_model(config: Config) -> tuple[Embedder | None, str | None]:
    """The embedder the config asks for (weights not loaded yet) and why there is none: ``(None, None)``
    when embeddings are off, ``(None, reason)`` when ``enabled: auto`` and the model is unavailable.
    With ``enabled: true`` a missing model raises here, at start."""
    mode = config.embeddings.enabled
    if mode == "false":
        return None, None
    try:
        return load_embedder(config.embeddings.model_config), None
    except EmbeddingModelError as exc:
        if mode == "true":
            raise
        return None, str(exc)


@dataclass(slots=True)
class _Job:
    """Texts or vectors waiting to be embedded: one live answer, or both halves of a shadow pair."""

    rollout_id: str
    ts: float
    arm: int  # CONTROL, CANARY or PAIR
    segment: dict[str, str]
    weight: float
    texts: list[str | None]
    vectors: list[FloatArray | None]


class SemanticEngine:
    """Semantic drift and shadow comparison for every rollout of one worker."""

    def __init__(self, config: Config, embedder: Embedder | None = None, *, model_error: str | None = None):
        self.config = config
        es = config.embeddings
        self.embeddings_on = es.enabled != "false"
        self.embedder = embedder
        self.model_error = model_error
        self.sampler = BudgetSampler(
            es.budget_per_s, burst_s=es.burst_s, min_cell_share=es.min_cell_share,
            max_control_ratio=es.max_control_ratio, rate_half_life_s=es.rate_half_life_s,
            recompute_s=es.recompute_s, shadow_share=config.shadow.embed_share, seed=es.seed,
        )  # fmt: skip
        self.monitors: dict[str, SemanticMonitor] = {}
        self.pairers: dict[str, ShadowPairer] = {}
        self.comparisons: dict[str, ShadowComparison] = {}
        self.phases: dict[str, str] = {}
        self.variants: dict[str, str] = {}
        self.cells: dict[str, set[str]] = {}
        self.queue: list[_Job] = []
        self.queued_texts = 0
        self.due_ts: float | None = None  # event time at which the queue must be processed
        self.pairs_waiting: set[str] = set()  # rollouts with scalar pairs not yet evaluated
        self.last_ts = -np.inf
        self.errors: list[str] = []
        self._counters = {"texts": 0, "upstream_embeddings": 0, "embedded": 0, "encode_calls": 0,
                          "no_model": 0, "dimension_mismatch": 0, "resets": 0}  # fmt: skip

    @classmethod
    def create(cls, config: Config, embedder: Embedder | None = None) -> SemanticEngine:
        """A hub with ``embedder`` (e.g. a test double) or the configured model (see :func:`check_model`)."""
        if embedder is not None:
            return cls(config, embedder)
        found, error = check_model(config)
        return cls(config, found, model_error=error)

    @staticmethod
    def wants(config: Config, ev: Event) -> bool:
        """Whether an event needs the semantic side at all (the engine builds it at the first one)."""
        if ev.arm == "shadow":
            return config.shadow.enabled
        return config.embeddings.enabled != "false" and (
            ev.response_text is not None or ev.response_embedding is not None
        )

    # ------------------------------------------------------------------ events in
    def process(self, ev: Event, phase: str = "canary") -> list[VerdictChange]:
        """Take one event (in event-time order); returns the verdict changes of any batch it closed."""
        rid = ev.rollout_id
        out: list[VerdictChange] = []
        if ev.arm == "canary" and ev.variant is not None:
            known = self.variants.get(rid)
            if known is not None and known != ev.variant:
                self.reset(rid)  # a new canary version: the engine starts the rollout afresh, so do we
            self.variants[rid] = ev.variant
        if ev.ts > self.last_ts:
            self.last_ts = ev.ts
        if ev.arm != "shadow":
            self.phases[rid] = phase
        if self.config.shadow.enabled and (ev.arm == "shadow" or rid in self.pairers):
            self._pairing(ev)
        if (
            ev.arm != "shadow"
            and self.embeddings_on
            and (ev.response_text is not None or ev.response_embedding is not None)
        ):
            self._offer(ev)
        if self.due_ts is not None and (
            ev.ts >= self.due_ts or self.queued_texts >= self.config.embeddings.batch_size
        ):
            out.extend(self._run(ev.ts))
        return out

    def flush(self) -> list[VerdictChange]:
        """Embed and evaluate whatever is queued, and re-read every test that got samples since its
        last reading (end of stream, or the engine's idle flush)."""
        out = self._run(float(self.last_ts)) if self.due_ts is not None else []
        for rid in sorted(self.monitors):
            out.extend(
                self.monitors[rid].evaluate(float(self.last_ts), self.phases.get(rid, "canary"), force=True)
            )
        return out

    def reset(self, rollout_id: str) -> None:
        """Forget a rollout (its canary version changed)."""
        self._counters["resets"] += 1
        self.monitors.pop(rollout_id, None)
        self.pairers.pop(rollout_id, None)
        self.comparisons.pop(rollout_id, None)
        self.queue = [j for j in self.queue if j.rollout_id != rollout_id]
        self.queued_texts = sum(sum(t is not None for t in j.texts) for j in self.queue)
        self.pairs_waiting.discard(rollout_id)

    def _schedule(self, ts: float) -> None:
        if self.due_ts is None:
            self.due_ts = ts + self.config.embeddings.max_batch_delay_s

    def _cell(self, rid: str, segment: dict[str, str]) -> str:
        dims = self.config.embeddings.stratify
        keys = sorted(segment) if dims is None else [d for d in dims if d in segment]
        cell = ",".join(f"{k}={segment[k]}" for k in keys)
        known = self.cells.setdefault(rid, set())
        if cell not in known:
            if len(known) >= self.config.embeddings.max_cells:
                return OTHER_CELL
            known.add(cell)
        return cell

    def _monitor(self, rid: str) -> SemanticMonitor:
        mon = self.monitors.get(rid)
        if mon is None:
            mon = self.monitors[rid] = SemanticMonitor(
                rid, self.config.embeddings, self.config.segments, self.config.engine, self._reference(rid)
            )
        return mon

    def _reference(self, rid: str) -> ReferenceSet | None:
        embed = self.embedder.encode if self.embedder is not None else None
        try:
            return load_reference(self.config.embeddings.reference_dir, rid, embed)
        except (ReferenceSetError, OSError, ValueError) as exc:
            if len(self.errors) < 100:  # bounded: a summary, not a log
                self.errors.append(f"reference for {rid!r} ignored: {exc}")
            return None

    def _offer(self, ev: Event) -> None:
        rid = ev.rollout_id
        self._monitor(rid)
        arm = CONTROL if ev.arm == "control" else CANARY
        if ev.response_embedding is not None:
            self._counters["upstream_embeddings"] += 1
            vec = _unit(ev.response_embedding)
            self.queue.append(_Job(rid, ev.ts, arm, ev.segment, 1.0, [None], [vec]))
            self._schedule(ev.ts)
            return
        self._counters["texts"] += 1
        if self.embedder is None:
            self._counters["no_model"] += 1
            return
        weight = self.sampler.offer(rid, self._cell(rid, ev.segment), arm, ev.ts, ev.event_id)
        if weight > 0.0:
            self.queue.append(_Job(rid, ev.ts, arm, ev.segment, weight, [ev.response_text], [None]))
            self.queued_texts += 1
            self._schedule(ev.ts)

    def _pairing(self, ev: Event) -> None:
        rid = ev.rollout_id
        pairer = self.pairers.get(rid)
        if pairer is None:
            pairer = self.pairers[rid] = ShadowPairer(self.config.shadow, keep_text=self.embeddings_on)
            self.comparisons[rid] = ShadowComparison(rid, self.config.shadow, self.config.segments,
                                                     self.config.engine)  # fmt: skip
        pair = pairer.add(ev)
        if pair is None:
            return
        self.comparisons[rid].observe_scalars(pair)
        self.pairs_waiting.add(rid)
        self._schedule(ev.ts)
        if self.embeddings_on:
            self._offer_pair(rid, ev.ts, pair)

    def _offer_pair(self, rid: str, ts: float, pair: Pair) -> None:
        halves = (pair.live, pair.shadow)
        if any(h.text is None and h.embedding is None for h in halves):
            return
        texts: list[str | None] = [h.text if h.embedding is None else None for h in halves]
        vectors: list[FloatArray | None] = [
            None if h.embedding is None else _unit(h.embedding) for h in halves
        ]
        cost = sum(t is not None for t in texts)
        weight = 1.0
        if cost:
            if self.embedder is None:
                return
            weight = self.sampler.offer(
                rid, self._cell(rid, pair.live.segment), PAIR, ts, pair.request_id, cost
            )
            if weight <= 0.0:
                return
        self.queue.append(_Job(rid, ts, PAIR, pair.live.segment, weight, texts, vectors))
        self.queued_texts += cost
        _drop_texts(halves)

    # ------------------------------------------------------------------ batches
    def _run(self, now: float) -> list[VerdictChange]:
        queue, self.queue = self.queue, []
        self.queued_texts = 0
        self.due_ts = None
        todo = [
            (j, h) for j in queue for h, t in enumerate(j.texts) if t is not None and j.vectors[h] is None
        ]
        if todo:
            assert self.embedder is not None
            texts = [j.texts[h] or "" for j, h in todo]
            vecs = self.embedder.encode(texts)
            self._counters["embedded"] += len(texts)
            self._counters["encode_calls"] += 1
            for (j, h), v in zip(todo, vecs, strict=True):
                j.vectors[h] = v
                j.texts[h] = None  # the text is no longer needed (and never leaves this module)
        out: list[VerdictChange] = []
        by_rollout: dict[str, list[_Job]] = {}
        for j in queue:
            by_rollout.setdefault(j.rollout_id, []).append(j)
        for rid in sorted(set(by_rollout) | self.pairs_waiting):
            jobs = by_rollout.get(rid, [])
            mon = self.monitors.get(rid)
            live = [j for j in jobs if j.arm != PAIR]
            if mon is not None and live:
                live = self._same_dim(mon, live)
                if live:
                    mon.observe(
                        now,
                        [j.arm for j in live],
                        [j.segment for j in live],
                        _stack(live, 0),
                        [j.weight for j in live],
                    )
                out.extend(mon.evaluate(now, self.phases.get(rid, "canary")))
            pairs = [j for j in jobs if j.arm == PAIR]
            comp = self.comparisons.get(rid)
            if comp is None:
                continue
            if pairs and mon is not None and mon.fmap is not None:
                pairs = self._same_dim(mon, pairs)
                if pairs:
                    live_v, shadow_v = _stack(pairs, 0), _stack(pairs, 1)
                    f_live, _ = mon.fmap.transform(live_v)
                    f_shadow, _ = mon.fmap.transform(shadow_v)
                    cos = 1.0 - (live_v.astype(np.float64) * shadow_v).sum(axis=1)
                    for i, j in enumerate(pairs):
                        comp.observe_embeddings(
                            j.ts, j.segment, f_shadow[i] - f_live[i], j.weight, float(cos[i])
                        )
            out.extend(comp.evaluate(now, self.pairers[rid].counters))
        self.pairs_waiting.clear()
        return out

    def _same_dim(self, mon: SemanticMonitor, jobs: list[_Job]) -> list[_Job]:
        """Drop vectors whose dimension differs from the rollout's (an upstream model mismatch), counted."""
        dim = mon.fmap.input_dim if mon.fmap is not None else None
        if dim is None and mon.warm:
            dim = mon.warm[0].shape[1]
        if dim is None:
            dim = int(jobs[0].vectors[0].shape[0])  # type: ignore[union-attr]
        keep = [j for j in jobs if all(v is not None and v.shape[0] == dim for v in j.vectors)]
        self._counters["dimension_mismatch"] += len(jobs) - len(keep)
        return keep

    # ------------------------------------------------------------------ reporting and state
    def counters(self) -> dict[str, Any]:
        return {
            **self._counters,
            "sampler": dict(self.sampler.counters),
            "monitors": {rid: dict(m.counters) for rid, m in sorted(self.monitors.items())},
            "shadow": {rid: dict(p.counters) for rid, p in sorted(self.pairers.items())},
            "pending_pairs": sum(len(p.pending) for p in self.pairers.values()),
            "errors": list(self.errors),
            "model_error": self.model_error,
        }

    def to_state(self) -> dict[str, Any]:
        """JSON-compatible state (queued texts included: they are embedded after a restore)."""
        return {
            "v": 1,
            "sampler": self.sampler.to_state(),
            "monitors": {rid: m.to_state() for rid, m in self.monitors.items()},
            "pairers": {rid: p.to_state() for rid, p in self.pairers.items()},
            "comparisons": {rid: c.to_state() for rid, c in self.comparisons.items()},
            "phases": dict(self.phases),
            "variants": dict(self.variants),
            "cells": {rid: sorted(c) for rid, c in self.cells.items()},
            "queue": [
                [
                    j.rollout_id,
                    j.ts,
                    j.arm,
                    j.segment,
                    j.weight,
                    j.texts,
                    [None if v is None else v.tolist() for v in j.vectors],
                ]
                for j in self.queue
            ],
            "due_ts": self.due_ts,
            "pairs_waiting": sorted(self.pairs_waiting),
            "last_ts": float(self.last_ts) if np.isfinite(self.last_ts) else None,
            "counters": dict(self._counters),
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        config: Config,
        embedder: Embedder | None = None,
        model_error: str | None = None,
    ) -> SemanticEngine:
        if state.get("v") != 1:
            raise ValueError(f"unsupported semantic engine state version {state.get('v')!r}")
        hub = cls(config, embedder, model_error=model_error)
        hub.sampler.restore(state["sampler"])
        for rid, raw in state["monitors"].items():
            hub.monitors[rid] = SemanticMonitor.from_state(
                raw, config.embeddings, config.segments, config.engine, hub._reference(rid)
            )
        for rid, raw in state["pairers"].items():
            hub.pairers[rid] = ShadowPairer.from_state(raw, config.shadow, keep_text=hub.embeddings_on)
        for rid, raw in state["comparisons"].items():
            hub.comparisons[rid] = ShadowComparison.from_state(
                raw, rid, config.shadow, config.segments, config.engine
            )
        hub.phases = dict(state["phases"])
        hub.variants = dict(state["variants"])
        hub.cells = {rid: set(c) for rid, c in state["cells"].items()}
        hub.queue = [
            _Job(str(r), float(ts), int(arm), dict(seg), float(w), list(texts),
                 [None if v is None else np.asarray(v, dtype=np.float32) for v in vecs])
            for r, ts, arm, seg, w, texts, vecs in state["queue"]
        ]  # fmt: skip
        hub.queued_texts = sum(sum(t is not None for t in j.texts) for j in hub.queue)
        hub.due_ts = state["due_ts"]
        hub.pairs_waiting = set(state["pairs_waiting"])
        hub.last_ts = -np.inf if state["last_ts"] is None else float(state["last_ts"])
        hub._counters = {k: int(v) for k, v in state["counters"].items()}
        return hub


def _stack(jobs: list[_Job], half: int) -> FloatArray:
    rows: list[FloatArray] = []
    for j in jobs:
        v = j.vectors[half]
        assert v is not None
        rows.append(v)
    return np.stack(rows)


def _unit(values: Any) -> FloatArray:
    v = np.asarray(values, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    out: FloatArray = v / norm if norm > 0 else v
    return out


def _drop_texts(halves: tuple[Half, Half]) -> None:
    for h in halves:
        h.text = None
