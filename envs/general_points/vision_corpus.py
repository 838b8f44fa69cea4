"""A vision pretraining corpus for GP-VL: pictures of hands and the cards they show.

A tiny vision-language model starts from nothing: before SFT can teach GP-VL's answer, the
base has to see which cards a picture holds. Every document here is one chat turn about one
picture: a hand drawn as GP-VL draws it (its layout, `image`), the question which cards the
image shows, and the answer naming them in the task's own answer object (`{"cards": [...]}`,
the field GP-VL's recognition check reads, envs/general_points/prompt.py's format), in the
picture's reading order. Ranks are drawn uniformly (every rank, every suit of the allowed
colours), so the base learns to read cards, not to recall hands.

The visual out-of-distribution look (the red suits: `colours: red`, and `mixed`, which
holds them) is refused: GP-VL's visual-OOD split asks whether a model reads cards in colours
it never saw, and a base that saw them would answer another question.
"""

from __future__ import annotations

import json
import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.tasks import CardImage, ColourSet
from envs.general_points.cards import RED_SUITS, SUITS_BY_COLOUR, Card
from envs.general_points.render import hand_ref
from envs.general_points.sampler import HAND_SIZE
from verifier.general_points.cards import RANKS

VISION_CORPUS_VERSION = 1
"""Bump when the documents a config produces change, so cached base models are rebuilt."""
QUESTION = "Your four cards are shown in the image. Which cards are they? Answer {\"cards\": [card, ...]}."
"""The prompt of every document: GP-VL's words for the image, then the recognition question."""


class VisionCorpusConfig(BaseModel):
    """What the vision corpus holds: how many pictures, in which look and colours."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Literal["gp"] = "gp"
    """The task it pretrains for (GP-VL is the 'gp' task with `vision: true`)."""
    kind: Literal["vision"] = "vision"
    """Chooses this corpus over the text one (envs/corpora.py)."""
    documents: int = Field(20_000, ge=1)
    """Distinct pictures; training passes over them in a seeded order."""
    colours: ColourSet = "black"
    """Suits to draw from: the training look only; the visual-OOD colours are refused."""
    image: CardImage = CardImage()
    """How each hand is drawn: match the task's `image`, so the base reads the task's pictures."""
    same_rank_share: float = Field(0.3, ge=0.0, le=1.0)
    """Share of hands showing one rank four times (suits still drawn per card). A tiny model
    starts unable to tell the four places apart; on these hands every image token says the
    answer, so it learns what each rank looks like before it learns where to look."""
    seed: int = 0

    @field_validator("colours")
    @classmethod
    def _no_visual_ood(cls, colours: ColourSet) -> ColourSet:
        ood = sorted(set(SUITS_BY_COLOUR[colours]) & RED_SUITS)
        if ood:
            raise ValueError(f"'{colours}' holds {', '.join(ood)}, GP-VL's visual-OOD look; "
                             "a base that saw them would make that split in-distribution: "
                             "use 'black'")
        return colours


class VisionDocument(BaseModel):
    """One chat turn of the corpus: a picture (by reference), a question and its answer."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["recognition"] = "recognition"
    prompt: str
    answer: str
    image_refs: tuple[str, ...]
    cards: tuple[str, ...]
    """The ranks shown, in reading order (what the answer names)."""


def document(config: VisionCorpusConfig, index: int) -> VisionDocument:
    """The corpus's document `index`: the same config and index always give the same picture."""
    rng = random.Random(config.seed * 1_000_003 + index)
    hand = draw_hand(rng, config.colours, rng.random() < config.same_rank_share)
    ranks = tuple(card.rank for card in hand)
    return VisionDocument(prompt=QUESTION, answer=json.dumps({"cards": list(ranks)}),
                          image_refs=(hand_ref(hand, config.image),), cards=ranks)


def documents(config: VisionCorpusConfig) -> list[VisionDocument]:
    return [document(config, index) for index in range(config.documents)]


def draw_hand(rng: random.Random, colours: ColourSet, same_rank: bool = False
              ) -> tuple[Card, ...]:
    """Four cards, ranks and suits uniform (not only solvable hands: reading is the skill);
    `same_rank`: one rank drawn for all four."""
    suits, rank = SUITS_BY_COLOUR[colours], rng.choice(RANKS)
    return tuple(Card(rank=rank if same_rank else rng.choice(RANKS), suit=rng.choice(suits))
                 for _ in range(HAND_SIZE))
