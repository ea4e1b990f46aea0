"""Commands shown in README.md, so that tests run what a reader would type (with their own ports and
paths swapped in), and a README command nobody runs fails a test instead of rotting."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_command(prefix: str) -> list[str]:
    """The first line of a ```sh block in README.md that starts with ``prefix``, split like a shell."""
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.splitlines():
            if line.startswith(prefix):
                return shlex.split(line.split("  #")[0])
    raise AssertionError(f"README.md shows no command starting with {prefix!r}")


def with_options(argv: list[str], values: dict[str, str]) -> list[str]:
    """``argv`` with the values of the options named in ``values`` (``--opt value`` or ``--opt=value``)
    replaced; each must be there."""
    out = list(argv)
    for option, value in values.items():
        for i, arg in enumerate(out):
            if arg.startswith(option + "="):
                out[i] = f"{option}={value}"
                break
            if arg == option:
                out[i + 1] = value
                break
        else:
            raise AssertionError(f"{' '.join(argv)!r} has no option {option}")
    return out
