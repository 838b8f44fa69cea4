"""The sizes of a checkpoint that decide its memory, read from its config.json alone.

`revisor plan` sizes a run before launch, often on a machine that holds no weights (the
paper configs point at an architecture-only directory), so everything here comes from the
model's config and a parameter count on the meta device: nothing is allocated.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict

from learner.config import ModelConfig


class VisionShape(BaseModel):
    """The vision tower's activation-relevant sizes (per image)."""

    model_config = ConfigDict(frozen=True)

    hidden_size: int
    layers: int
    tokens_per_image: int
    """Tokens the tower processes for one image (all tiles, class tokens included)."""


class ModelShape(BaseModel):
    """What memory estimates need to know about a model."""

    model_config = ConfigDict(frozen=True)

    model_type: str
    parameters: int
    """All parameters (tied weights once), counted on the meta device."""
    hidden_size: int
    intermediate_size: int
    layers: int
    """Language-model decoder layers (Mllama: self-attention and cross-attention layers)."""
    cross_attention_layers: int = 0
    """Mllama: decoder layers that attend to image tokens instead of the text (no text KV)."""
    kv_heads: int
    head_dim: int
    vocab_size: int
    vision: VisionShape | None = None

    @property
    def self_attention_layers(self) -> int:
        return self.layers - self.cross_attention_layers

    def kv_bytes_per_token(self, dtype_bytes: int, tensor_parallel: int = 1) -> int:
        """Text KV cache per token on one tensor-parallel rank: K and V of every
        self-attention layer (vLLM replicates KV heads when there are fewer than ranks)."""
        heads = max(1, self.kv_heads // tensor_parallel)
        return 2 * self.self_attention_layers * heads * self.head_dim * dtype_bytes

    def image_kv_bytes(self, dtype_bytes: int) -> int:
        """Mllama: the image's K/V that each cross-attention layer caches for a sequence
        (one image, every tile); 0 for models that put image tokens in the text."""
        if not self.cross_attention_layers or self.vision is None:
            return 0
        return (2 * self.cross_attention_layers * self.kv_heads * self.head_dim
                * self.vision.tokens_per_image * dtype_bytes)


@lru_cache(maxsize=8)
def read_shape(path: str, trust_remote_code: bool = False) -> ModelShape:
    """The shape of the checkpoint at `path` (config.json only; no weights, no tokenizer)."""
    # Imported here: learner.model loads torch, which `revisor plan --help` must not wait for.
    from transformers import AutoConfig

    from learner.model import count_parameters, text_config

    hf_config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    text = text_config(hf_config)
    heads = text.num_attention_heads
    cross = getattr(text, "cross_attention_layers", None) or []
    return ModelShape(
        model_type=hf_config.model_type,
        parameters=count_parameters(ModelConfig(path=path, trust_remote_code=trust_remote_code)),
        hidden_size=text.hidden_size,
        intermediate_size=getattr(text, "intermediate_size", None) or 4 * text.hidden_size,
        layers=text.num_hidden_layers,
        cross_attention_layers=len(cross),
        kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        head_dim=getattr(text, "head_dim", None) or text.hidden_size // heads,
        vocab_size=text.vocab_size,
        vision=vision_shape(getattr(hf_config, "vision_config", None)),
    )


def vision_shape(vision: Any) -> VisionShape | None:
    """Mllama (tiles, global layers) and ViT-style towers (LLaVA's CLIP); None for towers
    whose token count depends on the image (Qwen2-VL): their activations are left out."""
    if vision is None:
        return None
    image, patch = getattr(vision, "image_size", None), getattr(vision, "patch_size", None)
    hidden = getattr(vision, "hidden_size", None)
    if not (image and patch and hidden) or isinstance(image, (list, tuple)):
        return None
    tiles = getattr(vision, "max_num_tiles", 1)
    patches = (image // patch) ** 2 + 1
    layers = vision.num_hidden_layers + getattr(vision, "num_global_layers", 0)
    return VisionShape(hidden_size=hidden, layers=layers, tokens_per_image=tiles * patches)
