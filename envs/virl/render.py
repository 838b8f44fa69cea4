"""V-IRL-VL street views: a 2x2 grid of the four directions around the walker.

Each view is painted from the walk itself, so the picture never contradicts the route: a
landmark appears as a yellow sign board bearing its name in the view nearest its bearing,
and at an intersection every view looks down a street across a zebra crossing, while between
intersections the left and right views face building fronts. Photos replace the painting when
a photo table covers all four views of a position.

The grid's layout is stated once, here, and the prompt quotes `layout_sentence()`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from contracts.episode import TaskInputError
from contracts.tasks import ViewStyle
from envs.lettering import font as _font
from envs.virl.cities import BENCHMARK_CITIES, TRAIN_CITY, Palette
from envs.virl.geometry import signed_turn, wrap
from envs.virl.imagery import find_photo
from envs.virl.path import Step
from envs.virl.routes import ImageRef
from envs.virl.signs import SIGN_BOARD, SIGN_TEXT, paint_signs

VIEWS = ("front", "right", "back", "left")
"""The four views, clockwise from straight ahead; view i looks along heading + 90 * i."""
GRID_CELLS = {"front": (0, 0), "right": (1, 0), "back": (1, 1), "left": (0, 1)}
"""(column, row) of each view: clockwise round the grid from the top left."""
_CELL_WORDS = {(0, 0): "top left", (1, 0): "top right", (1, 1): "bottom right", (0, 1): "bottom left"}
_GAP = 2
_PALETTES = {style.region: style.palette for style in (TRAIN_CITY, *BENCHMARK_CITIES)}


def layout_sentence() -> str:
    """How the grid is laid out, in words; the prompt shows exactly this."""
    cells = ", ".join(f"{_CELL_WORDS[GRID_CELLS[v]]}: {v}" for v in VIEWS)
    return (f"The image shows a 2x2 grid of views around you ({cells}); the front view looks "
            "where you are facing.")


def view_of(bearing: float) -> str:
    """The view whose heading is nearest a relative bearing; exact diagonals go to the front
    or back view."""
    angle = wrap(bearing)
    if angle in (45.0, 315.0):
        return "front"
    if angle in (135.0, 225.0):
        return "back"
    return VIEWS[int(wrap(angle + 45.0) // 90.0) % 4]


def _photo_tile(path: str, tile_px: int) -> Image.Image:
    try:
        with Image.open(path) as photo:
            return photo.convert("RGB").resize((tile_px, tile_px))
    except OSError as error:
        raise TaskInputError(f"{path}: cannot read the photo: {error}") from None


def render_grid(step: Step, city: str, tile_px: int = 224, ref: str = "",
                photos: Sequence[ImageRef] = (), style: ViewStyle = "street") -> Image.Image:
    """The 2x2 grid image for one position of the walk, its views painted in `style`
    ('signs': envs/virl/signs.py; photos are for the street style only)."""
    headings = {view: wrap(step.heading + 90 * i) for i, view in enumerate(VIEWS)}
    found = {view: find_photo(photos, step.geocode, h) for view, h in headings.items()}
    size = 2 * tile_px + _GAP
    grid = Image.new("RGB", (size, size), (30, 30, 30))
    palette = _PALETTES.get(city, TRAIN_CITY.palette)
    use_photos = all(found.values())
    for view in VIEWS:
        if style == "signs":
            names = [s.name for s, b in zip(step.sightings, step.bearings, strict=True)
                     if view_of(b) == view]
            tile = paint_signs(names, step.at_intersection, palette, tile_px)
        elif use_photos:
            tile = _photo_tile(found[view].path, tile_px)  # type: ignore[union-attr]
        else:
            rng = random.Random(f"{ref}:{view}")
            signs = [(s.name, b) for s, b in zip(step.sightings, step.bearings, strict=True)
                     if view_of(b) == view]
            tile = _paint_view(view, step.at_intersection, signs, palette, tile_px, rng)
        column, row = GRID_CELLS[view]
        grid.paste(tile, (column * (tile_px + _GAP), row * (tile_px + _GAP)))
    return grid


def tile_box(view: str, tile_px: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a view inside the grid image."""
    column, row = GRID_CELLS[view]
    left, top = column * (tile_px + _GAP), row * (tile_px + _GAP)
    return (left, top, left + tile_px, top + tile_px)


def _paint_view(view: str, at_intersection: bool, signs: Sequence[tuple[str, float]],
                palette: Palette,
                px: int, rng: random.Random) -> Image.Image:
    tile = Image.new("RGB", (px, px), palette.sky)
    draw = ImageDraw.Draw(tile)
    horizon = int(px * 0.45)
    draw.rectangle((0, horizon, px, px), fill=palette.ground)
    if at_intersection or view in ("front", "back"):
        _paint_street(draw, px, horizon, palette, rng, at_intersection)
    else:
        _paint_facade(draw, px, horizon, palette, rng)
    view_angle = VIEWS.index(view) * 90
    for n, (name, bearing) in enumerate(signs):
        _paint_sign(draw, name, px, signed_turn(view_angle, bearing) / 90.0, n)
    _caption(draw, view, px)
    return tile


def _paint_street(draw: ImageDraw.ImageDraw, px: int, horizon: int, palette: Palette,
                  rng: random.Random, crossing: bool) -> None:
    """A street running away from the viewer, lined with buildings; a cross street if asked."""
    centre = px // 2
    draw.polygon([(centre - 4, horizon), (centre + 4, horizon), (px, px), (0, px)], fill=palette.road)
    for mirrored in (False, True):
        x = 0
        while x < centre - 10:
            right = min(x + rng.randint(px // 10, px // 5), centre - 10)
            top = horizon - rng.randint(px // 6, px // 3)
            box = (px - right, top, px - x, horizon) if mirrored else (x, top, right, horizon)
            draw.rectangle(box, fill=rng.choice(palette.buildings))
            x = right
    for y in range(horizon + 6, px, 14):
        draw.line((centre, y, centre, min(px, y + 6)), fill=palette.marking, width=2)
    if crossing:
        band_top, band_bottom = horizon + (px - horizon) // 5, horizon + (px - horizon) // 3
        draw.rectangle((0, band_top, px, band_bottom), fill=palette.road)
        zebra_top = horizon + (px - horizon) * 2 // 3
        for x in range(px // 8, px - px // 8, max(4, px // 16)):
            draw.rectangle((x, zebra_top, x + max(2, px // 32), zebra_top + px // 14),
                           fill=palette.marking)


def _paint_facade(draw: ImageDraw.ImageDraw, px: int, horizon: int, palette: Palette,
                  rng: random.Random) -> None:
    """The buildings across the pavement, seen face on."""
    x = 0
    while x < px:
        width = rng.randint(px // 4, px // 2)
        top = rng.randint(px // 12, px // 4)
        draw.rectangle((x, top, x + width, px - px // 8), fill=rng.choice(palette.buildings))
        for wx in range(x + 6, x + width - 10, max(10, px // 12)):
            for wy in range(top + 8, horizon, max(12, px // 10)):
                draw.rectangle((wx, wy, wx + max(4, px // 28), wy + max(6, px // 20)),
                               fill=palette.windows)
        x += width
    draw.rectangle((0, px - px // 8, px, px), fill=palette.ground)


def _paint_sign(draw: ImageDraw.ImageDraw, name: str, px: int, offset: float, n: int) -> None:
    """A yellow board with the name, centred at `offset` (-0.5 left edge .. 0.5 right edge)."""
    width, height = int(px * 0.46), int(px * 0.2)
    centre = min(max(int(px * (0.5 + 0.8 * offset)), width // 2 + 2), px - width // 2 - 2)
    top = int(px * 0.12) + n * (height + 4)
    pole = max(2, px // 64)
    draw.rectangle((centre - pole, top + height, centre + pole, int(px * 0.8)), fill=SIGN_TEXT)
    draw.rectangle((centre - width // 2, top, centre + width // 2, top + height),
                   fill=SIGN_BOARD, outline=SIGN_TEXT, width=2)
    lines, font = _fit_text(draw, name, width - 8, height - 6)
    text = "\n".join(lines)
    draw.multiline_text((centre, top + height // 2), text, fill=SIGN_TEXT, font=font,
                        anchor="mm", align="center", spacing=1)


def _fit_text(draw: ImageDraw.ImageDraw, name: str, width: int,
              height: int) -> tuple[list[str], ImageFont.ImageFont | ImageFont.FreeTypeFont]:
    """The largest font (and line breaks) that fits the name inside the board."""
    for size in range(max(8, height // 2), 5, -1):
        font = _font(size)
        lines = _wrap(draw, name.split(), font, width)
        if len(lines) * (size + 1) <= height and all(draw.textlength(line, font=font) <= width
                                                     for line in lines):
            return lines, font
    return _wrap(draw, name.split(), _font(6), width), _font(6)


def _wrap(draw: ImageDraw.ImageDraw, words: list[str], font: object, width: int) -> list[str]:
    lines: list[str] = []
    for word in words:
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:  # type: ignore[arg-type]
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _caption(draw: ImageDraw.ImageDraw, view: str, px: int) -> None:
    font = _font(max(8, px // 18))
    draw.rectangle((0, px - px // 12 - 2, draw.textlength(view, font=font) + 6, px), fill=(0, 0, 0))
    draw.text((3, px - 1), view, fill=(255, 255, 255), font=font, anchor="ld")
