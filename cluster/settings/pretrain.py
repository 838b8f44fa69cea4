"""Pretraining settings, and where the base model they make is kept (`revisor pretrain`).

The base is stored under `pretrain.cache_dir` in a directory named by the hash of every
setting that shapes it, so a second study or job with the same settings finds it there.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from envs.general_points.corpus import CORPUS_VERSION, CorpusConfig
from learner.config import DeepSpeedConfig, OptimConfig

BASE_RECORD = "base.json"
"""The file in a base's directory that says what made it (its key and settings)."""


class PretrainConfig(BaseModel):
    """Pretraining of the tiny model named by `tiny_model` on the generated corpus."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    corpus: CorpusConfig = CorpusConfig()
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(64, ge=1)
    optim: OptimConfig = OptimConfig(lr=3e-3, schedule="cosine", warmup_ratio=0.03)
    engine: DeepSpeedConfig = DeepSpeedConfig(micro_batch_size=32)
    seed: int = 0
    num_ranks: int | None = Field(None, ge=1)
    """Data-parallel ranks; None: learner.num_ranks. Pretraining runs before any rollout
    worker exists, so it may take every CPU (or GPU) the learner and workers later share."""
    cache_dir: Path = Path("runs/bases")
    """Where pretrained bases are kept, one directory per distinct settings."""


def base_key(pretrain: PretrainConfig, tiny_model: BaseModel) -> str:
    """A short hash of everything that shapes the base model (not where it is kept or how
    many ranks share its batches)."""
    shape = {"corpus_version": CORPUS_VERSION, "tiny_model": tiny_model.model_dump(mode="json"),
             "pretrain": pretrain.model_dump(mode="json", exclude={"cache_dir", "num_ranks"})}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:12]


def base_path(pretrain: PretrainConfig, tiny_model: BaseModel) -> Path:
    """Where the base model of these settings lives (the experiment's `model` by default)."""
    spec, key = tiny_model.model_dump(), base_key(pretrain, tiny_model)
    return pretrain.cache_dir / f"base-{spec['kind']}-{spec['size']}-{key}"
