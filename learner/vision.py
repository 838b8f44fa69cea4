"""Image inputs for vision-language policies, rebuilt from the image references in trajectories.

Trajectories store stable image names and one image placeholder token per image, not pixels:
the learner re-renders each image and runs the checkpoint's own processor, which gives the
pixel tensors and the number of feature tokens each placeholder stands for, exactly as the
Hugging Face engine builds its inputs. Images never travel through the object store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import lru_cache

from PIL import Image

from learner.batch import Turns

ImageResolver = Callable[[str], Image.Image]


@lru_cache(maxsize=256)
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
    """Expands image placeholders in prompts and attaches each turn's image tensors.

    Covers processors whose image outputs depend on the images alone (LLaVA-style); models
    whose processor also builds text-aligned masks (Mllama's cross-attention mask) need more.
    """

    def __init__(self, model_path: str, resolver: ImageResolver = resolve_image_ref) -> None:
        from rollout_workers.engine.multimodal import load_processor

        self.processor = load_processor(model_path)
        self.resolver = resolver

    def expand(self, turns: Turns) -> Turns:
        from rollout_workers.engine.multimodal import hf_vision_inputs

        prompts, tensors = [], []
        for prompt, refs in zip(turns.prompt_ids, turns.image_refs, strict=True):
            images = [self.resolver(ref) for ref in refs]
            expanded, inputs = hf_vision_inputs(self.processor, prompt, images) if images else (
                prompt, {})
            prompts.append(expanded)
            tensors.append(inputs)
        return dataclasses.replace(turns, prompt_ids=prompts, vision=tensors)
