"""Which responses get embedded: a budget in event time, spread over rollouts, strata and arms.

Embedding costs about 10 ms of CPU per short answer, a thousand times more than the rest of an
event's processing, so a worker embeds at most ``budget_per_s`` answers per second of **event time**
(a replay of a 30-minute recording embeds exactly what a live worker would have, in minutes).

How the budget is spent (re-planned every ``recompute_s`` of event time from event rates smoothed
with a ``rate_half_life_s`` half-life):

1. split evenly between the rollouts that currently send texts;
2. within a rollout, a share for shadow pairs (``shadow_share``, while pairs arrive), the rest for
   the live arms: half to the smaller arm (usually the canary: often every canary answer), the rest
   to the larger arm, but at most ``max_control_ratio`` times the smaller arm's samples (beyond 4:1 a
   larger control barely narrows the comparison);
3. within an arm, over strata (cells: the event's values of the ``stratify`` dimensions) with the
   square-root allocation ``q_c = min(1, sqrt(floor / rate_c))``: a cell with a hundredth of the
   traffic gets a tenth of the samples of the busiest one, so rare cohorts still reach a verdict.

Unbiasedness: whether an event is kept depends only on its (rollout, cell, arm), on event time and on
a hash of its id, never on its content; each kept event carries the weight ``1/p`` of its inclusion
probability (Horvitz-Thompson), so each arm's weighted mean estimates the mean of *all* of that arm's
traffic, however unevenly arms and cells were sampled. A token bucket (``burst_s`` seconds of budget)
enforces the cap during bursts; its refusals depend only on event time, i.e. hit both arms alike.
The decision is a hash of the event id (or of the request id for shadow pairs, so both partners of a
pair are chosen together): deterministic, order-independent within a plan, and reproducible in replay.

References
----------
- Horvitz, D. G., Thompson, D. J. (1952). A generalization of sampling without replacement from a
  finite universe. *JASA* 47(260), 663-685.
- Cochran, W. G. (1977). *Sampling Techniques*, 3rd ed. Wiley (stratified allocation).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

CONTROL: Final = 0
CANARY: Final = 1
PAIR: Final = 2
_SCALE: Final = float(1 << 64)


@dataclass(slots=True)
class _Stratum:
    rate: float = -1.0  # smoothed events/s; -1 until the first plan
    count: int = 0  # events since the last plan
    p: float = 1.0  # inclusion probability of the current plan


class BudgetSampler:
    """Decides, per offered event, whether to embed it and with which weight (``0.0`` = skip)."""

    def __init__(
        self,
        budget_per_s: float,
        *,
        burst_s: float = 10.0,
        min_cell_share: float = 0.02,
        max_control_ratio: float = 4.0,
        rate_half_life_s: float = 60.0,
        recompute_s: float = 5.0,
        shadow_share: float = 0.25,
        seed: int = 0,
    ) -> None:
        if not budget_per_s > 0:
            raise ValueError("budget_per_s must be positive")
        self.budget = float(budget_per_s)
        self.capacity = max(1.0, self.budget * burst_s)
        self.min_cell_share = min_cell_share
        self.max_ratio = max_control_ratio
        self.half_life = rate_half_life_s
        self.recompute_s = recompute_s
        self.shadow_share = shadow_share
        self.salt = int(seed).to_bytes(8, "big", signed=True)
        self.strata: dict[tuple[str, str, int], _Stratum] = {}
        self.tokens = self.capacity
        self.last_ts: float | None = None
        self.plan_ts: float | None = None
        self.counters = {"offered": 0, "selected": 0, "skipped": 0, "over_budget": 0}

    # ------------------------------------------------------------------ decisions
    def offer(self, rollout_id: str, cell: str, arm: int, ts: float, key: str, cost: int = 1) -> float:
        """``1/p`` when the event is to be embedded (``cost`` tokens spent), else ``0.0``."""
        self._advance(ts)
        self.counters["offered"] += 1
        stratum = self.strata.get((rollout_id, cell, arm))
        if stratum is None:
            stratum = self.strata[(rollout_id, cell, arm)] = _Stratum()
        stratum.count += 1
        p = stratum.p
        if p < 1.0 and self.uniform(key) >= p:
            self.counters["skipped"] += 1
            return 0.0
        if self.tokens < cost:
            self.counters["over_budget"] += 1
            return 0.0
        self.tokens -= cost
        self.counters["selected"] += 1
        return 1.0 / p

    def uniform(self, key: str) -> float:
        """A uniform number in [0, 1) from a keyed hash of ``key`` (stable across processes)."""
        digest = hashlib.blake2b(key.encode(), digest_size=8, salt=self.salt).digest()
        return int.from_bytes(digest, "big") / _SCALE

    def probability(self, rollout_id: str, cell: str, arm: int) -> float:
        stratum = self.strata.get((rollout_id, cell, arm))
        return 1.0 if stratum is None else stratum.p

    def _advance(self, ts: float) -> None:
        last = self.last_ts
        if last is None:
            self.last_ts = self.plan_ts = ts
            return
        if ts > last:
            self.tokens = min(self.capacity, self.tokens + (ts - last) * self.budget)
            self.last_ts = ts
        assert self.plan_ts is not None
        if ts - self.plan_ts >= self.recompute_s:
            self._plan(ts - self.plan_ts)
            self.plan_ts = ts

    # ------------------------------------------------------------------ planning
    def _plan(self, elapsed: float) -> None:
        decay = math.exp(-elapsed * math.log(2.0) / self.half_life)
        by_rollout: dict[str, list[tuple[str, int, _Stratum]]] = {}
        for (rollout_id, cell, arm), s in list(self.strata.items()):
            observed = s.count / elapsed
            s.rate = observed if s.rate < 0 else decay * s.rate + (1.0 - decay) * observed
            s.count = 0
            if s.rate < 1e-4:
                del self.strata[(rollout_id, cell, arm)]  # idle stratum: forget (bounded state)
                continue
            by_rollout.setdefault(rollout_id, []).append((cell, arm, s))
        if not by_rollout:
            return
        share = self.budget / len(by_rollout)
        for strata in by_rollout.values():
            self._plan_rollout(strata, share)

    def _plan_rollout(self, strata: list[tuple[str, int, _Stratum]], budget: float) -> None:
        pairs = [s for _, arm, s in strata if arm == PAIR]
        if pairs:
            pair_rate = sum(s.rate for s in pairs)
            pair_budget = budget * self.shadow_share
            p = min(1.0, pair_budget / (2.0 * pair_rate))  # a pair costs two embeddings
            for s in pairs:
                s.p = p
            budget -= 2.0 * p * pair_rate
        live = [(cell, arm, s) for cell, arm, s in strata if arm != PAIR]
        cell_rate: dict[str, float] = {}
        for cell, _, s in live:
            cell_rate[cell] = cell_rate.get(cell, 0.0) + s.rate
        total = sum(cell_rate.values())
        if total <= 0:
            return
        floor = max(self.min_cell_share * total, 1e-9)
        q = {c: min(1.0, math.sqrt(floor / r)) for c, r in cell_rate.items()}
        arms: dict[int, list[tuple[float, float, _Stratum]]] = {CONTROL: [], CANARY: []}
        for cell, arm, s in live:
            arms[arm].append((s.rate, q[cell], s))
        totals = {a: sum(r for r, _, _ in rows) for a, rows in arms.items()}
        small, large = (CONTROL, CANARY) if totals[CONTROL] < totals[CANARY] else (CANARY, CONTROL)
        if totals[small] <= 0:
            _allocate(arms[large], budget)
            return
        used = _allocate(arms[small], budget / 2.0)
        _allocate(arms[large], min(budget - used, self.max_ratio * used))

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        return {
            "v": 1,
            "tokens": self.tokens,
            "last_ts": self.last_ts,
            "plan_ts": self.plan_ts,
            "strata": [[r, c, a, s.rate, s.count, s.p] for (r, c, a), s in self.strata.items()],
            "counters": dict(self.counters),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load :meth:`to_state` output into a sampler built with the same settings."""
        if state.get("v") != 1:
            raise ValueError(f"unsupported sampler state version {state.get('v')!r}")
        self.tokens = float(state["tokens"])
        self.last_ts = state["last_ts"]
        self.plan_ts = state["plan_ts"]
        self.strata = {
            (str(r), str(c), int(a)): _Stratum(float(rate), int(n), float(p))
            for r, c, a, rate, n, p in state["strata"]
        }
        self.counters = {k: int(v) for k, v in state["counters"].items()}


def _allocate(rows: list[tuple[float, float, _Stratum]], target: float) -> float:
    """Set ``p = min(1, a·q)`` with the largest ``a`` whose expected samples/s stay within ``target``."""
    if not rows:
        return 0.0
    rate = np.array([r for r, _, _ in rows])
    q = np.array([q for _, q, _ in rows])

    def spent(a: float) -> float:
        return float(rate @ np.minimum(1.0, a * q))

    hi = 1.0 / float(q.min())  # every stratum at p = 1
    if target <= 0:
        a = 0.0
    elif spent(hi) <= target:
        a = hi
    else:
        lo = 0.0
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            if spent(mid) <= target:
                lo = mid
            else:
                hi = mid
        a = lo
    for (_, _, s), p in zip(rows, np.minimum(1.0, a * q).tolist(), strict=True):
        s.p = max(p, 1e-6)  # never exactly 0: a stratum keeps a trickle (weights stay finite)
    return spent(a)
