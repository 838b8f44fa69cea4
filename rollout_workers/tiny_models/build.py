"""Build a tiny model from a preset and save it as a checkpoint directory.

The directory looks like any Hugging Face checkpoint (config, safetensors weights,
tokenizer with chat template, generation config; for the VLM also the processor), so every
part of Revisor loads it by path exactly as it would load a real model: AutoModelForCausalLM
or AutoModelForImageTextToText, AutoTokenizer, AutoProcessor, and vLLM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    CLIPVisionConfig,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from rollout_workers.tiny_models.mllama import build_mllama
from rollout_workers.tiny_models.presets import (
    LM_PRESETS,
    MLLAMA_PRESETS,
    VISION_PRESETS,
    LMShape,
    ModelKind,
    VisionShape,
)
from rollout_workers.tiny_models.qwen2vl import build_qwen2vl
from rollout_workers.tiny_models.tokenizer import IMAGE_TOKEN, build_tokenizer


def llama_config(shape: LMShape, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        max_position_embeddings=shape.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.05,
        dtype="float32",
    )


def llava_config(size: str, tokenizer: PreTrainedTokenizerFast) -> LlavaConfig:
    vision = VISION_PRESETS[size]
    text = llama_config(LM_PRESETS[size], tokenizer)
    return LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=vision.hidden_size,
            intermediate_size=vision.intermediate_size,
            num_hidden_layers=vision.num_layers,
            num_attention_heads=vision.num_heads,
            image_size=vision.image_size,
            patch_size=vision.patch_size,
            projection_dim=vision.hidden_size,
        ),
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
        image_seq_length=vision.tokens_per_image,
        tie_word_embeddings=True,
        dtype="float32",
    )


def image_processor(vision: VisionShape) -> CLIPImageProcessorPil:
    """Pillow-based (no torchvision on CPU installs), squeezing the whole image to a square."""
    side = vision.image_size
    return CLIPImageProcessorPil(size={"height": side, "width": side}, do_center_crop=False,
                                 crop_size={"height": side, "width": side})


def build_model(kind: ModelKind, size: str, seed: int = 0) -> tuple[PreTrainedModel, Any]:
    """A randomly initialised tiny model and its tokenizer (LM) or processor (VLM, Mllama)."""
    if size not in LM_PRESETS:
        raise ValueError(f"unknown tiny model size {size!r}; choose one of {', '.join(LM_PRESETS)}")
    torch.manual_seed(seed)
    if kind == "mllama":
        return build_mllama(MLLAMA_PRESETS[size])
    if kind == "qwen2vl":
        return build_qwen2vl(size)
    tokenizer = build_tokenizer()
    if kind == "lm":
        return LlamaForCausalLM(llama_config(LM_PRESETS[size], tokenizer)), tokenizer
    vision = VISION_PRESETS[size]
    processor = LlavaProcessor(
        image_processor=image_processor(vision), tokenizer=tokenizer,
        patch_size=vision.patch_size, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=tokenizer.chat_template,
        image_token=IMAGE_TOKEN,
    )
    return LlavaForConditionalGeneration(llava_config(size, tokenizer)), processor


def save_tiny_model(kind: ModelKind, size: str, out: str | Path, seed: int = 0) -> Path:
    """Build a tiny model and save it as a checkpoint directory."""
    return save_model(*build_model(kind, size, seed), out)


def save_model(model: PreTrainedModel, tokenizer_or_processor: Any, out: str | Path) -> Path:
    """Weights, tokenizer (or processor) and a generation config that stops at end-of-turn."""
    out = Path(out)
    tokenizer = getattr(tokenizer_or_processor, "tokenizer", tokenizer_or_processor)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out)
    tokenizer_or_processor.save_pretrained(out)
    return out


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
