"""The sizes of a checkpoint that decide its memory, read from its config.json alone.

`revisor plan` sizes a run before launch, often on a machine that holds no weights (the
paper configs point at an architecture-only directory), so everything here comes from the
model's config.json: for the families Revisor runs, read and counted with the json module
alone (cluster.settings.config_json: no torch, no transformers); for any other family, through
transformers' AutoConfig with parameters counted on the meta device (nothing is allocated).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict

from cluster.settings.config_json import (
    count_parameters,
    model_text_spec,
    read_config_json,
    vision_sizes,
)

COUNTED_FROM_CONFIG = "config.json"
"""ModelShape.counted_by when the parameters were counted analytically."""


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
    """All parameters (tied weights once): from config.json, or counted on the meta device."""
    counted_by: str = COUNTED_FROM_CONFIG
    """How `parameters` was counted: COUNTED_FROM_CONFIG, or why the meta device was needed."""
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
    raw = read_config_json(path)
    text, parameters = model_text_spec(raw), count_parameters(raw)
    if text is None or parameters is None:
        return meta_shape(path, trust_remote_code, raw.get("model_type"))
    vision = vision_sizes(raw)
    return ModelShape(
        model_type=raw["model_type"], parameters=parameters, hidden_size=text.hidden_size,
        intermediate_size=text.intermediate_size or 4 * text.hidden_size, layers=text.layers,
        cross_attention_layers=len(text.cross_attention_layers), kv_heads=text.kv_heads,
        head_dim=text.head_dim, vocab_size=text.vocab_size,
        vision=None if vision is None else VisionShape(
            hidden_size=vision.hidden_size, layers=vision.layers,
            tokens_per_image=vision.tokens_per_image))


def meta_shape(path: str, trust_remote_code: bool, model_type: str | None) -> ModelShape:
    """A family cluster.settings.config_json does not count: transformers reads the config and
    the model is built on the meta device. This is the one path of `revisor plan` that imports
    torch and transformers (lazily, here), for families the analytic count does not cover."""
    from transformers import AutoConfig

    from learner.model import ModelConfig, text_config
    from learner.model import count_parameters as meta_count

    hf_config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    text = text_config(hf_config)
    heads = text.num_attention_heads
    cross = getattr(text, "cross_attention_layers", None) or []
    return ModelShape(
        model_type=hf_config.model_type,
        parameters=meta_count(ModelConfig(path=path, trust_remote_code=trust_remote_code)),
        counted_by=(f"on the meta device (torch, transformers): model_type {model_type!r} "
                    "has no config.json count"),
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
    """From a transformers vision config (the meta-device path). Mllama (tiles, global
    layers) and ViT-style towers (LLaVA's CLIP); None for towers whose token count depends
    on the image (Qwen2-VL): their activations are left out."""
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
