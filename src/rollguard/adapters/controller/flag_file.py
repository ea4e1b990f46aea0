"""The flags file on disk: read it, and replace it atomically so a reader never sees half a file.

A write goes to a temporary file in the same directory (same filesystem, so the rename is atomic),
which is flushed and fsynced, given the original's permissions, renamed over the original, and the
directory is fsynced so the rename survives a crash. Two more guards:

- compare-and-swap: just before the rename the file must still hold the bytes the edit was computed
  from; if someone (a person, another tool) changed it meanwhile, :class:`FlagFileChanged` is raised
  and the caller recomputes from the new content (the window left is the rename itself);
- the new file's modification time is strictly later than the old one's: the flagd providers' FILE
  mode polls ``mtime`` and reloads only when it grows, so two writes within one filesystem clock tick
  must not look like one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

_MIN_MTIME_STEP_NS = 1_000_000  # 1 ms: far above float mtime resolution (~0.5 µs today)


class FlagFileError(Exception):
    """The flags file cannot be read as flag definitions (a JSON object)."""


class FlagFileChanged(Exception):
    """The file changed between the read an edit was computed from and the write."""


def read_flags(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The file's bytes and its JSON object."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FlagFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FlagFileError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise FlagFileError(f"{path} must hold a JSON object of flag definitions")
    return raw, doc


def encode_flags(document: dict[str, Any]) -> bytes:
    """The bytes written: indented JSON, keys in their original order, a final newline."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def replace_flags(path: Path, document: dict[str, Any], expected: bytes) -> bytes:
    """Atomically replace the file with ``document`` if it still holds ``expected``; returns the new bytes.

    Raises :class:`FlagFileChanged` when it no longer holds ``expected``, ``OSError`` when it cannot be
    written (the original is then untouched)."""
    data = encode_flags(document)
    old = os.stat(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), old.st_mode & 0o7777)
            now_ns = time.time_ns()
            mtime = max(now_ns, old.st_mtime_ns + _MIN_MTIME_STEP_NS)
            os.utime(f.fileno(), ns=(mtime, mtime))
            os.fsync(f.fileno())
        if path.read_bytes() != expected:
            raise FlagFileChanged(str(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return data
