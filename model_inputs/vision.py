"""Image placeholders in prompt ids, as Revisor stores them and as Hugging Face models need them.

Prompts hold one image token per image (what the chat template writes). vLLM expands each
to the image's feature tokens itself; a Hugging Face forward pass (the HF engine, the
learner) needs model inputs built from the stored ids without re-tokenising any text. How
depends on the model family, and each family is one `VisionFamily` here:
- expanded tokens (LLaVA, Qwen2-VL, ...): each placeholder becomes the image's feature
  tokens, and the image tensors are independent of the text;
- cross-attention (Mllama): the ids stay as they are; a text-aligned mask (batch, tokens,
  images, tiles) says which image each token attends to, so it has to be padded and extended
  with the ids.
`hf_vision_inputs` builds one prompt's inputs; `batch_vision_inputs` batches rows of them.

Qwen2-VL-style models (M-RoPE) also take a per-token map of image tokens; `token_type_inputs`
builds it from the batch's padded ids. Their Hugging Face processor cannot be built without
torchvision (its video processor needs it), so on CPU installs `load_processor` builds it
without the video part (`ImageOnlyQwen2VLProcessor`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoProcessor, AutoTokenizer, Qwen2VLProcessor
from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil
from transformers.utils import is_torchvision_available

PER_TOKEN_OUTPUTS = ("input_ids", "attention_mask", "mm_token_type_ids")
"""Processor outputs aligned with the text it was given (a lone placeholder here), not with
the image: dropped, since the prompt's ids come from the trajectory."""

Tensors = dict[str, torch.Tensor]


def is_vision_language(model_path: str | Path) -> bool:
    return hasattr(AutoConfig.from_pretrained(model_path), "vision_config")


EXCLUDED_LOGIT_BIAS = -100.0
"""Added to the logits of tokens the policy must never emit (vLLM's strongest logit bias):
engines sample and the learner scores the same distribution, in which they are impossible."""


def excluded_token_ids(model_path: str | Path) -> list[int]:
    """Tokens a policy must never sample: its image and video placeholders. A sampled
    placeholder would enter the next turn's prompt as an image slot without an image, which
    no vision model can run (and a text model has none of these tokens)."""
    return placeholder_ids(load_processor(model_path)) if is_vision_language(model_path) else []


def placeholder_ids(processor: Any) -> list[int]:
    """The ids of a vision processor's image and video placeholder tokens."""
    tokens = {getattr(processor, name, None) for name in ("image_token", "video_token")}
    ids = {processor.tokenizer.convert_tokens_to_ids(token) for token in tokens if token}
    return sorted(i for i in ids if i is not None and i != processor.tokenizer.unk_token_id)


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


class VisionFamily(ABC):
    """How one family of vision-language models takes a prompt's images, and how rows batch."""

    @abstractmethod
    def handles(self, names: Collection[str]) -> bool:
        """Whether inputs named `names` (a processor's model_input_names, or a row's tensors)
        belong to this family."""

    @abstractmethod
    def prompt_inputs(self, processor: Any, prompt_ids: Sequence[int],
                      images: Sequence[Any]) -> tuple[list[int], Tensors]:
        """The model's input ids and image tensors for one prompt with at least one image."""

    @abstractmethod
    def batch(self, rows: Sequence[Mapping[str, torch.Tensor]], lengths: Sequence[int],
              width: int, left: bool) -> Tensors:
        """The rows' tensors as one batch whose row i holds lengths[i] tokens, padded to
        `width` on the left (generation) or on the right (training). A row is {} when it
        has no image."""

    @abstractmethod
    def reads_as_prefix(self, earlier: Mapping[str, torch.Tensor], length: int,
                        later: Mapping[str, torch.Tensor]) -> bool:
        """Whether a row of `length` tokens (a prompt + answer) with `earlier`'s tensors reads
        what the first `length` tokens of a longer row with `later`'s tensors read, given that
        its ids are a prefix of the later row's and its images the later's first images
        (learner.packing reads a whole episode with its last turn's tensors)."""


class ExpandedTokens(VisionFamily):
    """LLaVA-style: the image tensors do not depend on the text, so rows just concatenate."""

    def handles(self, names: Collection[str]) -> bool:
        return True

    def prompt_inputs(self, processor: Any, prompt_ids: Sequence[int],
                      images: Sequence[Any]) -> tuple[list[int], Tensors]:
        """Each image goes through the processor with a lone placeholder, which tells how many
        tokens that image takes (it may depend on the image's size) and gives its tensors."""
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

    def batch(self, rows: Sequence[Mapping[str, torch.Tensor]], lengths: Sequence[int],
              width: int, left: bool) -> Tensors:
        names = {name for row in rows for name in row}
        return {name: torch.cat([row[name] for row in rows if name in row]) for name in names}

    def reads_as_prefix(self, earlier: Mapping[str, torch.Tensor], length: int,
                        later: Mapping[str, torch.Tensor]) -> bool:
        """Always: the image tensors do not depend on the text, an image's features do not
        depend on the other images, and its tokens (and Qwen2-VL's M-RoPE grid positions,
        numbered on from the tokens before them) follow from the ids before it and its size."""
        return True


class CrossAttention(VisionFamily):
    """Mllama: images are (images, tiles) of pixels per row, and `cross_attention_mask`
    (row, token, image, tile) lets a token see the tiles of the images before it. Rows with
    fewer images are padded as the processor pads them: blank tiles, aspect-ratio id 0 (no
    image), the first tile unmasked (an all-masked image would give NaN vision states)."""

    MASK = "cross_attention_mask"

    def handles(self, names: Collection[str]) -> bool:
        return self.MASK in names

    def prompt_inputs(self, processor: Any, prompt_ids: Sequence[int],
                      images: Sequence[Any]) -> tuple[list[int], Tensors]:
        from transformers.models.mllama.processing_mllama import (
            convert_sparse_cross_attention_mask_to_dense,
            get_cross_attention_token_mask,
        )

        ids = list(prompt_ids)
        placeholder = image_token_id(processor)
        if ids.count(placeholder) != len(images):
            raise ValueError(f"the prompt's image placeholders do not match its {len(images)} images")
        processed = processor.image_processor(images=[list(images)], return_tensors="pt")
        num_tiles = processed.pop("num_tiles")
        mask = convert_sparse_cross_attention_mask_to_dense(
            [get_cross_attention_token_mask(ids, placeholder)], num_tiles=num_tiles,
            max_num_tiles=processor.image_processor.max_image_tiles, length=len(ids))
        return ids, {**processed, self.MASK: torch.from_numpy(mask)}

    def batch(self, rows: Sequence[Mapping[str, torch.Tensor]], lengths: Sequence[int],
              width: int, left: bool) -> Tensors:
        filled = [row for row in rows if row]
        if not filled:
            return {}
        images = max(row["pixel_values"].shape[1] for row in filled)
        example = filled[0]
        out: dict[str, list[torch.Tensor]] = {}
        for row, length in zip(rows, lengths, strict=True):
            row = dict(row) if row else _no_image(example, length)
            row[self.MASK] = _fit_tokens(row[self.MASK], length, width, left)
            for name, value in row.items():
                out.setdefault(name, []).append(_pad_images(name, value, images))
        return {name: torch.cat(values) for name, values in out.items()}

    def reads_as_prefix(self, earlier: Mapping[str, torch.Tensor], length: int,
                        later: Mapping[str, torch.Tensor]) -> bool:
        """The mask is text-aligned: the earlier row's, over its prompt and extended over its
        answer as `batch` extends it, must equal the later row's mask on those tokens. It does
        for a dialogue that only appends (an image's span runs to the next placeholder or the
        end). And the earlier row must show all of the later row's images, not only its first
        ones: a token that sees no image (those before the first placeholder: BOS, the user
        header) is not cut off from the images, since Mllama un-masks such a row and drops
        only its cross-attention MLP's output, so its attention averages over every tile of
        the row. An image added with later feedback would reach an earlier turn's first tokens."""
        mask = later[self.MASK]
        if not earlier or earlier[self.MASK].shape[2] != mask.shape[2] or mask.shape[1] < length:
            return False
        return torch.equal(_fit_tokens(earlier[self.MASK], length, length, left=False),
                           mask[:, :length])


def _no_image(example: Mapping[str, torch.Tensor], length: int) -> Tensors:
    """A row without images, in the shapes of `example` with zero images."""
    rows = {name: value[:, :0] for name, value in example.items() if name != CrossAttention.MASK}
    mask = example[CrossAttention.MASK]
    rows[CrossAttention.MASK] = mask.new_zeros((1, length, 0, *mask.shape[3:]))
    return rows


def _fit_tokens(mask: torch.Tensor, length: int, width: int, left: bool) -> torch.Tensor:
    """The prompt's mask (1, prompt, images, tiles) over `length` tokens, padded to `width`.

    Tokens after the prompt (the answer) see what the last prompt token sees, as
    Mllama's `generate` extends the mask; padding tokens see no image."""
    if mask.shape[1] > length:
        raise ValueError(f"cross-attention mask covers {mask.shape[1]} tokens, the row {length}")
    if mask.shape[1] < length:
        last = mask[:, -1:] if mask.shape[1] else mask.new_zeros((1, 1, *mask.shape[2:]))
        mask = torch.cat([mask, last.expand(-1, length - mask.shape[1], -1, -1)], dim=1)
    pad = mask.new_zeros((1, width - length, *mask.shape[2:]))
    return torch.cat([pad, mask] if left else [mask, pad], dim=1)


def _pad_images(name: str, value: torch.Tensor, images: int) -> torch.Tensor:
    """Pad the image axis (dim 1; dim 2 for the mask) of one row to `images`."""
    axis = 2 if name == CrossAttention.MASK else 1
    missing = images - value.shape[axis]
    if missing == 0:
        return value
    shape = list(value.shape)
    shape[axis] = missing
    pad = value.new_zeros(shape)
    if name == "aspect_ratio_mask":
        pad[..., 0] = 1
    return torch.cat([value, pad], dim=axis)


FAMILIES: tuple[VisionFamily, ...] = (CrossAttention(), ExpandedTokens())
"""Most specific first; ExpandedTokens takes whatever no other family claims."""


def vision_family(names: Collection[str]) -> VisionFamily:
    """The family of a processor (its model_input_names) or of a batch's tensor names."""
    return next(family for family in FAMILIES if family.handles(names))


def hf_vision_inputs(
    processor: Any, prompt_ids: Sequence[int], images: Sequence[Any]
) -> tuple[list[int], Tensors]:
    """One prompt's input ids (placeholders expanded where the family needs it) and its image
    tensors; a prompt without images keeps its ids and gets none."""
    if not images:
        return expand_image_tokens(prompt_ids, image_token_id(processor), []), {}
    family = vision_family(processor.model_input_names)
    return family.prompt_inputs(processor, prompt_ids, images)


def batch_vision_inputs(rows: Sequence[Mapping[str, torch.Tensor]], lengths: Sequence[int],
                        width: int, left: bool = False) -> Tensors:
    """Rows of `hf_vision_inputs` tensors as one batch (see VisionFamily.batch)."""
    names = {name for row in rows for name in row}
    return vision_family(names).batch(rows, lengths, width, left)


def reads_as_prefix(earlier: Mapping[str, torch.Tensor], length: int,
                    later: Mapping[str, torch.Tensor]) -> bool:
    """Whether `earlier`'s row of `length` tokens reads as the start of `later`'s row (see
    VisionFamily.reads_as_prefix); an earlier row without images belongs to the later's family."""
    if not later:
        return not earlier
    return vision_family({*earlier, *later}).reads_as_prefix(earlier, length, later)


def token_type_inputs(model: Any, input_ids: torch.Tensor,
                      vision_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`mm_token_type_ids` (1 at image tokens) for models with M-RoPE (Qwen2-VL: those that take
    `image_grid_thw`), which lay image tokens out on a grid of positions and refuse images
    without the map; built from the ids as batched, so any padding lines up. Empty otherwise."""
    if "image_grid_thw" not in vision_inputs:
        return {}
    return {"mm_token_type_ids": (input_ids == model.config.image_token_id).int()}
