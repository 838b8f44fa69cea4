"""A tiny Qwen2-VL: the vision-language family vLLM serves with its own implementation on GPU.

Qwen2-VL cuts an image into 14-pixel patches at (close to) its own aspect ratio, merges 2x2
patches into one language-model token and places image tokens with M-RoPE (a temporal, a
row and a column position each). Prompts hold `<|vision_start|><|image_pad|><|vision_end|>`
per image; vLLM (and `hf_vision_inputs` for Hugging Face forwards) repeats `<|image_pad|>` once
per merged patch.

On CPU installs (no torchvision) vLLM cannot serve this family: its `qwen2_vl` module and the
Transformers backend both need torchvision through transformers' Qwen2-VL image/video
processors. The HF engine and the learner serve and train it here; see
docs/experiments.md §Which engine serves which model.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
)
from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

from model_inputs.vision import ImageOnlyQwen2VLProcessor
from rollout_workers.tiny_models.presets import LM_PRESETS, LMShape
from rollout_workers.tiny_models.tokenizer import CHAT_TEMPLATE, IMAGE_TOKEN, build_tokenizer

VISION_START, IMAGE_PAD, VISION_END, VIDEO_PAD = (
    "<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>")
IMAGE_PLACEHOLDER = VISION_START + IMAGE_PAD + VISION_END
"""What the chat template writes for each image (Qwen2-VL's own layout)."""
PATCH, MERGE, TEMPORAL_PATCH = 14, 2, 2
"""Qwen2-VL's patching; kept from the real model so that GPU runs exercise the same shapes."""


class Qwen2VLVisionShape(BaseModel):
    """The vision tower, and the pixel budget an image is resized to (aspect ratio kept)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    embed_dim: int = Field(64, ge=16)
    depth: int = Field(2, ge=1)
    num_heads: int = Field(2, ge=1)
    mlp_ratio: int = Field(2, ge=1)
    max_pixels: int = Field(56 * 56, ge=(PATCH * MERGE) ** 2)
    """A tiled GeneralPoints hand (128x128) becomes 56x56 pixels at 56*56: one merged token
    (28x28 pixels) per card; at 112*112, 2x2 tokens per card. (The study's strip, 480x172,
    becomes 28x84 and 56x168.)"""


QWEN2VL_VISION_PRESETS: dict[str, Qwen2VLVisionShape] = {
    # Token-aligned views of a tiled GP-VL hand (docs/tasks.md, "GP-VL images").
    "0.5m": Qwen2VLVisionShape(embed_dim=64, depth=2, num_heads=2, mlp_ratio=2,
                               max_pixels=56 * 56),
    "5m": Qwen2VLVisionShape(embed_dim=128, depth=4, num_heads=4, mlp_ratio=2,
                             max_pixels=112 * 112),
    "50m": Qwen2VLVisionShape(embed_dim=256, depth=6, num_heads=4, mlp_ratio=4,
                              max_pixels=112 * 336),
}


def qwen2vl_tokenizer() -> PreTrainedTokenizerFast:
    """Revisor's tokenizer plus Qwen2-VL's vision tokens (appended, so the ids of every other
    token match the other tiny models'), with a chat template that writes Qwen's placeholder."""
    tokenizer = build_tokenizer()
    tokenizer.add_tokens([VISION_START, IMAGE_PAD, VISION_END, VIDEO_PAD], special_tokens=True)
    image_part = f"'{IMAGE_TOKEN}\\n'"
    if image_part not in CHAT_TEMPLATE:
        raise RuntimeError("the tiny models' chat template no longer writes images as "
                           f"{image_part}; update qwen2vl_tokenizer")
    tokenizer.chat_template = CHAT_TEMPLATE.replace(image_part, f"'{IMAGE_PLACEHOLDER}\\n'")
    return tokenizer


def mrope_section(head_dim: int) -> list[int]:
    """How the rotary frequencies split over (time, row, column): Qwen2-VL's 2:3:3 of head_dim/2
    ([16, 24, 24] at its head size of 128)."""
    unit = head_dim // 16
    return [2 * unit, 3 * unit, 3 * unit]


def qwen2vl_config(size: str, tokenizer: PreTrainedTokenizerFast) -> Qwen2VLConfig:
    text, vision = LM_PRESETS[size], QWEN2VL_VISION_PRESETS[size]
    ids = {token: tokenizer.convert_tokens_to_ids(token)
           for token in (VISION_START, IMAGE_PAD, VISION_END, VIDEO_PAD)}
    return Qwen2VLConfig(
        text_config=_text_config(text, tokenizer),
        vision_config={
            "depth": vision.depth, "embed_dim": vision.embed_dim, "num_heads": vision.num_heads,
            "mlp_ratio": vision.mlp_ratio, "hidden_size": text.hidden_size,
            "patch_size": PATCH, "spatial_merge_size": MERGE,
            "temporal_patch_size": TEMPORAL_PATCH,
        },
        image_token_id=ids[IMAGE_PAD], video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids[VISION_START], vision_end_token_id=ids[VISION_END],
        tie_word_embeddings=True,
        dtype="float32",
    )


def _text_config(shape: LMShape, tokenizer: PreTrainedTokenizerFast) -> dict:
    head_dim = shape.hidden_size // shape.num_heads
    return {
        "vocab_size": len(tokenizer), "hidden_size": shape.hidden_size,
        "intermediate_size": shape.intermediate_size, "num_hidden_layers": shape.num_layers,
        "num_attention_heads": shape.num_heads, "num_key_value_heads": shape.num_kv_heads,
        "max_position_embeddings": shape.max_position_embeddings,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                            "mrope_section": mrope_section(head_dim)},
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id, "tie_word_embeddings": True,
        "initializer_range": 0.05,
    }


def image_processor(vision: Qwen2VLVisionShape) -> Qwen2VLImageProcessorPil:
    """Pillow-based; saved as the plain Qwen2VLImageProcessor, so GPU installs get the
    torchvision one."""
    return Qwen2VLImageProcessorPil(
        size={"shortest_edge": (PATCH * MERGE) ** 2, "longest_edge": vision.max_pixels},
        patch_size=PATCH, merge_size=MERGE, temporal_patch_size=TEMPORAL_PATCH,
    )


def build_qwen2vl(size: str) -> tuple[Qwen2VLForConditionalGeneration, ImageOnlyQwen2VLProcessor]:
    """A randomly initialised tiny Qwen2-VL (seed the caller's) and its processor."""
    tokenizer = qwen2vl_tokenizer()
    processor = ImageOnlyQwen2VLProcessor(image_processor(QWEN2VL_VISION_PRESETS[size]), tokenizer,
                                          chat_template=tokenizer.chat_template)
    return Qwen2VLForConditionalGeneration(qwen2vl_config(size, tokenizer)), processor
