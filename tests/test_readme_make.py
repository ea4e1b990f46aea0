"""The README's two first commands. ``make demo`` is run by tests/test_demo.py; ``make test`` is the
suite itself, so running it from inside the suite would recurse: here its preparing steps run for real
(each a no-op on a machine that has them) and the rest of its recipe is read with ``make -n``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from readme import README

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_starts_with_make_demo_and_make_test() -> None:
    first_block = README.read_text().split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.splitlines()] == [["make", "demo"], ["make", "test"]]


@pytest.mark.timeout(300)
def test_make_test_prepares_the_machine_then_lints_and_runs_every_test() -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    recipe = subprocess.run(["make", "--no-print-directory", "-n", "test"], cwd=ROOT, capture_output=True,
                            text=True, env=env, timeout=60, check=True).stdout.splitlines()  # fmt: skip
    recipe = [line.strip() for line in recipe]
    prepare = ["bash scripts/env.sh", "bash scripts/kafka.sh fetch", "bash scripts/services.sh"]
    assert recipe[:3] == prepare
    assert recipe[3:] == [
        ".venv/bin/python -m ruff check src tests benchmarks",
        ".venv/bin/python -m ruff format --check src tests benchmarks",
        ".venv/bin/python -m mypy",
        "HF_HUB_OFFLINE=1 .venv/bin/python -m pytest --doctest-modules src/rollguard tests",
    ]
    # The preparing steps, for real: the environment, Kafka and the test services are present here.
    done = subprocess.run(["make", "--no-print-directory", "env", "kafka-fetch", "services"], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=240, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
