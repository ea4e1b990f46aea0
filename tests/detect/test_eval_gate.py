"""The offline eval gate: exit 0 pass, 1 regression, 2 inconclusive, with a per-metric table and report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from rollguard.cli import main
from rollguard.detect.eval_gate import parse_item, run_gate
from rollguard.settings.config import parse_config

TRADEOFF = """
gate: {families: [guardrail, quality, cost]}
promotion:
  tradeoffs:
    - {metric: quality.eval_score.mean, max_relative_drop: 0.05,
       when: cost_usd.mean, min_relative_saving: 0.2}
"""


def _runs(
    n: int = 3000,
    *,
    seed: int = 0,
    quality: float = 0.0,
    latency: float = 1.0,
    cost: float = 1.0,
    ids: bool = True,
    only: str | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two eval runs over the same n prompts; the candidate changes as asked (in segment ``only``)."""
    rng = np.random.default_rng(seed)
    lat, score = rng.lognormal(6.5, 0.4, n), np.clip(rng.normal(0.8, 0.1, n), 0, 1)
    price, fail = rng.lognormal(-6.5, 0.3, n), rng.random(n) < 0.01
    cls = rng.choice(["chat", "coding", "billing"], n)
    runs: list[list[dict[str, Any]]] = []
    for cand in (False, True):
        r = np.random.default_rng(seed + 1 + cand)
        out = []
        for i in range(n):
            hit = cand and (only is None or cls[i] == only)
            rec: dict[str, Any] = {
                "status": "error" if fail[i] else "ok",
                "segment": {"input_class": str(cls[i])},
                "format_valid": True,
            }
            if ids:
                rec["item_id"] = f"q{i}"
            if not fail[i]:
                rec["latency_ms"] = float(lat[i] * r.lognormal(0, 0.05) * (latency if hit else 1.0))
                rec["cost_usd"] = float(price[i] * r.lognormal(0, 0.05) * (cost if hit else 1.0))
                rec["quality"] = {
                    "eval_score": float(score[i] + r.normal(0, 0.02) + (quality if hit else 0.0))
                }
            out.append(rec)
        runs.append(out)
    return runs[0], runs[1]


def _write(tmp: Path, runs: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> tuple[str, str]:
    paths = []
    for name, recs in zip(("base.jsonl", "cand.jsonl"), runs, strict=True):
        p = tmp / name
        p.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
        paths.append(str(p))
    return paths[0], paths[1]


def test_an_equivalent_candidate_passes_with_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = _write(tmp_path, _runs(8000))
    code = main(["gate", "--baseline", base, "--candidate", cand, "--out", str(tmp_path / "report.json")])
    table = capsys.readouterr().out
    assert code == 0, table
    assert "latency_ms.p95" in table and "quality.eval_score.mean" in table and "result: PASS" in table
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["result"] == "pass" and report["exit_code"] == 0
    assert {m["verdict"] for m in report["metrics"] if m["cohort"] == "*"} == {"pass"}


def test_a_slower_candidate_fails_with_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, cand = _write(tmp_path, _runs(3000, latency=1.3))
    assert main(["gate", "--baseline", base, "--candidate", cand]) == 1
    out = capsys.readouterr().out
    assert "result: REGRESSION" in out
    assert any(
        line.startswith("latency_ms.mean") and line.endswith("regression") for line in out.splitlines()
    )


def test_too_few_items_is_inconclusive_with_exit_2(tmp_path: Path) -> None:
    base, cand = _write(tmp_path, _runs(40))
    assert main(["gate", "--baseline", base, "--candidate", cand]) == 2


def test_a_regression_in_one_segment_fails_the_gate_and_names_it() -> None:
    base, cand = _runs(3000, quality=-0.1, only="coding")
    report = run_gate(
        [parse_item(x) for x in base],
        [parse_item(x) for x in cand],
        parse_config("gate: {families: [quality]}"),
    )
    assert report.exit_code == 1
    bad = {(r.cohort, r.metric) for r in report.rows if r.verdict == "regression"}
    assert ("input_class=coding", "quality.eval_score.mean") in bad
    assert ("input_class=chat", "quality.eval_score.mean") not in bad


def test_a_quality_drop_is_excused_only_by_a_stated_cost_saving(tmp_path: Path) -> None:
    cfg = tmp_path / "rollguard.yaml"
    cfg.write_text(TRADEOFF)
    base, cand = _write(tmp_path, _runs(3000, quality=-0.035, cost=0.7))
    assert main(["gate", "--baseline", base, "--candidate", cand, "--config", str(cfg)]) == 0
    cfg.write_text("gate: {families: [guardrail, quality, cost]}\n")
    assert main(["gate", "--baseline", base, "--candidate", cand, "--config", str(cfg)]) == 1
    base2, cand2 = _write(tmp_path, _runs(3000, quality=-0.035, cost=0.95))
    cfg.write_text(TRADEOFF)
    assert main(["gate", "--baseline", base2, "--candidate", cand2, "--config", str(cfg)]) == 1


def test_unpaired_runs_use_welch_and_bad_lines_are_reported(tmp_path: Path) -> None:
    base, cand = _runs(3000, ids=False)
    report = run_gate(
        [parse_item(x) for x in base],
        [parse_item(x) for x in cand],
        parse_config("gate: {families: [quality]}"),
    )
    assert report.rows[0].test == "Welch normal interval" and report.exit_code == 0
    p = tmp_path / "bad.jsonl"
    p.write_text('{"status": "ok", "quality": {"eval_score": 0.8}}\nnot json\n{"status": "weird"}\n')
    from rollguard.detect.eval_gate import read_items

    items, errors = read_items(p)
    assert len(items) == 1 and errors == ["line 2: not valid JSON", "line 3: bad status 'weird'"]


def test_bad_gate_config_is_reported_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "rollguard.yaml"
    cfg.write_text("gate:\n  alpha: 2\n")
    base, cand = _write(tmp_path, _runs(50))
    assert main(["gate", "--baseline", base, "--candidate", cand, "--config", str(cfg)]) == 2
    assert "rollguard.yaml:2: gate.alpha: must be strictly between 0 and 1" in capsys.readouterr().err
