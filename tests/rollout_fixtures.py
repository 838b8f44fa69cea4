"""Helpers behind the rollout tests' fixtures: tiny models on disk, a private Ray cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout_workers.tiny_models.build import save_tiny_model


def tiny_model(tmp_path_factory: pytest.TempPathFactory, kind: str = "lm") -> Path:
    """A 0.5M-parameter tiny model with random weights ('lm', or 'vlm': LLaVA architecture)."""
    return save_tiny_model(kind, "0.5m", tmp_path_factory.mktemp(f"tiny-{kind}"))
