"""A pretraining corpus for GeneralPoints: card-and-arithmetic skills under any stated rule.

The study's finding rests on a base model with general skills (reading a stated face-card
rule, arithmetic with the card numbers, solving 24-style hands) that SFT on one rule can
overwrite and RL on the same rule keeps. Revisor's tiny models start from nothing, so this
corpus gives them those skills first (`revisor pretrain`). Every document is a chat turn:

- `solve`: a GeneralPoints prompt under a face-card rule and a solution, written in one of
  three forms: in words ("numbers 4, 6, 10, 11; formula 4*6*(11-10) equals 24"), as an
  object with keys other than the task's (`{"hand": [...], "numbers": [...], "solution":
  "..."}`), or as the task's own answer object (`{"cards": ..., "numbers": ...,
  "formula": ...}`);
- `numbers`: a hand and a rule, answered with the hand's numbers under that rule;
- `arithmetic`: one operation on numbers of 1..13 and its value.

The task's answer object appears only under rules other than the study's two (J, Q, K drawn
from 1..13, never (10, 10, 10) nor (11, 12, 13)). This departs from the study, whose 11B
base follows a JSON answer format it was never trained on; a 0.5M model cannot, and without
it the base's skill under a new rule lived in answer forms that did not carry over to the
task's (53% of OOD hands solved in its own form, 2-17% in the task's). Keeping the study's
rules out of the task-format documents makes the base's OOD success a reading of the stated
rule, not recall of that rule's answers.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.tasks import GPConfig
from envs.general_points.cards import Card
from envs.general_points.prompt import (
    FACE_ORDER,
    face_rule_text,
    format_answer,
    render_cards_prompt,
    rule_faces,
)
from envs.general_points.solver import solve
from envs.shares import check_shares, draw
from verifier.general_points.cards import RANKS, card_value

CORPUS_VERSION = 4
"""Bump when the documents a config produces change, so cached base models are rebuilt."""

FaceValues = tuple[int, int, int]
"""The numbers J, Q and K count as."""
STUDY_RULES: dict[str, FaceValues] = {rule: rule_faces(rule) for rule in ("id", "ood")}
DocumentKind = Literal["solve", "numbers", "arithmetic"]
AnswerForm = Literal["words", "object", "task"]
OBJECT_KEYS = ("hand", "numbers", "solution")
"""The keys of the corpus's answer object: not the task's (cards, numbers, formula). Its
numbers share the task's key: a base model that writes the numbers of a hand under a stated
rule in a structured answer, which the task's format keeps, while the hand and the formula
are written under other keys that SFT has to teach."""
_OPERATORS = "+-*/"


class CorpusConfig(BaseModel):
    """What the pretraining corpus holds: how many documents of each kind, under which rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Literal["gp"] = "gp"
    """Which task's corpus (envs/corpora.py chooses by it; 'virl' is envs/virl/corpus.py's)."""
    documents: int = Field(40_000, ge=1)
    """Distinct documents; training passes over them in a seeded order."""
    shares: dict[DocumentKind, float] = {"solve": 0.6, "numbers": 0.25, "arithmetic": 0.15}
    """Share of each kind of document."""
    forms: dict[AnswerForm, float] = {"words": 0.3, "object": 0.3, "task": 0.4}
    """Share of `solve` answers written in each form (`task`: the task's own answer object,
    only ever under rules other than the study's two)."""
    study_rule_share: float = Field(0.5, ge=0.0, le=1.0)
    """Share of rule-bearing documents under one of the study's two rules (half each); the
    rest draw J, Q and K values at random from 1..13, so reading the stated rule pays."""
    prompt: GPConfig = GPConfig(sorted_hand=True, prompt_template="compact.txt")
    """The prompt wording, target and hand order of `solve` documents (its rule is drawn
    per document); match the task's so the base model reads the task's prompts."""
    seed: int = 0

    @model_validator(mode="after")
    def _shares_positive(self) -> CorpusConfig:
        check_shares("shares", self.shares)
        check_shares("forms", self.forms)
        return self


class Document(BaseModel):
    """One chat turn of the corpus: what the user says and what the model answers."""

    model_config = ConfigDict(frozen=True)

    kind: DocumentKind
    prompt: str
    answer: str
    faces: FaceValues | None = None
    """The face-card values the document states (None: arithmetic)."""


def document(config: CorpusConfig, index: int) -> Document:
    """The corpus's document `index`: the same config and index always give the same text."""
    rng = random.Random(config.seed * 1_000_003 + index)
    kind = draw(rng, config.shares)
    if kind == "arithmetic":
        return _arithmetic(rng)
    if kind == "numbers":
        return _numbers(config, rng, _draw_faces(config, rng))
    form = draw(rng, config.forms)
    faces = draw_other_faces(rng) if form == "task" else _draw_faces(config, rng)
    return _solve(config, rng, faces, form)


def documents(config: CorpusConfig) -> list[Document]:
    return [document(config, index) for index in range(config.documents)]


def hand_numbers(hand: tuple[Card, ...], faces: FaceValues) -> list[int]:
    """The hand's numbers with J, Q and K counting as `faces` (other cards as printed, A = 1)."""
    values = dict(zip(FACE_ORDER, faces, strict=True))
    return [values.get(card.rank) or card_value(card.rank, "id") for card in hand]


def _draw_faces(config: CorpusConfig, rng: random.Random) -> FaceValues:
    if rng.random() < config.study_rule_share:
        return STUDY_RULES[rng.choice(("id", "ood"))]
    return _draw_random_faces(rng)


def _draw_random_faces(rng: random.Random) -> FaceValues:
    if rng.random() < 0.3:
        return (rng.randint(1, 13),) * 3
    return tuple(rng.randint(1, 13) for _ in range(3))


def draw_other_faces(rng: random.Random) -> FaceValues:
    """A random rule that is neither of the study's (redrawn until it is not)."""
    while (faces := _draw_random_faces(rng)) in STUDY_RULES.values():
        pass
    return faces


def solvable_hand(draw_hand: Callable[[], tuple[Card, ...]], faces: FaceValues, target: int
                  ) -> tuple[tuple[Card, ...], list[int], str]:
    """A hand from `draw_hand` solvable under `faces` (redrawn until one is), its numbers and
    its first solution."""
    while True:
        hand = draw_hand()
        numbers = hand_numbers(hand, faces)
        if formulas := solve(numbers, target, limit=1):
            return hand, numbers, formulas[0]


def _draw_hand(rng: random.Random, sorted_hand: bool) -> tuple[Card, ...]:
    hand = tuple(Card(rank=rng.choice(RANKS), suit="spades") for _ in range(4))
    return tuple(sorted(hand, key=lambda c: RANKS.index(c.rank))) if sorted_hand else hand


def _solve(config: CorpusConfig, rng: random.Random, faces: FaceValues,
           form: AnswerForm) -> Document:
    """A solvable hand under `faces` and its first solution, in `form`."""
    target = config.prompt.target
    hand, numbers, formula = solvable_hand(
        lambda: _draw_hand(rng, config.prompt.sorted_hand), faces, target)
    if form == "task":
        answer = format_answer(hand, numbers, formula)
    elif form == "object":
        answer = json.dumps(dict(zip(OBJECT_KEYS, ([c.rank for c in hand], numbers, formula),
                                     strict=True)))
    else:
        answer = f"numbers {_listed(numbers)}; formula {formula} equals {target}"
    return Document(kind="solve", prompt=render_cards_prompt(config.prompt, hand, faces),
                    answer=answer, faces=faces)


def _numbers(config: CorpusConfig, rng: random.Random, faces: FaceValues) -> Document:
    hand = _draw_hand(rng, config.prompt.sorted_hand)
    ranks = [card.rank for card in hand]
    prompt = (f"Cards {', '.join(ranks[:-1])} and {ranks[-1]}. {face_rule_text(faces)}. "
              "What are their numbers?")
    return Document(kind="numbers", prompt=prompt,
                    answer=f"numbers {_listed(hand_numbers(hand, faces))}", faces=faces)


def _arithmetic(rng: random.Random) -> Document:
    """One operation with a whole result (divisions are drawn as exact ones)."""
    operator = rng.choice(_OPERATORS)
    a, b = rng.randint(1, 13), rng.randint(1, 13)
    if operator == "/":
        a = a * b
    value = {"+": a + b, "-": a - b, "*": a * b, "/": Fraction(a, b)}[operator]
    return Document(kind="arithmetic", prompt=f"What is {a}{operator}{b}?",
                    answer=f"{a}{operator}{b} equals {int(value)}")


def _listed(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)
