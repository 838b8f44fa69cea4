"""Generation engines: token ids in, sampled token ids and their log-probs out."""

from rollout_workers.engine.base import (
    Engine,
    EngineStats,
    Generation,
    GenerationRequest,
    SamplingSettings,
)
from rollout_workers.engine.config import EngineConfig, EngineKind
from rollout_workers.engine.factory import make_engine
from rollout_workers.engine.stats import EngineReport

__all__ = [
    "Engine", "EngineConfig", "EngineKind", "EngineReport", "EngineStats", "Generation",
    "GenerationRequest", "SamplingSettings", "make_engine",
]
