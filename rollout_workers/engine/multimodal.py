"""Image placeholders in prompt ids, as Revisor stores them and as Hugging Face models need them.

Prompts hold one image token per image (what the chat template writes). vLLM expands each
to the image's feature tokens itself; a Hugging Face forward pass (the HF engine, the
learner) needs the expanded ids and the pixel tensors, which `hf_vision_inputs` builds from
the stored ids without re-tokenising any text.

Qwen2-VL-style models (M-RoPE) also take a per-token map of image tokens; `token_type_inputs`
builds it from the batch's padded ids. Their Hugging Face processor cannot be built without
torchvision (its video processor needs it), so on CPU installs `load_processor` builds it
without the video part (`ImageOnlyQwen2VLProcessor`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoProcessor, AutoTokenizer, Qwen2VLProcessor
from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil
from transformers.utils import is_torchvision_available

PER_TOKEN_OUTPUTS = ("input_ids", "attention_mask", "mm_token_type_ids")
"""Processor outputs aligned with the text it was given (a lone placeholder here), not with
the image: dropped, since the prompt's ids come from the trajectory."""


def is_vision_language(model_path: str | Path) -> bool:
    return hasattr(AutoConfig.from_pretrained(model_path), "vision_config")


def load_processor(model_path: str | Path) -> Any:
    """The checkpoint's processor; a Qwen2-VL one without its video part where torchvision is
    missing (images need only Pillow)."""
    model_type = AutoConfig.from_pretrained(model_path).model_type
    if model_type == "qwen2_vl" and not is_torchvision_available():
        return ImageOnlyQwen2VLProcessor.load(model_path)
    return AutoProcessor.from_pretrained(model_path)


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor for images only. transformers builds a Qwen2VLProcessor only with a video
    processor, and its video processor needs torchvision, which CPU installs must leave out;
    the Pillow image processor gives the same image tensors and the same token expansion.
    Saved, it writes the files of a Qwen2-VL checkpoint (tokenizer naming Qwen2VLProcessor,
    preprocessor_config.json), so AutoProcessor builds the full processor where torchvision
    is installed."""

    def __init__(self, image_processor: Any = None, tokenizer: Any = None,
                 chat_template: str | None = None, **kwargs: Any) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    @classmethod
    def load(cls, path: str | Path) -> ImageOnlyQwen2VLProcessor:
        tokenizer = AutoTokenizer.from_pretrained(path)
        return cls(Qwen2VLImageProcessorPil.from_pretrained(path), tokenizer,
                   chat_template=tokenizer.chat_template)

    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> None:
        self.tokenizer._set_processor_class(Qwen2VLProcessor.__name__)
        self.tokenizer.save_pretrained(save_directory)
        self.image_processor.save_pretrained(save_directory)


def image_token_id(processor: Any) -> int:
    return processor.tokenizer.convert_tokens_to_ids(processor.image_token)


def expand_image_tokens(prompt_ids: Sequence[int], placeholder: int, counts: Sequence[int]) -> list[int]:
    """Repeat the i-th `placeholder` in `prompt_ids` counts[i] times."""
    if sum(1 for token in prompt_ids if token == placeholder) != len(counts):
        raise ValueError(f"the prompt's image placeholders do not match its {len(counts)} images")
    expanded: list[int] = []
    remaining = iter(counts)
    for token in prompt_ids:
        expanded.extend([token] * next(remaining) if token == placeholder else [token])
    return expanded


def hf_vision_inputs(
    processor: Any, prompt_ids: Sequence[int], images: Sequence[Any]
) -> tuple[list[int], dict[str, torch.Tensor]]:
    """Expanded prompt ids and the processor's image tensors (e.g. pixel_values) for one prompt.

    Each image goes through the processor with a lone placeholder, which tells how many tokens
    that image takes (it may depend on the image's size) and gives its tensors.
    """
    placeholder = image_token_id(processor)
    counts: list[int] = []
    tensors: dict[str, list[torch.Tensor]] = {}
    for image in images:
        processed = processor(text=processor.image_token, images=[image], return_tensors="pt")
        counts.append(int((processed["input_ids"] == placeholder).sum()))
        for name, value in processed.items():
            if name not in PER_TOKEN_OUTPUTS:
                tensors.setdefault(name, []).append(value)
    expanded = expand_image_tokens(prompt_ids, placeholder, counts)
    return expanded, {name: torch.cat(values) for name, values in tensors.items()}


def token_type_inputs(model: Any, input_ids: torch.Tensor,
                      vision_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`mm_token_type_ids` (1 at image tokens) for models with M-RoPE (Qwen2-VL: those that take
    `image_grid_thw`), which lay image tokens out on a grid of positions and refuse images
    without the map; built from the ids as batched, so any padding lines up. Empty otherwise."""
    if "image_grid_thw" not in vision_inputs:
        return {}
    return {"mm_token_type_ids": (input_ids == model.config.image_token_id).int()}
