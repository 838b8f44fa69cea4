"""A vision pretraining corpus for GP-VL: pictures of hands and the cards they show.

A tiny vision-language model starts from nothing: before SFT can teach GP-VL's answer, the
base has to see which cards a picture holds. Every document here is one chat turn about one
picture, a hand drawn as GP-VL draws it (its layout, `image`), of one of two kinds:

- `recognition`: the question which cards the image shows, answered in the task's own answer
  object (`{"cards": [...]}`, the field GP-VL's recognition check reads), in the picture's
  reading order. Ranks are drawn uniformly (every rank, every suit of the allowed colours),
  so the base learns to read cards, not to recall hands.
- `solve`: GP-VL's own prompt for the picture under a face-card rule other than the study's
  two (J, Q, K drawn from 1..13, as the text corpus's task-format documents are), answered
  with the task's whole object (cards, numbers, formula). A base trained on recognition alone
  reads 48 of 48 hands when asked the recognition question and none under the task's prompt,
  whose answer it never saw begin; SFT on one rule then had to teach reading and the task
  at once and kept a fifth of it. Keeping the study's rules out of these documents makes
  the base's OOD-rule success a reading of the stated rule, not recall.

The visual out-of-distribution look (the red suits: `colours: red`, and `mixed`, which
holds them) is refused: GP-VL's visual-OOD split asks whether a model reads cards in colours
it never saw, and a base that saw them would answer another question.
"""

from __future__ import annotations

import json
import random
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from contracts.tasks import CardImage, ColourSet, GPConfig, vision_unless_said
from envs.general_points.cards import RED_SUITS, SUITS_BY_COLOUR, Card
from envs.general_points.corpus import FaceValues, draw_other_faces, solvable_hand
from envs.general_points.prompt import format_answer, render_cards_prompt
from envs.general_points.render import hand_ref
from envs.general_points.sampler import HAND_SIZE
from verifier.general_points.cards import RANKS

VISION_CORPUS_VERSION = 2
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
    solve_share: float = Field(0.5, ge=0.0, le=1.0)
    """Share of `solve` documents (the task's prompt and whole answer under a rule other than
    the study's); the rest are `recognition`."""
    prompt: Annotated[GPConfig, BeforeValidator(vision_unless_said)] = GPConfig(vision=True)
    """The wording and target of `solve` documents (their rule is drawn per document): match
    the task's, so the base reads the task's prompts."""
    same_rank_share: float = Field(0.3, ge=0.0, le=1.0)
    """Share of recognition hands showing one rank four times (suits still drawn per card). A
    tiny model starts unable to tell the four places apart; on these hands every image token
    says the answer, so it learns what each rank looks like before it learns where to look."""
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

    @field_validator("prompt")
    @classmethod
    def _prompt_shows_the_picture(cls, prompt: GPConfig) -> GPConfig:
        if not prompt.vision:
            raise ValueError("solve documents show their hand as a picture: the prompt needs "
                             "vision: true (a text prompt would name the cards)")
        return prompt


class VisionDocument(BaseModel):
    """One chat turn of the corpus: a picture (by reference), a question and its answer."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["recognition", "solve"] = "recognition"
    prompt: str
    answer: str
    image_refs: tuple[str, ...]
    cards: tuple[str, ...]
    """The ranks shown, in reading order (what the answer names)."""
    faces: FaceValues | None = None
    """The face-card values a `solve` document states."""


def document(config: VisionCorpusConfig, index: int) -> VisionDocument:
    """The corpus's document `index`: the same config and index always give the same picture."""
    rng = random.Random(config.seed * 1_000_003 + index)
    if rng.random() < config.solve_share:
        return _solve(config, rng)
    hand = draw_hand(rng, config.colours, rng.random() < config.same_rank_share)
    ranks = tuple(card.rank for card in hand)
    return VisionDocument(prompt=QUESTION, answer=json.dumps({"cards": list(ranks)}),
                          image_refs=(hand_ref(hand, config.image),), cards=ranks)


def _solve(config: VisionCorpusConfig, rng: random.Random) -> VisionDocument:
    """GP-VL's prompt for a hand solvable under a rule other than the study's (hands redrawn
    until one is), answered with the task's object and the first solution."""
    faces = draw_other_faces(rng)
    hand, numbers, formula = solvable_hand(lambda: draw_hand(rng, config.colours), faces,
                                           config.prompt.target)
    return VisionDocument(kind="solve", prompt=render_cards_prompt(config.prompt, hand, faces),
                          answer=format_answer(hand, numbers, formula),
                          image_refs=(hand_ref(hand, config.image),),
                          cards=tuple(card.rank for card in hand), faces=faces)


def documents(config: VisionCorpusConfig) -> list[VisionDocument]:
    return [document(config, index) for index in range(config.documents)]


def draw_hand(rng: random.Random, colours: ColourSet, same_rank: bool = False
              ) -> tuple[Card, ...]:
    """Four cards, ranks and suits uniform (not only solvable hands: reading is the skill);
    `same_rank`: one rank drawn for all four."""
    suits, rank = SUITS_BY_COLOUR[colours], rng.choice(RANKS)
    return tuple(Card(rank=rank if same_rank else rng.choice(RANKS), suit=rng.choice(suits))
                 for _ in range(HAND_SIZE))
