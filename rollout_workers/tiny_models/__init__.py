"""Tiny models for CPU runs and tests: Revisor's own tokenizer, a Llama causal LM, a LLaVA
vision-language model and a Llama-3.2-Vision (Mllama) one, built from presets and saved like
any checkpoint."""

from rollout_workers.tiny_models.build import build_model, count_parameters, save_tiny_model
from rollout_workers.tiny_models.cli import cli, tiny_model_main
from rollout_workers.tiny_models.presets import LM_PRESETS, SIZES, VISION_PRESETS
from rollout_workers.tiny_models.tokenizer import CHAT_TEMPLATE, IMAGE_TOKEN, build_tokenizer

__all__ = [
    "CHAT_TEMPLATE", "IMAGE_TOKEN", "LM_PRESETS", "SIZES", "VISION_PRESETS", "build_model",
    "build_tokenizer", "cli", "count_parameters", "save_tiny_model", "tiny_model_main",
]
