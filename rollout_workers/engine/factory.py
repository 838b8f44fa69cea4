"""Pick the engine a config names. vLLM is imported only when a vLLM engine is made, so the
HF engine (and everything that only needs the config) works where vLLM is not installed."""

from __future__ import annotations

from rollout_workers.engine.base import Engine
from rollout_workers.engine.config import EngineConfig


def make_engine(config: EngineConfig) -> Engine:
    if config.kind == "vllm":
        from rollout_workers.engine.vllm_engine import VLLMEngine

        return VLLMEngine(config)
    from rollout_workers.engine.hf_engine import HFEngine

    return HFEngine(config)
