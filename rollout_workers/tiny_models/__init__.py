"""Tiny models for CPU runs and tests: Revisor's own tokenizer, a Llama causal LM, a LLaVA
vision-language model and a Llama-3.2-Vision (Mllama) one, built from presets and saved like
any checkpoint.

The builders and the tokenizer load on first use (PEP 562): importing the package, its
presets or its command line does not import torch, so `revisor tiny-model --help` answers at
once."""

from __future__ import annotations

import importlib
from typing import Any

from rollout_workers.tiny_models.cli import cli, tiny_model_main
from rollout_workers.tiny_models.presets import LM_PRESETS, SIZES, VISION_PRESETS

_HOMES = {
    "build_model": "build", "count_parameters": "build", "save_tiny_model": "build",
    "CHAT_TEMPLATE": "tokenizer", "IMAGE_TOKEN": "tokenizer", "build_tokenizer": "tokenizer",
}

__all__ = [
    "CHAT_TEMPLATE", "IMAGE_TOKEN", "LM_PRESETS", "SIZES", "VISION_PRESETS", "build_model",
    "build_tokenizer", "cli", "count_parameters", "save_tiny_model", "tiny_model_main",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
