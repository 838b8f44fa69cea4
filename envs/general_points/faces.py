"""What every GP-VL layout draws a card with: the ink of its colour and the suit shapes.

Suits are drawn as shapes rather than font glyphs, so a picture is the same on every machine
whatever fonts are installed; ranks use Pillow's bundled font (envs/lettering.py). Both
layouts (render.py, the study's; tiles.py, the tiny towers') draw with these, so a card looks
alike in both.
"""

from __future__ import annotations

from PIL import ImageDraw

TABLE_GREEN = (34, 110, 60)
INK = {False: (20, 20, 20), True: (200, 20, 30)}
"""Ink by `Card.is_red`: black suits black, red suits red."""


def draw_suit(draw: ImageDraw.ImageDraw, suit: str, centre: tuple[int, int], size: int,
              ink: tuple[int, int, int]) -> None:
    """The suit's shape, about 2 * `size` pixels across, centred on `centre`."""
    x, y = centre
    s = size
    if suit == "diamonds":
        draw.polygon([(x, y - s), (x + s * 0.7, y), (x, y + s), (x - s * 0.7, y)], fill=ink)
    elif suit == "hearts":
        r = s * 0.5
        draw.ellipse((x - s, y - s * 0.8, x, y - s * 0.8 + 2 * r), fill=ink)
        draw.ellipse((x, y - s * 0.8, x + s, y - s * 0.8 + 2 * r), fill=ink)
        draw.polygon([(x - s, y - s * 0.3), (x + s, y - s * 0.3), (x, y + s)], fill=ink)
    elif suit == "spades":
        draw.polygon([(x, y - s), (x + s, y + s * 0.2), (x - s, y + s * 0.2)], fill=ink)
        draw.ellipse((x - s, y - s * 0.2, x, y + s * 0.6), fill=ink)
        draw.ellipse((x, y - s * 0.2, x + s, y + s * 0.6), fill=ink)
        draw.polygon([(x, y + s * 0.2), (x + s * 0.4, y + s), (x - s * 0.4, y + s)], fill=ink)
    else:  # clubs
        r = s * 0.45
        for cx, cy in ((x, y - s * 0.5), (x - s * 0.5, y + s * 0.1), (x + s * 0.5, y + s * 0.1)):
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=ink)
        draw.polygon([(x, y), (x + s * 0.4, y + s), (x - s * 0.4, y + s)], fill=ink)
