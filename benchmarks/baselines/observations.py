"""Per-event observations of a metric (which rows count, and their values), shared by the baselines.

Conventions (the same for both judges): rates count every event (``error``, ``timeout``, ``refusal``)
or the events that carry the flag (``format_invalid``, ``thumbs``); latency, ttft and tokens_out are
measured on ``status == "ok"`` responses; cost on every event that carries it; quality where present.
"""

from __future__ import annotations

import numpy as np

from .columns import F64, B, EventColumns

OBSERVATIONS = (
    "error",
    "timeout",
    "refusal",
    "format_invalid",
    "latency",
    "ttft",
    "tokens_out",
    "cost",
    "eval_score",
    "thumbs",
    "log_latency",
    "log_ttft",
    "log_tokens_out",
    "log_cost",
)


def observe(cols: EventColumns, name: str) -> tuple[B, F64]:
    """``(rows, values)``: a mask of the rows where the observation exists and its value on every row."""
    ok = cols.status == 0
    if name in ("error", "timeout", "refusal"):
        code = {"error": 1, "timeout": 2, "refusal": 3}[name]
        return np.ones(len(cols), dtype=bool), (cols.status == code).astype(np.float64)
    if name == "format_invalid":
        return cols.format_valid >= 0, (cols.format_valid == 0).astype(np.float64)
    if name == "thumbs":
        return ~np.isnan(cols.thumbs), cols.thumbs
    if name == "eval_score":
        return ~np.isnan(cols.eval_score), cols.eval_score
    if name == "cost":
        return ~np.isnan(cols.cost_usd), cols.cost_usd
    if name == "log_cost":
        valid = ~np.isnan(cols.cost_usd) & (np.nan_to_num(cols.cost_usd) > 0)
        return valid, np.log(np.where(valid, cols.cost_usd, 1.0))
    base = name.removeprefix("log_")
    if base in ("latency", "ttft", "tokens_out"):
        x = {"latency": cols.latency_ms, "ttft": cols.ttft_ms, "tokens_out": cols.tokens_out}[base]
        valid = ok & ~np.isnan(x) & (np.nan_to_num(x) > 0)
        if name.startswith("log_"):
            return valid, np.log(np.where(valid, x, 1.0))
        return valid, x
    raise KeyError(f"unknown observation {name!r}; one of {OBSERVATIONS}")
