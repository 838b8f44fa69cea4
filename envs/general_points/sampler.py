"""Seeded sampling of solvable hands."""

from __future__ import annotations

import random

from contracts.tasks import GPConfig
from envs.general_points.cards import SUITS_BY_COLOUR, Card
from envs.general_points.solver import is_solvable
from verifier.general_points.cards import RANKS

HAND_SIZE = 4
_MAX_DRAWS = 10_000


def sample_hand(config: GPConfig, seed: int) -> tuple[Card, ...]:
    """Draw ranks independently from A..K and suits from the configured colours, keeping the
    first hand that is solvable under the active rule (and has a face card when required).

    The same (config, seed) always gives the same hand (in rank order with `sorted_hand`:
    the draws stay the same, so sorting changes the order and nothing else).
    """
    rng = random.Random(seed)
    suits = SUITS_BY_COLOUR[config.colours]
    for _ in range(_MAX_DRAWS):
        hand = tuple(
            Card(rank=rng.choice(RANKS), suit=rng.choice(suits)) for _ in range(HAND_SIZE)
        )
        if config.needs_face_card and not any(card.is_face for card in hand):
            continue
        if is_solvable([card.value(config.rule) for card in hand], config.target):
            return _in_rank_order(hand) if config.sorted_hand else hand
    raise ValueError(f"no solvable hand for target {config.target} in {_MAX_DRAWS} draws")


def _in_rank_order(hand: tuple[Card, ...]) -> tuple[Card, ...]:
    return tuple(sorted(hand, key=lambda card: RANKS.index(card.rank)))
