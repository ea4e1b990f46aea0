"""Print a key naming the dependency environment this checkout needs.

The heavy environment (torch alone is ~3 GB from PyPI) lives outside the checkout and is shared
by every clone on the machine whose dependency spec is the same; this key is what "the same" means:
the interpreter, the platform, the declared dependencies and the local wheels that may replace PyPI's.
With ``--requirements`` it prints the requirement lines instead, one per line.
"""

from __future__ import annotations

import hashlib
import platform
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS = Path("/opt/wheels")


def requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in sorted(project.get("optional-dependencies", {})):
        reqs.extend(project["optional-dependencies"][extra])
    return reqs


def key() -> str:
    local = sorted(p.name for p in WHEELS.glob("*.whl")) if WHEELS.is_dir() else []
    material = "\n".join(
        [sys.version, platform.machine(), platform.system(), *requirements(), "--local--", *local]
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


if __name__ == "__main__":
    if "--requirements" in sys.argv:
        print("\n".join(requirements()))
    else:
        print(key())
