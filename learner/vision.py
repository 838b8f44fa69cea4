"""Image inputs for vision-language policies, rebuilt from the image references in trajectories.

Trajectories store stable image names and one image placeholder token per image, not pixels:
the learner re-renders each image from its name (envs/images.py, where every environment
registers how) and runs the checkpoint's own processor, which gives the image tensors (and,
for LLaVA-style models, the number of feature tokens each placeholder stands for), exactly
as the Hugging Face engine builds its inputs. Images never travel through the object store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from PIL import Image

from envs.registry import render_image_ref
from learner.batch import Turns

ImageResolver = Callable[[str], Image.Image]


class VisionInputs:
    """Rebuilds each turn's model inputs from its prompt ids and image references.

    The family of the checkpoint's processor decides what that means (see
    model_inputs.vision): LLaVA-style prompts get their placeholders expanded
    and pixel tensors independent of the text; Mllama keeps the ids and also gets its
    text-aligned cross-attention mask over the prompt, which collate extends over the answer
    (answer tokens see what the last prompt token sees, as in generation) and the padding.
    """

    def __init__(self, model_path: str, resolver: ImageResolver = render_image_ref,
                 processor: Any = None) -> None:
        from model_inputs.vision import load_processor

        self.processor = processor or load_processor(model_path)
        self.resolver = resolver

    def expand(self, turns: Turns) -> Turns:
        from model_inputs.vision import hf_vision_inputs

        prompts, tensors = [], []
        for prompt, refs in zip(turns.prompt_ids, turns.image_refs, strict=True):
            images = [self.resolver(ref) for ref in refs]
            expanded, inputs = hf_vision_inputs(self.processor, prompt, images)
            prompts.append(expanded)
            tensors.append(inputs)
        return dataclasses.replace(turns, prompt_ids=prompts, vision=tensors)
