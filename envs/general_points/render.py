"""GP-VL images: the four cards side by side on a green table.

Suits are drawn as shapes rather than font glyphs, so the picture is the same on every
machine whatever fonts are installed; ranks use Pillow's bundled font.
"""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from envs.general_points.cards import Card
from envs.images import register_image_kind

CARD_SIZE = (100, 140)
GAP = 16
TABLE_GREEN = (34, 110, 60)
INK = {False: (20, 20, 20), True: (200, 20, 30)}


def hand_ref(hand: tuple[Card, ...]) -> str:
    """The image reference of a hand ('gp:Q-spades,3-clubs,...'), which trajectories store."""
    return "gp:" + ",".join(card.ref() for card in hand)


def render_hand_ref(body: str) -> Image.Image:
    """The picture named by a hand reference's body ('Q-spades,3-clubs,...')."""
    cards = tuple(Card(rank=rank, suit=suit)
                  for rank, suit in (part.rsplit("-", 1) for part in body.split(",")))
    return render_hand(cards)


def render_hand(hand: tuple[Card, ...]) -> Image.Image:
    """A deterministic RGB picture of `hand`: the same cards always give the same pixels."""
    width = len(hand) * CARD_SIZE[0] + (len(hand) + 1) * GAP
    height = CARD_SIZE[1] + 2 * GAP
    image = Image.new("RGB", (width, height), TABLE_GREEN)
    for index, card in enumerate(hand):
        left = GAP + index * (CARD_SIZE[0] + GAP)
        image.paste(_card_face(card), (left, GAP))
    return image


@lru_cache(maxsize=64)
def _card_face(card: Card) -> Image.Image:
    face = Image.new("RGB", CARD_SIZE, TABLE_GREEN)
    draw = ImageDraw.Draw(face)
    w, h = CARD_SIZE
    draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=10, fill="white", outline=(90, 90, 90))
    ink = INK[card.is_red]
    draw.text((8, 4), card.rank, fill=ink, font=_font(26))
    draw.text((w // 2, h // 2 - 8), card.rank, fill=ink, font=_font(44), anchor="mm")
    _draw_suit(draw, card.suit, centre=(w // 2, h - 30), size=18, ink=ink)
    return face


def _draw_suit(draw: ImageDraw.ImageDraw, suit: str, centre: tuple[int, int], size: int,
               ink: tuple[int, int, int]) -> None:
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


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


register_image_kind("gp", render_hand_ref)
