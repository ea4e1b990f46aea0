"""Fixtures for the semantic-drift and shadow tests: a cheap embedder and the real model, loaded once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from embedding_helpers import MODEL_CONFIG, WordEmbedder


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread() -> Iterator[None]:
    """One BLAS thread: on a busy 2-core machine a multi-threaded SVD of the feature-map fit spins for
    seconds instead of taking 40 ms (workers should run with OPENBLAS_NUM_THREADS=1 for the same reason)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only makes the tests faster
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def word_embedder() -> WordEmbedder:
    return WordEmbedder()


@pytest.fixture(scope="session")
def real_model() -> Iterator[Any]:
    """The configured sentence-transformers model, offline, loaded once for the session."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rollguard.embeddings.embedder import load_embedder

    embedder = load_embedder(MODEL_CONFIG)
    embedder.load()
    yield embedder
