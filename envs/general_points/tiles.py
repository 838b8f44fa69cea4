"""The 'tiles' GP-VL layout: the four cards as a 2x2 grid of square tiles, one card per tile,
drawn for a tiny vision tower rather than for a person.

A tiny tower sees a hand as a square of 64-128 pixels in 16-pixel patches (LLaVA's CLIP
squeezes every image to a square; Mllama's 2x2 tiles and Qwen2-VL's pixel budget take a
square whole). The study's strip (480x172) squeezed into 64 pixels leaves each rank a few
pixels; this grid is square, so nothing is squeezed, each card fills a quarter of the image
(a 2x2 block of patches at 64 pixels), and the rank is one bold glyph over most of its tile
with the suit as a large shape below. Reading order is the study's: left to right, top row
first.
"""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw

from envs.general_points.cards import Card
from envs.general_points.faces import INK, TABLE_GREEN, draw_suit
from envs.lettering import fitting_font

GRID = (2, 2)
"""(columns, rows) of the grid: four cards, square as the towers see it."""
_RANK_BOX = (0.06, 0.05, 0.94, 0.60)
"""(left, top, right, bottom) of the rank glyph, as fractions of the tile."""
_SUIT_CENTRE, _SUIT_SIZE = 0.79, 0.15
"""The suit shape's centre height and half-size, as fractions of the tile."""


def tile_box(index: int, tile_px: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the `index`-th card's tile in the image."""
    column, row = index % GRID[0], index // GRID[0]
    return (column * tile_px, row * tile_px, (column + 1) * tile_px, (row + 1) * tile_px)


def render_tiles(hand: tuple[Card | None, ...], tile_px: int) -> Image.Image:
    """The grid image of `hand` (up to four cards; None leaves a tile bare table), square with
    side 2 * `tile_px`; the same cards always give the same pixels."""
    if len(hand) > GRID[0] * GRID[1]:
        raise ValueError(f"the tiles layout holds {GRID[0] * GRID[1]} cards, not {len(hand)}")
    image = Image.new("RGB", (GRID[0] * tile_px, GRID[1] * tile_px), TABLE_GREEN)
    for index, card in enumerate(hand):
        if card is not None:
            image.paste(card_tile(card, tile_px), tile_box(index, tile_px)[:2])
    return image


@lru_cache(maxsize=256)
def card_tile(card: Card, tile_px: int) -> Image.Image:
    """One card filling a square tile: a white face with a table-green rim of ~1/32 of the
    tile, so neighbouring cards stay apart after a tower's downscaling."""
    tile = Image.new("RGB", (tile_px, tile_px), TABLE_GREEN)
    draw = ImageDraw.Draw(tile)
    rim = max(1, tile_px // 32)
    draw.rounded_rectangle((rim, rim, tile_px - 1 - rim, tile_px - 1 - rim),
                           radius=max(1, tile_px // 10), fill="white")
    ink = INK[card.is_red]
    _draw_rank(draw, card.rank, tile_px, ink)
    draw_suit(draw, card.suit, centre=(tile_px // 2, round(tile_px * _SUIT_CENTRE)),
              size=max(2, round(tile_px * _SUIT_SIZE)), ink=ink)
    return tile


def _draw_rank(draw: ImageDraw.ImageDraw, rank: str, tile_px: int,
               ink: tuple[int, int, int]) -> None:
    """The rank as the largest bold glyph that fits the rank box, centred in it."""
    left, top, right, bottom = (round(f * tile_px) for f in _RANK_BOX)
    stroke = max(1, tile_px // 24)
    glyph = fitting_font(draw, rank, right - left, bottom - top, stroke)
    draw.text(((left + right) // 2, (top + bottom) // 2), rank, fill=ink, font=glyph,
              anchor="mm", stroke_width=stroke, stroke_fill=ink)
