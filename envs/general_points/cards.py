"""Playing cards: a rank and a suit, and the colour sets the visual variants draw from."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from contracts.tasks import ColourSet, Rule
from verifier.general_points.cards import FACE_RANKS, RANKS, card_value

Suit = Literal["spades", "clubs", "hearts", "diamonds"]

SUITS_BY_COLOUR: dict[ColourSet, tuple[Suit, ...]] = {
    "black": ("spades", "clubs"),
    "red": ("hearts", "diamonds"),
    "mixed": ("spades", "clubs", "hearts", "diamonds"),
}
RED_SUITS: frozenset[str] = frozenset({"hearts", "diamonds"})


class Card(BaseModel):
    """One card of the hand."""

    model_config = ConfigDict(frozen=True)

    rank: str
    suit: Suit

    @field_validator("rank")
    @classmethod
    def _known_rank(cls, rank: str) -> str:
        if rank not in RANKS:
            raise ValueError(f"rank must be one of {', '.join(RANKS)}")
        return rank

    @property
    def is_face(self) -> bool:
        return self.rank in FACE_RANKS

    @property
    def is_red(self) -> bool:
        return self.suit in RED_SUITS

    def value(self, rule: Rule) -> int:
        return card_value(self.rank, rule)

    def ref(self) -> str:
        """A compact name such as 'Q-spades', used in image references."""
        return f"{self.rank}-{self.suit}"
