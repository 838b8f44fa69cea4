"""The GeneralPoints solver and sampler against the study's counted facts."""

from __future__ import annotations

from collections import Counter
from itertools import combinations_with_replacement

import pytest

from contracts.tasks import GPConfig
from envs.general_points import is_solvable, sample_hand, solve
from verifier.general_points import parse_formula

ALL_HANDS = list(combinations_with_replacement(range(1, 14), 4))


def test_exactly_1362_of_1820_multisets_make_24():
    assert len(ALL_HANDS) == 1820
    assert sum(is_solvable(hand) for hand in ALL_HANDS) == 1362


def test_every_returned_formula_uses_each_number_once_and_hits_the_target():
    for hand in ALL_HANDS:
        for formula in solve(hand):
            parsed = parse_formula(formula)
            assert parsed.value == 24, (hand, formula)
            assert Counter(parsed.numbers) == Counter(hand), (hand, formula)


@pytest.mark.parametrize("target", [1, 10, 36])
def test_other_targets_are_exact(target):
    for hand in ALL_HANDS[::37]:
        for formula in solve(hand, target):
            assert parse_formula(formula).value == target


def test_solver_needs_fractions_when_the_hand_does():
    assert solve([3, 3, 8, 8]) == ["8/(3-8/3)"]
    assert solve([1, 1, 1, 1]) == []


def test_limit_caps_the_number_of_formulas():
    assert len(solve([1, 2, 3, 4], limit=2)) == 2


@pytest.mark.parametrize("rule", ["id", "ood"])
def test_sampler_returns_only_solvable_hands_under_its_rule(rule):
    config = GPConfig(rule=rule)
    for seed in range(300):
        hand = sample_hand(config, seed)
        assert is_solvable([card.value(rule) for card in hand])


def test_ood_sampler_forces_a_face_card_and_id_does_not():
    ood_hands = [sample_hand(GPConfig(rule="ood"), seed) for seed in range(200)]
    assert all(any(card.is_face for card in hand) for hand in ood_hands)
    id_hands = [sample_hand(GPConfig(rule="id"), seed) for seed in range(200)]
    assert not all(any(card.is_face for card in hand) for hand in id_hands)


def test_sampler_is_deterministic_and_uses_the_colour_set():
    assert sample_hand(GPConfig(), 7) == sample_hand(GPConfig(), 7)
    assert len({sample_hand(GPConfig(), seed) for seed in range(20)}) > 15
    red = [card for seed in range(50) for card in sample_hand(GPConfig(colours="red"), seed)]
    assert all(card.is_red for card in red)
    black = [card for seed in range(50) for card in sample_hand(GPConfig(colours="black"), seed)]
    assert not any(card.is_red for card in black)


def test_about_three_quarters_of_uniform_hands_are_solvable():
    import random

    rng = random.Random(0)
    id_draws = [[min(rng.randint(1, 13), 10) for _ in range(4)] for _ in range(3000)]
    share = sum(is_solvable(hand) for hand in id_draws) / len(id_draws)
    assert 0.71 < share < 0.77


def test_a_sorted_hand_is_the_same_draw_in_rank_order():
    """sorted_hand changes the order the cards are shown in and nothing else: the same cards,
    the prompt in A..K order, and the numbers (hence the verifier's view) non-decreasing."""
    for rule in ("id", "ood"):
        for seed in range(100):
            drawn = sample_hand(GPConfig(rule=rule), seed)
            shown = sample_hand(GPConfig(rule=rule, sorted_hand=True), seed)
            assert sorted(drawn, key=str) == sorted(shown, key=str)
            values = [card.value(rule) for card in shown]
            assert values == sorted(values)
    assert any(sample_hand(GPConfig(), seed) != sample_hand(GPConfig(sorted_hand=True), seed)
               for seed in range(10))
