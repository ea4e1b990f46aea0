"""Approved reference sets: answers that were reviewed and accepted, stored under ``models/reference/``.

A rollout's canary is compared with its concurrent control *and*, when a reference exists, with what
was approved before the rollout started (a control that has itself drifted cannot hide a canary that
drifted the same way). Layout, one file per rollout or per segment value::

    models/reference/
      <rollout_id>.jsonl            # this rollout's approved answers
      <rollout_id>.npy              # ... or a float matrix of their embeddings (n, d)
      input_class=billing.jsonl     # approved answers of one input class, for every rollout
      tenant=t3.npy                 # any <dimension>=<value> works the same way

A ``.jsonl`` row is ``{"text": "..."}`` or ``{"embedding": [...]}``, optionally with
``"segment": {"input_class": "chat"}``; a ``<dimension>=<value>`` file adds that pair to every row's
segment. A row counts for a cohort when its segment agrees with every dimension of the cohort's scope,
so a rollout-wide file without segments serves the whole-rollout cohort only. Texts are embedded once,
when the rollout is first seen, with the same model as the responses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson

FloatArray = npt.NDArray[np.float32]


class ReferenceSetError(ValueError):
    """A reference file that cannot be read; the message names the file and line."""


@dataclass
class ReferenceSet:
    """Embeddings of approved answers with the segment each belongs to."""

    vectors: FloatArray
    segments: list[dict[str, str]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def matching(self, scope: dict[str, str]) -> FloatArray:
        """Rows whose segment agrees with every dimension of ``scope``."""
        if not scope:
            return self.vectors
        keep = [all(seg.get(k) == v for k, v in scope.items()) for seg in self.segments]
        out: FloatArray = self.vectors[np.asarray(keep, dtype=bool)]
        return out


def reference_files(directory: str | Path, rollout_id: str) -> list[Path]:
    """The files that apply to ``rollout_id``: its own, then every ``<dimension>=<value>`` file."""
    d = Path(directory)
    if not d.is_dir():
        return []
    own = [d / f"{rollout_id}{ext}" for ext in (".jsonl", ".npy")]
    scoped = sorted(p for p in d.iterdir() if p.suffix in (".jsonl", ".npy") and "=" in p.stem)
    return [p for p in own if p.is_file()] + scoped


def load_reference(
    directory: str | Path, rollout_id: str, embed: Callable[[list[str]], FloatArray] | None
) -> ReferenceSet | None:
    """All reference rows for a rollout (``None`` when there are none). Texts need ``embed``."""
    vectors: list[FloatArray] = []
    segments: list[dict[str, str]] = []
    sources: list[str] = []
    for path in reference_files(directory, rollout_id):
        base: dict[str, str] = {}
        if "=" in path.stem:
            dim, value = path.stem.split("=", 1)
            base = {dim: value}
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
            if arr.ndim != 2:
                raise ReferenceSetError(f"{path}: expected a 2-d array of embeddings, got shape {arr.shape}")
            vectors.append(_normalise(arr))
            segments.extend(dict(base) for _ in range(arr.shape[0]))
        else:
            texts: list[str] = []
            text_segments: list[dict[str, str]] = []
            rows: list[list[float]] = []
            row_segments: list[dict[str, str]] = []
            for lineno, line in enumerate(path.read_bytes().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ReferenceSetError(f"{path}:{lineno}: not valid JSON: {exc}") from exc
                if not isinstance(obj, dict):
                    raise ReferenceSetError(f"{path}:{lineno}: a row must be a JSON object")
                seg = obj.get("segment") or {}
                if not isinstance(seg, dict) or not all(isinstance(v, str) for v in seg.values()):
                    raise ReferenceSetError(f"{path}:{lineno}: segment must be an object of strings")
                seg = {**seg, **base}
                if isinstance(obj.get("embedding"), list):
                    rows.append([float(x) for x in obj["embedding"]])
                    row_segments.append(seg)
                elif isinstance(obj.get("text"), str):
                    texts.append(obj["text"])
                    text_segments.append(seg)
                else:
                    raise ReferenceSetError(f"{path}:{lineno}: a row needs 'text' or 'embedding'")
            if rows:
                vectors.append(_normalise(np.asarray(rows, dtype=np.float32)))
                segments.extend(row_segments)
            if texts:
                if embed is None:
                    raise ReferenceSetError(f"{path}: holds texts but no embedding model is available")
                vectors.append(_normalise(embed(texts)))
                segments.extend(text_segments)
        sources.append(path.name)
    if not vectors:
        return None
    dims = {v.shape[1] for v in vectors}
    if len(dims) != 1:
        raise ReferenceSetError(
            f"reference embeddings of {rollout_id!r} have different dimensions: {sorted(dims)}"
        )
    return ReferenceSet(np.concatenate(vectors).astype(np.float32), segments, sources)


def _normalise(x: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    out: FloatArray = (arr / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    return out
