"""Semantic drift and shadow comparison (issue 6, "Prove it"): throughput, calibration, delay, pairing.

(a) **Embedding throughput**: embeddings/s through rollguard's path (events -> budgeted sampler with the
    budget lifted -> batch queue -> ``SentenceTransformer.encode`` -> feature map -> drift statistics)
    against a raw ``SentenceTransformer.encode`` of the same texts, alternating in this process (the
    ratio is robust to how busy the machine is; absolute figures are not). Then the per-event cost of
    the default budget (20 embeddings/s of event time) at 2,000 events/s.
(b) **Drift detector** on simulated texts (``sentences`` generator: per-class templates and
    vocabularies; 40 requests/s, 10 % canary, 30 minutes, default budget and α): A/A false alarms over
    ``--runs`` runs (and the false-alarm rate at several α of the stricter "no drift at all" p-value),
    then the delay from a change of register (hedging) in the canary's ``input_class=chat`` answers at
    minute 10 to the verdict naming that cohort, in seconds and in events. To keep this affordable on 2
    cores the answers are drawn from fixed pools (200 per class and register) whose embeddings are
    computed once by the real model; the engine still "embeds" what it samples, through a cache.
(c) **Shadow pairing** under reordering (arrival jitter up to 20 s), lost copies (20 %), late partners
    (1 % beyond the wait) and an eviction bound: peak pending events and every count.

Usage: ``python benchmarks/embeddings_bench.py [--runs 100] [--delay-runs 20] [--only a,b,c]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

from msgspec.structs import replace

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy: one thread (torch threads: models/embedding.yaml)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import orjson

from rollguard.domain.events import Event, parse_event
from rollguard.embeddings.embedder import SentenceTransformerEmbedder, load_embedder
from rollguard.embeddings.semantic_engine import SemanticEngine
from rollguard.settings.config import Config, parse_config
from rollguard.sim import generate, get_scenario
from rollguard.sim.scenarios import Scenario
from rollguard.sim.text import sentence_pool

MODEL_CONFIG = "models/embedding.yaml"
CLASSES = ("chat", "coding", "summarization", "billing", "legal")
REFUSAL = "I'm sorry, but I can't help with that request."
POOL = 200


def events_of(sc: Scenario) -> list[Event]:
    out = []
    for d in generate(sc):
        ev = parse_event(d)
        assert isinstance(ev, Event)
        out.append(ev)
    return out


class TimedEmbedder:
    """The real embedder, with the time spent inside ``encode`` (to split a run's cost)."""

    name = "timed"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.texts = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.inner.encode(texts)
        self.seconds += time.perf_counter() - t0
        self.texts += len(texts)
        return out  # type: ignore[no-any-return]


class PoolEmbedder:
    """Embeddings of the answer pools, computed once by the real model; anything else is embedded."""

    name = "pool"

    def __init__(self, inner: Any, texts: list[str]) -> None:
        self.inner = inner
        self.table = dict(zip(texts, inner.encode(texts), strict=True))
        self.misses = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.table]
        if missing:
            self.misses += len(missing)
            self.table.update(zip(missing, self.inner.encode(missing), strict=True))
        return np.stack([self.table[t] for t in texts])


# ---------------------------------------------------------------------------------------------- (a)
def throughput(embedder: SentenceTransformerEmbedder, n_texts: int, rounds: int) -> None:
    print("(a) embedding throughput (same texts, same process, alternating; median of rounds)")
    sc = get_scenario("text_aa", seed=11, duration_s=120, kind="sentences")
    seen: dict[str, Event] = {}
    for ev in events_of(sc):
        if ev.response_text and ev.status == "ok" and ev.response_text not in seen:
            seen[ev.response_text] = ev
    # as a busy stream (1,000 answers per second of event time): batches fill before the 2 s flush
    first = list(seen.values())[:n_texts]
    events = [replace(ev, ts=first[0].ts + i * 0.001) for i, ev in enumerate(first)]
    texts = [ev.response_text or "" for ev in events]
    words = statistics.mean(len(t.split()) for t in texts)
    model = embedder.load()
    model.encode(texts[:64])  # warm-up (first-call allocations)
    unlimited = {"budget_per_s": 1e6, "burst_s": 1e3, "max_control_ratio": 1e6}  # embed every answer
    config = parse_config("embeddings:\n" + "".join(f"  {k}: {v}\n" for k, v in unlimited.items()))
    raw_rates, path_rates = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        model.encode(texts)
        raw_rates.append(len(texts) / (time.perf_counter() - t0))
        hub = SemanticEngine.create(config, embedder)
        t0 = time.perf_counter()
        for ev in events:
            hub.process(ev)
        hub.flush()
        elapsed = time.perf_counter() - t0
        assert hub.counters()["embedded"] == len(texts)
        path_rates.append(len(texts) / elapsed)
    raw, path = statistics.median(raw_rates), statistics.median(path_rates)
    print(f"    {len(texts)} distinct answers, {words:.0f} words on average, torch threads "
          f"{embedder.spec.threads}, encode batch {embedder.spec.batch_size}")  # fmt: skip
    print(f"    raw SentenceTransformer.encode : {raw:7.1f} embeddings/s  (rounds: "
          f"{', '.join(f'{r:.1f}' for r in raw_rates)})")  # fmt: skip
    print(f"    rollguard path                 : {path:7.1f} embeddings/s  (rounds: "
          f"{', '.join(f'{r:.1f}' for r in path_rates)})")  # fmt: skip
    print(f"    ratio rollguard / raw          : {path / raw:7.2f}x  (goal >= 0.9x)")

    rate, seconds = 2000.0, 60.0
    sc = get_scenario("text_register", seed=3, duration_s=seconds, rate_per_s=rate, kind="sentences")
    events = events_of(sc)
    timed = TimedEmbedder(embedder)
    hub = SemanticEngine.create(Config(), timed)
    t0 = time.perf_counter()
    for ev in events:
        hub.process(ev)
    hub.flush()
    total = time.perf_counter() - t0
    n = len(events)
    sampler = hub.counters()["sampler"]
    print(f"    default budget at {rate:.0f} events/s for {seconds:.0f} s of event time: {n} events, "
          f"{timed.texts} embedded ({timed.texts / seconds:.1f}/s; cap 20/s + a 10 s burst)")  # fmt: skip
    print(f"      per event: {1e6 * total / n:.1f} µs in all, {1e6 * (total - timed.seconds) / n:.1f} µs "
          f"without the model (sampling, queue, features, tests)")  # fmt: skip
    print(f"      CPU for 1 s of traffic: {total / seconds:.2f} s ({timed.seconds / seconds:.2f} s "
          f"embedding); skipped {sampler['skipped']}, over budget {sampler['over_budget']}")  # fmt: skip


# ---------------------------------------------------------------------------------------------- (b)
def pool_embedder(embedder: SentenceTransformerEmbedder) -> PoolEmbedder:
    texts = sorted({t for c in CLASSES for r in ("neutral", "hedging") for t in sentence_pool(c, r, POOL)})
    t0 = time.perf_counter()
    pool = PoolEmbedder(embedder, [*texts, REFUSAL])
    print(f"    answer pools: {len(pool.table)} texts embedded once in {time.perf_counter() - t0:.1f} s")
    return pool


def aa_runs(pool: PoolEmbedder, runs: int) -> None:
    config = Config()
    slots = config.engine.max_cohorts_per_rollout
    share = config.engine.whole_rollout_alpha_share
    alpha = config.embeddings.alpha
    levels = (0.001, 0.01, 0.05, 0.1, 0.2)
    fired = 0
    strict = dict.fromkeys(levels, 0)
    events_total, t0 = 0, time.perf_counter()
    for run in range(runs):
        sc = get_scenario("text_aa", seed=1000 + run, pool_size=POOL)
        hub = SemanticEngine.create(config, pool)
        events = events_of(sc)
        events_total += len(events)
        changes = [c for ev in events for c in hub.process(ev)] + hub.flush()
        fired += any(c.metric.startswith("semantic_drift") and c.state == "regressed" for c in changes)
        p = hub.monitors[sc.rollout_id].no_drift_p_values()
        for a in levels:
            whole, segment = a * share, a * (1 - share) / (slots - 1)
            strict[a] += any(v <= (whole if k == "*" else segment) for k, v in p.items())
    upper = 1 - (0.05 ** (1 / runs)) if fired == 0 else float("nan")
    print(f"    A/A: {runs} runs x 30 min ({events_total / runs:.0f} events each, "
          f"{time.perf_counter() - t0:.0f} s): semantic_drift regressed in {fired} runs "
          f"(α = {alpha:g} per rollout; 95% upper bound on the rate {upper:.3f})")  # fmt: skip
    print("    calibration of the stricter test of 'no drift at all' (margin 0), per rollout:")
    print("      α         " + "  ".join(f"{a:>6g}" for a in levels))
    print(
        "      false alarms " + "  ".join(f"{strict[a] / runs:6.2f}" for a in levels) + f"   (of {runs} runs)"
    )


def delay_runs(pool: PoolEmbedder, runs: int, scenario: str, cohort: str, **kw: Any) -> None:
    delays, counts, canary_counts, misses, others = [], [], [], 0, 0
    for run in range(runs):
        sc = get_scenario(scenario, seed=run, pool_size=POOL, **kw)
        onset = sc.start_ts + sc.injections[0].start_s
        hub = SemanticEngine.create(Config(), pool)
        since, canary_since, hit = 0, 0, None
        scope = dict(kv.split("=") for kv in cohort.split(","))
        for ev in events_of(sc):
            if ev.ts >= onset:
                since += 1
                canary_since += ev.arm == "canary" and all(ev.segment.get(k) == v for k, v in scope.items())
            for c in hub.process(ev):
                if c.metric == "semantic_drift" and c.state == "regressed":
                    if c.cohort == cohort and hit is None:
                        hit = (c.ts - onset, since, canary_since)
                    elif c.cohort.startswith("input_class=") and c.cohort != cohort:
                        others += 1
            if hit is not None:
                break
        if hit is None:
            misses += 1
            continue
        delays.append(hit[0])
        counts.append(hit[1])
        canary_counts.append(hit[2])
    if not delays:
        print(f"    {scenario}: no detection in {runs} runs")
        return
    q = np.percentile(delays, [50, 90, 100])
    within = sum(d <= 300 for d in delays)
    print(f"    {scenario} ({kw or 'defaults'}): {cohort} named in {len(delays)}/{runs} runs, "
          f"{within} within 5 minutes; other input classes flagged: {others}")  # fmt: skip
    print(f"      delay after onset: median {q[0]:.0f} s, p90 {q[1]:.0f} s, max {q[2]:.0f} s; "
          f"events since onset: median {np.median(counts):.0f} (canary answers in the cohort: "
          f"{np.median(canary_counts):.0f})")  # fmt: skip


def drift(embedder: SentenceTransformerEmbedder, runs: int, delay: int) -> None:
    print("(b) drift detector on simulated answers (40 requests/s, 10% canary, 30 min, default budget)")
    pool = pool_embedder(embedder)
    aa_runs(pool, runs)
    delay_runs(pool, delay, "text_register", "input_class=chat", kind="sentences")
    delay_runs(pool, max(delay // 2, 1), "text_topic", "input_class=coding", share=0.3)
    if pool.misses:
        print(f"    ({pool.misses} answers outside the pools were embedded by the model)")


# ---------------------------------------------------------------------------------------------- (c)
def shadow(max_pending: int) -> None:
    print("(c) shadow pairing: 2,000 live events/s for 120 s, copies of control requests, reordered")
    sc = get_scenario("shadow_aa", seed=4, duration_s=120, rate_per_s=2000)
    sc.shadow.missing_share = 0.2  # type: ignore[union-attr]
    events = events_of(sc)
    rng = np.random.default_rng(0)
    jitter = rng.uniform(0, 20.0, len(events))  # arrival order scrambled by up to 20 s
    late = rng.random(len(events)) < 0.01
    arrival = np.array([ev.ts for ev in events]) + jitter + np.where(late, 45.0, 0.0)  # 1% beyond 30 s
    order = np.argsort(arrival, kind="stable")
    for bound in (100_000, max_pending):
        config = parse_config(f"embeddings:\n  enabled: false\nshadow:\n  max_pending: {bound}\n")
        hub = SemanticEngine.create(config)
        peak = 0
        t0 = time.perf_counter()
        for i in order.tolist():
            hub.process(events[i])
            pending = len(hub.pairers[sc.rollout_id].pending) if hub.pairers else 0
            peak = max(peak, pending)
        hub.flush()
        elapsed = time.perf_counter() - t0
        c = hub.counters()["shadow"][sc.rollout_id]
        size = len(orjson.dumps(hub.to_state()))
        print(f"    max_pending {bound}: {len(events)} events in {elapsed:.1f} s "
              f"({len(events) / elapsed:,.0f}/s); peak pending {peak} (bound {bound}); "
              f"state {size / 1e6:.1f} MB")  # fmt: skip
        print(f"      live {c['live']}, shadow {c['shadow']}, paired {c['paired']}, unpaired live "
              f"{c['unpaired_live']}, unpaired shadow {c['unpaired_shadow']}, late partners "
              f"{c['late_partners']}, evicted {c['evicted']}, "
              f"still waiting {hub.counters()['pending_pairs']}")  # fmt: skip
        assert peak <= bound


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100, help="A/A runs (default 100)")
    ap.add_argument("--delay-runs", type=int, default=20, help="runs with a change of register (default 20)")
    ap.add_argument("--texts", type=int, default=512, help="texts for the throughput comparison")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="a,b,c", help="parts to run, e.g. 'a,c'")
    args = ap.parse_args(argv)
    parts = set(args.only.split(","))
    t0 = time.perf_counter()
    embedder = load_embedder(MODEL_CONFIG) if parts & {"a", "b"} else None
    if embedder is not None:
        embedder.load()
        print(f"model {embedder.spec.model}, loaded in {time.perf_counter() - t0:.1f} s")
    if "a" in parts and embedder is not None:
        throughput(embedder, args.texts, args.rounds)
    if "b" in parts and embedder is not None:
        drift(embedder, args.runs, args.delay_runs)
    if "c" in parts:
        shadow(max_pending=5_000)
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
