"""Running a rollguard command on a pseudo-terminal, as a person at a terminal would see it."""

from __future__ import annotations

import os
import pty
import re
import sys
import time
from dataclasses import dataclass

ESCAPES = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


@dataclass(frozen=True)
class TerminalRun:
    raw: str  # everything written to the terminal, escape codes included
    exit_code: int
    wall_s: float

    @property
    def text(self) -> str:
        """What was written, without the terminal's escape codes."""
        return ESCAPES.sub("", self.raw)


def run_on_terminal(argv: list[str], env: dict[str, str]) -> TerminalRun:
    """``python -m rollguard.cli *argv`` on a pseudo-terminal (``env`` added to the environment)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command on the pseudo-terminal
        os.environ.update(env)
        os.execv(sys.executable, [sys.executable, "-m", "rollguard.cli", *argv])
    chunks = []
    t0 = time.monotonic()
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    wall = time.monotonic() - t0
    return TerminalRun(b"".join(chunks).decode("utf-8", "replace"), os.waitstatus_to_exitcode(status), wall)
