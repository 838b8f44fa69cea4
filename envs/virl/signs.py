"""The 'signs' V-IRL-VL view style: each view is its landmarks' sign boards, large, for a tiny
vision tower rather than for a person.

The street style paints a landmark as a board over a street scene, its name in letters a
few pixels high once a 64-pixel tower has the 2x2 grid; a tower that small cannot read them.
Here a view is nearly all board: the boards of the landmarks in that view share its upper
three quarters, each name one word a line in the largest letters that fit, and the bottom
quarter is the city's ground, crossed by a zebra band at an intersection (what detection
also asks). The city's palette colours the frame, so benchmark cities still look unlike the
training city. Which view a board is in says where the landmark is; where in the view it
stands does not.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from envs.lettering import fitting_font
from envs.virl.cities import Palette

SIGN_BOARD = (250, 214, 0)
"""Sign boards are this exact colour, which no palette uses (the street style's too)."""
SIGN_TEXT = (20, 20, 20)
BOARD_SHARE = 0.75
"""The share of a view's height the boards take; the ground band takes the rest."""


def paint_signs(names: Sequence[str], at_intersection: bool, palette: Palette,
                px: int) -> Image.Image:
    """One view: the boards of `names` stacked top to bottom, the ground band below."""
    tile = Image.new("RGB", (px, px), palette.sky)
    draw = ImageDraw.Draw(tile)
    ground_top = round(px * BOARD_SHARE)
    draw.rectangle((0, ground_top, px, px), fill=palette.ground)
    if at_intersection:
        _paint_crossing(draw, px, ground_top, palette)
    rim = max(1, px // 32)
    height = (ground_top - rim) // max(1, len(names))
    for n, name in enumerate(names):
        top = rim + n * height
        box = (rim, top, px - 1 - rim, top + height - rim - 1)
        draw.rectangle(box, fill=SIGN_BOARD)
        _paint_name(draw, name, box)
    return tile


def _paint_crossing(draw: ImageDraw.ImageDraw, px: int, top: int, palette: Palette) -> None:
    """A road across the ground band with a zebra crossing's stripes on it."""
    draw.rectangle((0, top + 1, px, px), fill=palette.road)
    stripe = max(2, px // 16)
    for x in range(stripe // 2, px, 2 * stripe):
        draw.rectangle((x, top + 2, x + stripe - 1, px - 2), fill=palette.marking)


def _paint_name(draw: ImageDraw.ImageDraw, name: str, box: tuple[int, int, int, int]) -> None:
    """The name one word a line, each line as large as the board's width and share allow."""
    left, top, right, bottom = box
    words = name.split() or [name]
    line = (bottom - top + 1) / len(words)
    stroke = max(1, (right - left) // 48)
    for i, word in enumerate(words):
        font = fitting_font(draw, word, right - left - 2, int(line) - 1, stroke)
        centre = (round((left + right) / 2), round(top + (i + 0.5) * line))
        draw.text(centre, word, fill=SIGN_TEXT, font=font, anchor="mm", stroke_width=stroke,
                  stroke_fill=SIGN_TEXT)
