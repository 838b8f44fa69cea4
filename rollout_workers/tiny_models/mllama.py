"""A tiny Llama-3.2-Vision (Mllama) model: the study's backbone architecture at CPU size.

Mllama differs from LLaVA where it matters to Revisor: the image is not expanded into the
prompt; each image token marks where text starts attending (through cross-attention layers)
to that image's tiles, and the processor builds a text-aligned cross-attention mask from the
token ids. The checkpoint keeps Revisor's tokenizer and chat template, whose image token is
`<image>`: MllamaProcessor takes the tokenizer's `image_token` attribute when it has one
(else it looks for Llama's `<|image|>`), so the tokenizer here carries that attribute.
"""

from __future__ import annotations

import torch
from transformers import (
    GenerationConfig,
    MllamaConfig,
    MllamaForConditionalGeneration,
    MllamaProcessor,
    PreTrainedTokenizerFast,
)
from transformers.models.mllama.configuration_mllama import MllamaTextConfig, MllamaVisionConfig
from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

from rollout_workers.tiny_models.presets import MllamaShape, MllamaVisionShape
from rollout_workers.tiny_models.tokenizer import IMAGE_TOKEN, build_tokenizer


def mllama_tokenizer() -> PreTrainedTokenizerFast:
    """Revisor's tokenizer, plus the `image_token` attribute MllamaProcessor reads (saved in
    tokenizer_config.json, so AutoProcessor finds it again)."""
    base = build_tokenizer()
    kwargs = {k: v for k, v in base.init_kwargs.items() if k != "tokenizer_object"}
    return PreTrainedTokenizerFast(tokenizer_object=base.backend_tokenizer, **kwargs,
                                   model_specific_special_tokens={"image_token": IMAGE_TOKEN})


def vision_config(vision: MllamaVisionShape) -> MllamaVisionConfig:
    return MllamaVisionConfig(
        hidden_size=vision.hidden_size,
        num_hidden_layers=vision.num_layers,
        num_global_layers=vision.num_global_layers,
        attention_heads=vision.num_heads,
        intermediate_size=vision.intermediate_size,
        vision_output_dim=vision.output_dim,
        image_size=vision.tile_size,
        patch_size=vision.patch_size,
        max_num_tiles=vision.max_num_tiles,
        intermediate_layers_indices=list(vision.intermediate_layers),
        initializer_range=0.05,
    )


def text_config(shape: MllamaShape, tokenizer: PreTrainedTokenizerFast) -> MllamaTextConfig:
    text = shape.text
    return MllamaTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=text.hidden_size,
        intermediate_size=text.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=text.num_heads,
        num_key_value_heads=text.num_kv_heads,
        max_position_embeddings=text.max_position_embeddings,
        cross_attention_layers=list(shape.cross_attention_layers),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.05,
    )


def mllama_config(shape: MllamaShape, tokenizer: PreTrainedTokenizerFast) -> MllamaConfig:
    return MllamaConfig(
        vision_config=vision_config(shape.vision),
        text_config=text_config(shape, tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        dtype="float32",
    )


def image_processor(vision: MllamaVisionShape) -> MllamaImageProcessorPil:
    """Pillow-based: CPU installs have no torchvision."""
    side = vision.tile_size
    return MllamaImageProcessorPil(size={"height": side, "width": side},
                                   max_image_tiles=vision.max_num_tiles)


def build_mllama(shape: MllamaShape) -> tuple[MllamaForConditionalGeneration, MllamaProcessor]:
    """A randomly initialised tiny Mllama (seed the caller's RNG first) and its processor."""
    tokenizer = mllama_tokenizer()
    processor = MllamaProcessor(image_processor=image_processor(shape.vision),
                                tokenizer=tokenizer, chat_template=tokenizer.chat_template)
    model = MllamaForConditionalGeneration(mllama_config(shape, tokenizer))
    open_cross_attention_gates(model)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    return model, processor


CROSS_ATTENTION_GATE = 1.0
"""tanh(1) = 0.76 of each cross-attention block's output joins the text stream."""


@torch.no_grad()
def open_cross_attention_gates(model: MllamaForConditionalGeneration) -> None:
    """Set the text decoder's cross-attention gates to CROSS_ATTENTION_GATE. Mllama starts
    them at 0 (a pretrained LM, untouched at first); at 0 a randomly initialised tiny model
    ignores its images, and no test or learning curve could tell whether images get through."""
    for name, param in model.named_parameters():
        if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate")):
            param.fill_(CROSS_ATTENTION_GATE)
