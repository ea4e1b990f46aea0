"""Helpers for the semantic-drift and shadow tests (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rollguard.domain.events import Event, parse_event

REPO = Path(__file__).resolve().parents[2]
MODEL_CONFIG = REPO / "models" / "embedding.yaml"


class WordEmbedder:
    """Bag of words with a fixed random vector per word: fast, deterministic, and sensitive to wording
    (a hedging opener moves the vector), which is all the detector tests need from a model."""

    name = "words"

    def __init__(self, dim: int = 48) -> None:
        self.dim = dim
        self.calls = 0
        self.texts = 0
        self._words: dict[str, np.ndarray] = {}

    def _word(self, w: str) -> np.ndarray:
        v = self._words.get(w)
        if v is None:
            seed = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "big")
            v = self._words[w] = np.random.default_rng(seed).standard_normal(self.dim)
        return v

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().replace(".", " ").replace(",", " ").split():
                out[i] += self._word(w)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


class RefusingEmbedder:
    """Fails the test if anything asks it to embed (upstream embeddings must be used as they are)."""

    name = "refusing"

    def encode(self, texts: list[str]) -> np.ndarray:
        raise AssertionError(f"asked to embed {len(texts)} texts")


def events_of(dicts: Iterable[dict[str, Any]]) -> Iterator[Event]:
    for d in dicts:
        ev = parse_event(d)
        assert isinstance(ev, Event)
        yield ev
