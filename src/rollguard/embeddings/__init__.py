"""Semantic drift and shadow comparison: what scalar metrics cannot see (issue 6).

See :mod:`rollguard.embeddings.semantic_engine` for the API the engine calls. This package imports no
model code at import time: sentence-transformers (and torch) load only when a text must be embedded.
"""
