"""The renderer's own inverse: read a hand's cards back from its picture by template match,
after the picture went through what a vision tower's processor does to it.

This is the bar a layout must clear before any model can learn to see it: if the nearest
template (least squared difference over the card's tile, against every card of the colour
set drawn alone in that place and resized the same way) misses, the pixels the tower gets
do not tell the cards apart. Clearing it says nothing about whether a model learns to.
"""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image, ImageChops, ImageStat

from contracts.tasks import CardImage, ColourSet
from envs.general_points.cards import SUITS_BY_COLOUR, Card
from envs.general_points.render import render_hand, render_strip, strip_box
from envs.general_points.tiles import render_tiles, tile_box
from verifier.general_points.cards import RANKS

Resize = Callable[[Image.Image], Image.Image]
"""What a tower's processor makes of a picture, as an RGB image (the pixels the tower sees)."""
HAND_SIZE = 4


def deck(colours: ColourSet) -> tuple[Card, ...]:
    """Every card a colour set deals: 26 for 'black' or 'red', 52 for 'mixed'."""
    return tuple(Card(rank=rank, suit=suit) for suit in SUITS_BY_COLOUR[colours] for rank in RANKS)


def slot_box(image: CardImage, index: int, source: Image.Image,
             seen: Image.Image) -> tuple[int, int, int, int]:
    """The `index`-th card's box in the resized picture `seen` of `source`."""
    box = tile_box(index, image.tile_px) if image.layout == "tiles" else strip_box(index)
    sx, sy = seen.width / source.width, seen.height / source.height
    return (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))


def lone_card(card: Card, index: int, image: CardImage) -> Image.Image:
    """The picture with only `card`, in place `index`, on a bare table."""
    hand: tuple[Card | None, ...] = tuple(card if i == index else None for i in range(HAND_SIZE))
    return render_tiles(hand, image.tile_px) if image.layout == "tiles" else render_strip(hand)


class CardReader:
    """Nearest-template reading of one layout, colour set and resize; templates are built once."""

    def __init__(self, image: CardImage, colours: ColourSet, resize: Resize) -> None:
        self.image, self.resize, self.cards = image, resize, deck(colours)
        self.templates: list[list[Image.Image]] = []
        for index in range(HAND_SIZE):
            row = []
            for card in self.cards:
                source = lone_card(card, index, image)
                seen = resize(source)
                row.append(seen.crop(slot_box(image, index, source, seen)))
            self.templates.append(row)

    def distances(self, seen: Image.Image, index: int, source: Image.Image) -> list[float]:
        """Squared differences (0-255 units, summed over the tile) to every card's template."""
        tile = seen.crop(slot_box(self.image, index, source, seen))
        return [sum(ImageStat.Stat(ImageChops.difference(tile, t)).sum2)
                for t in self.templates[index]]

    def read(self, seen: Image.Image, source: Image.Image) -> tuple[Card, ...]:
        """The cards whose templates are nearest each tile of `seen` (the resized `source`)."""
        cards = []
        for index in range(HAND_SIZE):
            distances = self.distances(seen, index, source)
            cards.append(self.cards[distances.index(min(distances))])
        return tuple(cards)

    def read_hand(self, hand: tuple[Card, ...]) -> tuple[Card, ...]:
        """Render `hand`, resize it as the tower's processor does, and read it back."""
        source = render_hand(hand, self.image)
        return self.read(self.resize(source), source)
