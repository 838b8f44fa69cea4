"""Image placeholders in prompt ids, as Revisor stores them and as Hugging Face models need them.

Prompts hold one image token per image (what the chat template writes). vLLM expands each
to the image's feature tokens itself; a Hugging Face forward pass (the HF engine, the
learner) needs the expanded ids and the pixel tensors, which `hf_vision_inputs` builds from
the stored ids without re-tokenising any text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoProcessor


def is_vision_language(model_path: str | Path) -> bool:
    return hasattr(AutoConfig.from_pretrained(model_path), "vision_config")


EXCLUDED_LOGIT_BIAS = -100.0
"""Added to the logits of tokens the policy must never emit (vLLM's strongest logit bias):
engines sample and the learner scores the same distribution, in which they are impossible."""


def excluded_token_ids(model_path: str | Path) -> list[int]:
    """Tokens a policy must never sample: its image and video placeholders. A sampled
    placeholder would enter the next turn's prompt as an image slot without an image, which
    no vision model can run (and a text model has none of these tokens)."""
    if not is_vision_language(model_path):
        return []
    processor = load_processor(model_path)
    tokens = {getattr(processor, name, None) for name in ("image_token", "video_token")}
    ids = {processor.tokenizer.convert_tokens_to_ids(token) for token in tokens if token}
    return sorted(i for i in ids if i is not None and i != processor.tokenizer.unk_token_id)


def load_processor(model_path: str | Path) -> Any:
    return AutoProcessor.from_pretrained(model_path)


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
        counts.append(int((processed.pop("input_ids") == placeholder).sum()))
        processed.pop("attention_mask", None)
        for name, value in processed.items():
            tensors.setdefault(name, []).append(value)
    expanded = expand_image_tokens(prompt_ids, placeholder, counts)
    return expanded, {name: torch.cat(values) for name, values in tensors.items()}
