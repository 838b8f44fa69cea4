"""Engine settings: the one place their defaults live."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EngineKind = Literal["vllm", "hf"]
DType = Literal["float32", "bfloat16", "float16"]


class RolloutEngineConfig(BaseModel):
    """How a rollout worker runs its policy model.

    `model` is a checkpoint directory (a tiny model from `revisor tiny-model`, a learner
    export, or any Hugging Face checkpoint on disk); both engines load it by path.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: EngineKind = "vllm"
    """'vllm' for rollouts; 'hf' (Hugging Face generate) for debugging and for models vLLM
    cannot serve. A 'vllm' config for such a model (Mllama) gets the HF engine, with the
    reason in the log and in the engine report (rollout_workers.engine.factory.VLLM_UNSERVABLE)."""
    model: Path
    dtype: DType = "float32"
    seed: int = 0
    max_model_len: int = Field(2048, ge=16)
    """Longest prompt + answer in tokens (the whole sequential-revision dialogue)."""
    kv_cache_bytes: int | None = Field(256 << 20, ge=1 << 20)
    """vLLM KV cache size. Always set on CPU (vLLM otherwise takes 90% of RAM); None on a GPU
    lets vLLM size it from `gpu_memory_utilization`."""
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    in_process: bool = True
    """vLLM only: run the engine core inside the calling process (starts in ~3 s on CPU
    instead of ~20 s, and the worker owns one process per engine). False: a separate engine
    core process, as vLLM runs by default. Ignored (always False) with the Transformers
    backend, which rewrites Hugging Face model classes for the whole process it runs in."""
    model_impl: Literal["auto", "vllm", "transformers"] = "auto"
    """vLLM only: 'vllm' is vLLM's own implementation of the architecture; 'transformers' its
    Transformers backend (serves any Hugging Face model, slower). 'auto' takes vLLM's own
    when it can be imported here: vLLM's LLaVA needs torchvision, which CPU installs lack."""
    max_num_seqs: int = Field(256, ge=1)
    """vLLM only: sequences decoded together in one step."""
    enable_prefix_caching: bool = True
    """vLLM only: sequential revision re-sends the whole dialogue each turn, so the cached
    prefix saves most of the prompt work."""
    chunked_prefill: bool = False
    """vLLM only: split a step's prompts across several engine steps. Off by default: on
    vLLM's CPU build a seeded request whose prompt gets split crashes the engine (the CPU
    random generator has no offset to rewind)."""
    tensor_parallel_size: int = Field(1, ge=1)
    enforce_eager: bool = True
    """vLLM only: skip graph capture and compilation (slow to start, little gain for tiny
    models or CPU)."""
    max_images_per_prompt: int = Field(1, ge=0)
    """Vision-language models: the most images one prompt may hold."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """HF only: 'auto' picks CUDA when it is available."""
