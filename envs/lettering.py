"""Lettering for the tasks' pictures (GP-VL cards, V-IRL-VL views): Pillow's bundled font,
the same on every machine whatever fonts are installed, and the largest size that fits a box."""

from __future__ import annotations

from functools import lru_cache

from PIL import ImageDraw, ImageFont

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


@lru_cache(maxsize=64)
def font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # a Pillow built without FreeType has one bitmap size
        return ImageFont.load_default()


def fitting_font(draw: ImageDraw.ImageDraw, text: str, width: int, height: int,
                 stroke: int = 0) -> Font:
    """The largest font whose (stroked) `text` fits `width` x `height` pixels."""
    for size in range(max(5, height * 2), 4, -1):
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font(size), anchor="mm",
                                       stroke_width=stroke)
        if x1 - x0 <= width and y1 - y0 <= height:
            return font(size)
    return font(5)
