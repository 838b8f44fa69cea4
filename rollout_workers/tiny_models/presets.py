"""Sizes of Revisor's tiny models: the one place their shapes live.

Head sizes are 32 or 64 because the vLLM CPU attention kernel supports only a fixed list
of head sizes. The parameter counts in the names include the (tied) embeddings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ModelKind = Literal["lm", "vlm", "qwen2vl"]


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
    (no crop), so all four cards of a GeneralPoints hand stay in view."""

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
    "0.5m": VisionShape(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                        image_size=64, patch_size=16),
    "5m": VisionShape(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=256,
                      image_size=96, patch_size=16),
    "50m": VisionShape(hidden_size=256, num_layers=6, num_heads=4, intermediate_size=1024,
                       image_size=128, patch_size=16),
}
SIZES = tuple(LM_PRESETS)
