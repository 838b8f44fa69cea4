"""Image inputs for vision-language policies, rebuilt from the image references in trajectories.

Trajectories store stable image names and one image placeholder token per image, not pixels:
the learner re-renders each image from its name (envs/images.py, where every environment
registers how) and runs the checkpoint's own processor, which gives the pixel tensors and the
number of feature tokens each placeholder stands for, exactly as the Hugging Face engine
builds its inputs. Images never travel through the object store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from PIL import Image

from envs.registry import render_image_ref
from learner.batch import Turns

ImageResolver = Callable[[str], Image.Image]


class VisionInputs:
    """Expands image placeholders in prompts and attaches each turn's image tensors.

    Covers processors whose image outputs depend on the images alone (LLaVA-style); models
    whose processor also builds text-aligned masks (Mllama's cross-attention mask) need more.
    """

    def __init__(self, model_path: str, resolver: ImageResolver = render_image_ref) -> None:
        from transformers import AutoProcessor

        self.processor = AutoProcessor.from_pretrained(model_path)
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
