"""``scripts/env.sh`` on a machine that never built rollguard, and when it seeds from an older environment.

Both README commands start with this script, and every machine CI had seen already had an environment,
so its first-run path once died silently under ``set -euo pipefail``. These tests run it from a copy of
the checkout (it rebuilds the checkout's own ``.venv``, which this test session lives in) against an
empty store in a temporary directory, with pip pointed at an unreachable index so that nothing is
downloaded: the script must get as far as installing, and then say which step failed and why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    copy = tmp_path / "checkout"
    (copy / "scripts").mkdir(parents=True)
    for name in ("env.sh", "dep_key.py"):
        shutil.copy2(ROOT / "scripts" / name, copy / "scripts" / name)
    shutil.copy2(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def _run(checkout: Path, store: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(store.parent),
        "PYTHON": _base_python(),
        "ROLLGUARD_ENV_HOME": str(store),
        # Nothing large may be downloaded: an index nobody listens on, no retries, no user config.
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    return subprocess.run(
        ["bash", "scripts/env.sh"], cwd=checkout, env=env, capture_output=True, text=True, timeout=300
    )


def _base_python() -> str:
    """The interpreter the environments are built with (not this test's .venv layer)."""
    return getattr(sys, "_base_executable", sys.executable)


def _key(checkout: Path) -> str:
    out = subprocess.run([_base_python(), "scripts/dep_key.py"], cwd=checkout, capture_output=True, text=True)
    return out.stdout.strip()


def _failed_at_pip(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    err = result.stderr
    # The ERR trap names the step: the script's line and the command that failed.
    assert "[env] failed (exit" in err and "at scripts/env.sh:" in err, err
    failed = [line for line in err.splitlines() if line.startswith("[env] failed")]
    assert len(failed) == 1 and "pip install" in failed[0], err


def test_a_first_run_on_an_empty_store_gets_as_far_as_installing(checkout: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    result = _run(checkout, store)
    _failed_at_pip(result)
    base = store / f"deps-{_key(checkout)}"
    assert "building the shared dependency environment" in result.stderr
    assert "seeding" not in result.stderr
    assert (base / "bin" / "python").exists(), "a fresh virtual environment was created"
    assert not (base / ".complete").exists()


def _older_environment(store: Path, *, scripts_name_it: bool) -> Path:
    seed = store / "deps-0000older00000"
    subprocess.run([_base_python(), "-m", "venv", "--without-pip", str(seed)], check=True)
    if not scripts_name_it:
        for f in (seed / "bin").iterdir():
            if f.name.startswith("activate") or f.name == "Activate.ps1":
                f.unlink()
    (seed / ".complete").touch()
    return seed


@pytest.mark.parametrize("scripts_name_it", [True, False], ids=["bin-scripts-name-the-seed", "none-does"])
def test_a_new_spec_is_seeded_from_the_older_environment(
    checkout: Path, tmp_path: Path, scripts_name_it: bool
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    seed = _older_environment(store, scripts_name_it=scripts_name_it)
    result = _run(checkout, store)
    _failed_at_pip(result)
    base = store / f"deps-{_key(checkout)}"
    assert f"seeding from {seed}" in result.stderr
    assert (base / "pyvenv.cfg").exists() and not (base / ".complete").exists()
    assert (seed / ".complete").exists(), "the older environment is kept"
    if scripts_name_it:
        activate = (base / "bin" / "activate").read_text()
        assert str(base) in activate and str(seed) not in activate
