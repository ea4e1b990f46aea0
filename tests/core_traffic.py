"""A tiny, fully controlled traffic source for core tests (the simulator covers realism)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from rollguard.domain.events import Event

T0 = 1_767_225_600.0


@dataclass
class Arm:
    error: float = 0.01
    latency_median: float = 800.0
    latency_sigma: float = 0.4
    eval_mean: float = 0.8


@dataclass
class Traffic:
    """Requests at ``rate`` per second; ``arms(t, segment)`` says how each arm behaves at time t."""

    rate: float = 40.0
    weight: float = 0.1
    seed: int = 1
    segments: tuple[str, ...] = ("chat", "coding", "billing")
    shares: tuple[float, ...] = (0.5, 0.3, 0.2)
    behaviour: Callable[[float, str, str], Arm] = field(default=lambda t, seg, arm: Arm())
    weight_at: Callable[[float], float] | None = None
    routed_weight_at: Callable[[float], float] | None = None
    variant_at: Callable[[float], str] | None = None
    rollout_id: str = "r1"
    n_units: int = 5000
    send_weight: bool = True  # False: events carry no canary_weight (the engine must infer the phase)

    def events(self, seconds: float) -> Iterator[Event]:
        rng = np.random.default_rng(self.seed)
        n = int(rng.poisson(self.rate * seconds))
        times = np.sort(rng.uniform(0.0, seconds, n))
        units = rng.integers(self.n_units, size=n)
        segs = rng.choice(len(self.segments), size=n, p=self.shares)
        u_fail = rng.random(n)
        z_latency = rng.standard_normal(n)
        z_eval = rng.standard_normal(n)
        # Sticky routing by unit: the unit's fixed position in [0, 1) against the routed weight.
        position = ((units * 2654435761) % 2**32) / 2**32
        for i in range(n):
            t = float(times[i])
            weight = self.weight_at(t) if self.weight_at else self.weight
            routed = self.routed_weight_at(t) if self.routed_weight_at else weight
            arm = "canary" if position[i] < routed else "control"
            seg = self.segments[int(segs[i])]
            b = self.behaviour(t, seg, arm)
            latency = float(b.latency_median * np.exp(b.latency_sigma * z_latency[i]))
            variant = self.variant_at(t) if (self.variant_at and arm == "canary") else None
            yield Event(
                event_id=f"e{i}", request_id=f"q{i}", ts=T0 + t, rollout_id=self.rollout_id, arm=arm,
                status="error" if u_fail[i] < b.error else "ok", variant=variant,
                segment={"input_class": seg}, unit_id=f"u{units[i]}",
                canary_weight=weight if self.send_weight else None,
                latency_ms=latency, ttft_ms=latency * 0.2, tokens_out=100.0, cost_usd=0.001,
                format_valid=True,
                quality={"eval_score": float(min(1.0, max(0.0, b.eval_mean + 0.1 * z_eval[i])))},
            )  # fmt: skip


def request(t: float, arm: str = "control", **fields: object) -> Event:
    """One hand-made event ``t`` seconds after T0 (status ok unless given; other fields as keywords)."""
    status = str(fields.pop("status", "ok"))
    return Event(event_id=f"e{t}-{arm}", request_id=f"q{t}-{arm}", ts=T0 + t, rollout_id="r", arm=arm,
                 status=status, **fields)  # type: ignore[arg-type]  # fmt: skip
