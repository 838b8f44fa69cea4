"""The GeneralPoints verifier: every row of the reward table, tolerance, and safety."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.tasks import GPRewardTable
from envs.general_points import solve
from verifier.general_points import verify

CARDS = ["J", "3", "5", "A"]  # ID numbers 10, 3, 5, 1; OOD 11, 3, 5, 1
TABLE = GPRewardTable()
REWARDS = TABLE.values()


def answer(formula: str, cards: list[str] | None = None) -> str:
    return json.dumps({"cards": cards or CARDS, "numbers": [], "formula": formula}, ensure_ascii=False)


# One case per row of the reward table, for GP-L and GP-VL.
TABLE_ROWS = [
    ("(10-5+1)*3+6-6", "wrong_numbers", -2.0),
    ("(10-5+1)*4", "wrong_numbers", -2.0),
    ("3*10-5-1", "success", 5.0),
    ("3*10-5+1", "wrong_value", -1.0),
    ("10/(5-5)+3", "wrong_numbers", -2.0),
    ("3*10-5-1^2", "illegal", -3.0),
    ("(3*10-5-1", "illegal", -3.0),
    ("3*10--", "illegal", -3.0),
]


@pytest.mark.parametrize(("formula", "outcome", "reward"), TABLE_ROWS)
@pytest.mark.parametrize("vision", [False, True])
def test_reward_table_rows(formula, outcome, reward, vision):
    verdict = verify(answer(formula), CARDS, vision=vision)
    assert (verdict.outcome, verdict.reward) == (outcome, reward)
    assert verdict.success == (outcome == "success")
    assert verdict.feedback
    if vision:
        assert verdict.recognition_ok is True


def test_division_by_zero_with_the_right_numbers_is_a_wrong_value():
    verdict = verify(answer("10/(5-5)"), ["J", "5", "5"], target=24)
    assert (verdict.outcome, verdict.reward) == ("wrong_value", -1.0)
    assert "zero" in verdict.feedback


def test_ood_rule_changes_the_face_card_values():
    assert verify(answer("3*10-5-1"), CARDS, rule="ood").outcome == "wrong_numbers"
    assert verify(answer("11*3-5-1-3+1"), CARDS, rule="ood").outcome == "wrong_numbers"
    assert verify(answer("(11-5)*(3+1)"), CARDS, rule="ood").outcome == "success"


def test_wrong_cards_in_vision_is_checked_first():
    verdict = verify(answer("3*10-5-1", ["Q", "3", "5", "A"]), CARDS, vision=True)
    assert (verdict.outcome, verdict.reward, verdict.recognition_ok) == ("wrong_cards", -1.5, False)
    illegal_and_wrong = verify(answer("^^", ["K", "K", "K", "K"]), CARDS, vision=True)
    assert illegal_and_wrong.outcome == "wrong_cards"


def test_recognition_reads_card_names_loosely():
    reported = ["jack of spades", "3♣", "5", "ace"]
    verdict = verify(answer("3*10-5-1", reported), CARDS, vision=True)
    assert verdict.recognition_ok and verdict.success


def test_text_variant_ignores_the_reported_cards():
    verdict = verify(answer("3*10-5-1", ["K", "K", "K", "K"]), CARDS)
    assert verdict.success and verdict.recognition_ok is None


@pytest.mark.parametrize("response", [
    "{'cards': ['J', '3', '5', 'A'], 'numbers': [10, 3, 5, 1], 'formula': '3*10-5-1',}",
    '```json\n{"cards": ["J","3","5","A"], "numbers": [10,3,5,1], "formula": "3*10-5-1"}\n```',
    'Sure! Here is my answer: {"formula": "3*10-5-1 = 24"} I hope it helps.',
    '{"formula": "3 × 10 − 5 − 1"}',
    "formula: 3*10-5-1",
    "3*10-5-1 = 24",
])
def test_parser_accepts_reasonable_variants(response):
    assert verify(response, CARDS).success


def test_every_solver_formula_scores_full_reward():
    hands = [["A", "2", "3", "4"], ["J", "Q", "K", "A"], ["3", "3", "8", "8"], ["10", "10", "4", "4"]]
    for hand in hands:
        numbers = [1 if r == "A" else 10 if r in "JQK" else int(r) for r in hand]
        for formula in solve(numbers):
            assert verify(answer(formula, hand), hand, vision=True).reward == TABLE.success


def test_feedback_names_invalid_reused_and_unused_numbers():
    feedback = verify(answer("7*3+3-10"), CARDS).feedback
    assert "7 is not among" in feedback and "3 is used more often" in feedback
    assert "1, 5 are not used" in feedback


def test_feedback_reports_the_wrong_value():
    assert "equals 30, not 24" in verify(answer("3*10-5+5*1"), ["J", "3", "5", "5", "A"]).feedback


def test_custom_reward_table_is_used():
    table = GPRewardTable(success=1.0, illegal=-0.5)
    assert verify(answer("3*10-5-1"), CARDS, rewards=table).reward == 1.0
    assert verify("nothing", CARDS, rewards=table).reward == -0.5


ADVERSARIAL = [
    "x" * 100_000,
    '{"formula": "' + "(" * 10_000 + "1" + ")" * 10_000 + '"}',
    '{"formula": "' + "(" * 1_000 + "1" + ")" * 1_000 + '"}',
    "{\"formula\": \"__import__('os').system('touch /tmp/revisor-pwned')\"}",
    '{"formula": "9**9**9"}',
    '{"formula": "9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9"}',
    '{"formula": "١٠+٣+٥+١"}',
    '{"formula": "NaN"}',
    '{"formula": "inf - inf"}',
    '{"formula": "1e309"}',
    '{"formula": "' + "9" * 400 + '"}',
    '{"formula": "' + "-" * 500 + '3"}',
    "\x00\x01\x02 formula: \x00",
]


@pytest.mark.parametrize("response", ADVERSARIAL)
def test_adversarial_answers_are_scored_quickly_and_execute_nothing(response, tmp_path):
    start = time.perf_counter()
    verdict = verify(response, CARDS)
    assert time.perf_counter() - start < 0.5
    assert verdict.reward in (TABLE.illegal, TABLE.wrong_numbers)
    assert not verdict.success
    import os
    assert not os.path.exists("/tmp/revisor-pwned")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300), st.booleans(), st.sampled_from(["id", "ood"]))
def test_arbitrary_text_never_raises_and_gets_a_table_reward(text, vision, rule):
    verdict = verify(text, CARDS, rule=rule, vision=vision)
    assert verdict.reward in REWARDS
    assert verdict.feedback


formula_alphabet = st.sampled_from(list("0123456789+-*/() ") + ["10", "3", "5", "1"])


@settings(max_examples=400, deadline=None)
@given(st.lists(formula_alphabet, max_size=40).map("".join))
def test_formula_like_text_never_raises(formula):
    verdict = verify(answer(formula), CARDS)
    assert verdict.reward in REWARDS


def test_unknown_card_rank_is_a_caller_error():
    with pytest.raises(ValueError, match="unknown card rank"):
        verify(answer("1"), ["Z"])
