"""The Revisor learner: policy + value model, PPO with turn-level GAE, SFT warm start, the
DeepSpeed engine wrapper, checkpoints and weight export, and the Ray actor group of ranks.

Heavy modules (torch, DeepSpeed, Ray) load on first use, so importing a config is cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "LearnerConfig": "learner.config",
    "ModelConfig": "learner.config",
    "OptimConfig": "learner.config",
    "DeepSpeedConfig": "learner.config",
    "PPOConfig": "learner.config",
    "SFTConfig": "learner.config",
    "SFTTrainer": "learner.sft",
    "LearnerRank": "learner.rank",
    "LearnerGroup": "learner.group",
    "RankPool": "learner.group",
    "run_sft_on_ranks": "learner.group",
    "UpdateResult": "learner.group",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'learner' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
