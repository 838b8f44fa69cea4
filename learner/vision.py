"""Pixel inputs for vision-language policies, rebuilt from the image references in trajectories.

Trajectories store stable image names, not pixels: the learner re-renders each image and runs
the checkpoint's own image processor, so the pixels it trains on are the ones the rollout engine
saw without moving images through the object store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

ImageResolver = Callable[[str], Image.Image]


def resolve_image_ref(ref: str) -> Image.Image:
    """The picture an environment names by `ref` ('gp:<rank>-<suit>,...' for GeneralPoints)."""
    kind, _, body = ref.partition(":")
    if kind == "gp":
        from envs.general_points import Card, render_hand

        cards = tuple(Card(rank=rank, suit=suit)
                      for rank, suit in (part.rsplit("-", 1) for part in body.split(",")))
        return render_hand(cards)
    raise ValueError(f"image reference {ref!r}: no renderer for kind {kind!r}")


class VisionInputs:
    """Builds the image keyword arguments (pixel_values, ...) for a micro-batch's rows.

    Works for processors whose image outputs depend on the images alone (LLaVA-style); models
    that also need text-aligned masks from the processor are not covered yet.
    """

    def __init__(self, model_path: str, resolver: ImageResolver = resolve_image_ref) -> None:
        from transformers import AutoImageProcessor

        self.processor = AutoImageProcessor.from_pretrained(model_path)
        self.resolver = resolver

    def __call__(self, image_refs: list[list[str]], device: torch.device) -> dict[str, Any]:
        images = [self.resolver(ref) for row in image_refs for ref in row]
        if not images:
            return {}
        out = self.processor(images=images, return_tensors="pt")
        return {key: value.to(device) for key, value in out.items()}
