"""What a tiny model's vision tower sees of a picture: the image processor's output turned
back into an RGB image, so a layout can be judged on the pixels a tower gets (see
envs/general_points/reading.py) rather than on the picture as drawn.

Each family resizes differently: LLaVA's CLIP squeezes the whole picture to a square of
`image_size`; Mllama fits it, aspect kept, into up to `max_num_tiles` square tiles (padding
the rest, which is cut off here); Qwen2-VL resizes it, aspect kept, to multiples of 28 pixels
within its pixel budget.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from transformers.models.mllama.image_processing_pil_mllama import (
    get_image_size_fit_to_canvas,
    get_optimal_tiled_canvas,
)


def tower_view(image_processor: Any, picture: Image.Image) -> Image.Image:
    """The pixels `image_processor` hands its tower for `picture`, as an RGB image."""
    name = type(image_processor).__name__
    if name.startswith("Mllama"):
        return _mllama_view(image_processor, picture)
    if name.startswith("Qwen2VL"):
        return _qwen2vl_view(image_processor, picture)
    pixels = image_processor(images=[picture], return_tensors="np")["pixel_values"][0]
    return _to_image(image_processor, pixels)


def _to_image(image_processor: Any, chw: np.ndarray) -> Image.Image:
    """Undo the processor's normalisation of a (3, height, width) array."""
    mean = np.asarray(image_processor.image_mean, dtype=np.float32)[:, None, None]
    std = np.asarray(image_processor.image_std, dtype=np.float32)[:, None, None]
    rgb = (chw * std + mean) * 255.0
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8).transpose(1, 2, 0))


def _mllama_view(image_processor: Any, picture: Image.Image) -> Image.Image:
    """The tiles put back side by side, cut to the resized picture (without the padding)."""
    tile = image_processor.size["height"]
    canvas_h, canvas_w = get_optimal_tiled_canvas(
        image_height=picture.height, image_width=picture.width,
        max_image_tiles=image_processor.max_image_tiles, tile_size=tile)
    height, width = get_image_size_fit_to_canvas(
        image_height=picture.height, image_width=picture.width, canvas_height=canvas_h,
        canvas_width=canvas_w, tile_size=tile)
    tiles = image_processor(images=[[picture]], return_tensors="np")["pixel_values"][0, 0]
    rows, columns = canvas_h // tile, canvas_w // tile
    grid = tiles[: rows * columns].reshape(rows, columns, 3, tile, tile)
    canvas = grid.transpose(2, 0, 3, 1, 4).reshape(3, canvas_h, canvas_w)
    return _to_image(image_processor, canvas[:, :height, :width])


def _qwen2vl_view(image_processor: Any, picture: Image.Image) -> Image.Image:
    """Qwen2-VL's flattened patches (merged 2x2, the frame repeated in time) put back."""
    out = image_processor(images=[picture], return_tensors="np")
    _, grid_h, grid_w = (int(v) for v in out["image_grid_thw"][0])
    patch, merge = image_processor.patch_size, image_processor.merge_size
    temporal = image_processor.temporal_patch_size
    patches = out["pixel_values"].reshape(grid_h // merge, grid_w // merge, merge, merge, 3,
                                          temporal, patch, patch)[:, :, :, :, :, 0]
    chw = patches.transpose(4, 0, 2, 5, 1, 3, 6).reshape(3, grid_h * patch, grid_w * patch)
    return _to_image(image_processor, chw)
