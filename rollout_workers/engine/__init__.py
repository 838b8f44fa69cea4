"""Generation engines: token ids in, sampled token ids and their log-probs out."""

from rollout_workers.engine.base import (
    Engine,
    EngineStats,
    Generation,
    GenerationRequest,
    SamplingSettings,
)
from rollout_workers.engine.config import EngineKind, RolloutEngineConfig
from rollout_workers.engine.factory import make_engine
from rollout_workers.engine.stats import EngineReport

__all__ = [
    "Engine", "RolloutEngineConfig", "EngineKind", "EngineReport", "EngineStats", "Generation",
    "GenerationRequest", "SamplingSettings", "make_engine",
]
