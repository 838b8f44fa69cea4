"""GP-VL images: a hand drawn in the layout its settings name, and the image references
that name it.

The 'study' layout (here) is the study's picture: the four cards side by side on a green
table. The 'tiles' layout (tiles.py) is a square grid for tiny vision towers. A reference
carries the layout, so the learner paints the picture the rollout showed: 'gp:Q-spades,...'
is the study's layout (every reference stored before layouts existed stays valid), and
'gp:tiles/64:Q-spades,...' the tiles layout with 64-pixel tiles.
"""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw

from contracts.tasks import CardImage
from envs.general_points.cards import Card
from envs.general_points.faces import INK, TABLE_GREEN, draw_suit
from envs.general_points.tiles import render_tiles
from envs.images import register_image_kind
from envs.lettering import font

CARD_SIZE = (100, 140)
GAP = 16


STUDY = CardImage(layout="study")
"""A reference without a layout ('gp:Q-spades,...') names the study's picture: every
reference stored before layouts existed stays valid."""
DEFAULT = CardImage()
"""The settings' default look (the one place it is stated is `CardImage`)."""


def hand_ref(hand: tuple[Card, ...], image: CardImage = DEFAULT) -> str:
    """The image reference of a hand drawn as `image` says, which trajectories store:
    'gp:Q-spades,3-clubs,...' (the study's layout) or 'gp:tiles/64:Q-spades,...'."""
    cards = ",".join(card.ref() for card in hand)
    if image.layout == "study":
        return f"gp:{cards}"
    return f"gp:{image.layout}/{image.tile_px}:{cards}"


def render_hand_ref(body: str) -> Image.Image:
    """The picture named by a hand reference's body ('Q-spades,...' or 'tiles/64:Q-spades,...')."""
    image = STUDY
    if ":" in body:
        look, body = body.split(":", 1)
        layout, _, tile_px = look.partition("/")
        image = CardImage(layout=layout, tile_px=tile_px)
    cards = tuple(Card(rank=rank, suit=suit)
                  for rank, suit in (part.rsplit("-", 1) for part in body.split(",")))
    return render_hand(cards, image)


def render_hand(hand: tuple[Card, ...], image: CardImage = DEFAULT) -> Image.Image:
    """A deterministic RGB picture of `hand` in `image`'s layout: the same cards and settings
    always give the same pixels."""
    if image.layout == "tiles":
        return render_tiles(hand, image.tile_px)
    return render_strip(hand)


def render_strip(hand: tuple[Card | None, ...]) -> Image.Image:
    """The study's layout: the cards side by side on a green table (None: no card there)."""
    width = len(hand) * CARD_SIZE[0] + (len(hand) + 1) * GAP
    height = CARD_SIZE[1] + 2 * GAP
    image = Image.new("RGB", (width, height), TABLE_GREEN)
    for index, card in enumerate(hand):
        if card is not None:
            image.paste(_card_face(card), strip_box(index)[:2])
    return image


def strip_box(index: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the `index`-th card in the study's layout."""
    left = GAP + index * (CARD_SIZE[0] + GAP)
    return (left, GAP, left + CARD_SIZE[0], GAP + CARD_SIZE[1])


@lru_cache(maxsize=64)
def _card_face(card: Card) -> Image.Image:
    face = Image.new("RGB", CARD_SIZE, TABLE_GREEN)
    draw = ImageDraw.Draw(face)
    w, h = CARD_SIZE
    draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=10, fill="white", outline=(90, 90, 90))
    ink = INK[card.is_red]
    draw.text((8, 4), card.rank, fill=ink, font=font(26))
    draw.text((w // 2, h // 2 - 8), card.rank, fill=ink, font=font(44), anchor="mm")
    draw_suit(draw, card.suit, centre=(w // 2, h - 30), size=18, ink=ink)
    return face


register_image_kind("gp", render_hand_ref)
