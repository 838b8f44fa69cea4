"""Sizes of Revisor's tiny models: the one place their shapes live.

Head sizes are 32 or 64 because the vLLM CPU attention kernel supports only a fixed list
of head sizes. The parameter counts in the names include the (tied) embeddings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ModelKind = Literal["lm", "vlm", "mllama", "qwen2vl"]


class LMShape(BaseModel):
    """A Llama-architecture decoder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hidden_size: int = Field(128, ge=32)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int = Field(2, ge=1)
    intermediate_size: int = Field(320, ge=1)
    max_position_embeddings: int = Field(2048, ge=64)


class VisionShape(BaseModel):
    """A CLIP vision tower; the image is squeezed to a square of `image_size` pixels, whole
    (no crop), so all four cards of a GeneralPoints hand stay in view. The CPU presets' patch
    is half the image: a GP-VL hand drawn as 2x2 tiles (the tiny configs' layout) gives one
    patch, so one image token, per card, and the patch embedding alone is a linear map of a
    whole card (a nearest-template reading is linear in the pixels)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hidden_size: int = Field(64, ge=16)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(2, ge=1)
    intermediate_size: int = Field(128, ge=1)
    image_size: int = Field(64, ge=8)
    patch_size: int = Field(16, ge=2)

    @property
    def tokens_per_image(self) -> int:
        """Image tokens in the language model's input (patches; the CLS token is dropped)."""
        return (self.image_size // self.patch_size) ** 2


LM_PRESETS: dict[str, LMShape] = {
    "0.5m": LMShape(hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                    intermediate_size=320),
    "5m": LMShape(hidden_size=256, num_layers=6, num_heads=4, num_kv_heads=2,
                  intermediate_size=768),
    # Big enough that moving weights, not per-call overhead, dominates a weight sync.
    "50m": LMShape(hidden_size=768, num_layers=8, num_heads=12, num_kv_heads=4,
                   intermediate_size=2048),
}
VISION_PRESETS: dict[str, VisionShape] = {
    # One 32- or 48-pixel patch per card of a tiled GP-VL hand (docs/tasks.md, "GP-VL images").
    "0.5m": VisionShape(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                        image_size=64, patch_size=32),
    "5m": VisionShape(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=256,
                      image_size=96, patch_size=48),
    "50m": VisionShape(hidden_size=256, num_layers=6, num_heads=4, intermediate_size=1024,
                       image_size=128, patch_size=16),
}
SIZES = tuple(LM_PRESETS)


class MllamaVisionShape(BaseModel):
    """Mllama's tiled vision encoder. An image is resized to fit up to `max_num_tiles` square
    tiles of `tile_size` pixels (aspect ratio kept: the study's GeneralPoints strip, ~2.8:1,
    becomes a row of tiles; the tiled layout's square a 2x2 canvas, one tile per card), and
    each tile gives (tile_size / patch_size)^2 + 1 cross-attention states."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hidden_size: int = Field(64, ge=16)
    num_layers: int = Field(2, ge=1)
    """Local encoder layers (per tile)."""
    num_global_layers: int = Field(1, ge=1)
    """Gated encoder layers over all tiles of an image."""
    num_heads: int = Field(2, ge=1)
    intermediate_size: int = Field(128, ge=1)
    tile_size: int = Field(32, ge=8)
    patch_size: int = Field(16, ge=2)
    max_num_tiles: int = Field(4, ge=1)
    """4: transformers' default aspect-ratio list is defined for exactly 4 tiles."""
    intermediate_layers: tuple[int, ...] = (0,)
    """Local layers whose outputs join the final one in the projector's input."""

    @property
    def output_dim(self) -> int:
        return self.hidden_size * (len(self.intermediate_layers) + 1)


class MllamaShape(BaseModel):
    """A Llama-3.2-Vision-style model: the LM preset's self-attention layers with
    cross-attention layers (to the image states) inserted at `cross_attention_layers`
    (indices in the combined stack, as in Llama-3.2-Vision's config)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: LMShape
    cross_attention_layers: tuple[int, ...]
    vision: MllamaVisionShape

    @property
    def num_layers(self) -> int:
        return self.text.num_layers + len(self.cross_attention_layers)


MLLAMA_PRESETS: dict[str, MllamaShape] = {
    "0.5m": MllamaShape(text=LM_PRESETS["0.5m"], cross_attention_layers=(1,),
                        vision=MllamaVisionShape()),
    "5m": MllamaShape(text=LM_PRESETS["5m"], cross_attention_layers=(2, 6),
                      vision=MllamaVisionShape(hidden_size=128, num_layers=4, num_global_layers=1,
                                               num_heads=4, intermediate_size=256, tile_size=48,
                                               intermediate_layers=(1,))),
    "50m": MllamaShape(text=LM_PRESETS["50m"], cross_attention_layers=(3, 8),
                       vision=MllamaVisionShape(hidden_size=256, num_layers=6, num_global_layers=2,
                                                num_heads=4, intermediate_size=1024, tile_size=64,
                                                intermediate_layers=(1, 3))),
}
"""Cross-attention every ~4 self-attention layers, as in Llama-3.2-Vision (3, 8, 13, ...)."""
