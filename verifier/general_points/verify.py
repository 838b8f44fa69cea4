"""Score one GeneralPoints answer: one outcome from the reward table and one feedback sentence."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

from contracts.tasks import GPRewardTable, Rule
from contracts.verdict import Verdict
from verifier.general_points.arithmetic import FormulaError, parse_formula
from verifier.general_points.cards import card_value, normalise_rank
from verifier.general_points.parse import ParsedAnswer, parse_answer

MAX_RESPONSE_CHARS = 4096


class GPVerdict(Verdict):
    """A GeneralPoints verdict with the fields the verifier read from the answer."""

    cards: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    formula: str = ""
    value: str | None = None
    """The formula's exact value ('19', '17/3'), None when it has none."""


def verify(
    response: str,
    cards: Sequence[str],
    rule: Rule = "id",
    target: int = 24,
    vision: bool = False,
    rewards: GPRewardTable | None = None,
) -> GPVerdict:
    """Judge `response` for a hand of `cards` (rank symbols 'A', '2'..'10', 'J', 'Q', 'K').

    Never raises because of `response`, whatever it holds; unknown ranks in `cards` are the
    caller's mistake and raise ValueError.
    """
    values = [card_value(rank, rule) for rank in cards]
    table = rewards or GPRewardTable()
    if not isinstance(response, str) or len(response) > MAX_RESPONSE_CHARS:
        return _verdict(table, "illegal", f"The answer is longer than {MAX_RESPONSE_CHARS} characters.")
    answer = parse_answer(response)
    recognised = _recognition(answer, cards) if vision else None
    if recognised is False:
        return _verdict(table, "wrong_cards", "The cards you reported are not the cards in the image.",
                        answer, recognition_ok=False)
    verdict = _judge_formula(answer, values, target, table)
    return verdict.model_copy(update={"recognition_ok": recognised})


def _judge_formula(
    answer: ParsedAnswer, values: list[int], target: int, table: GPRewardTable
) -> GPVerdict:
    if not answer.formula:
        return _verdict(table, "illegal", 'The answer has no "formula" field.', answer)
    try:
        formula = parse_formula(answer.formula)
    except FormulaError as error:
        return _verdict(table, "illegal", f"The formula is not legal: {error}.", answer)
    problem = _number_problem(formula.numbers, values)
    if problem:
        return _verdict(table, "wrong_numbers", problem, answer)
    if formula.value is None:
        return _verdict(table, "wrong_value", "The formula divides by zero, so it has no value.", answer)
    shown = _show(formula.value)
    if formula.value != target:
        sentence = f"The formula uses every card once but equals {shown}, not {target}."
        return _verdict(table, "wrong_value", sentence, answer, value=shown)
    return _verdict(table, "success", f"Correct: the formula equals {target}.", answer, value=shown)


def _number_problem(used: Sequence[Fraction], values: Sequence[int]) -> str:
    """A sentence naming invalid, reused and unused numbers; empty when they match exactly."""
    used_count, card_count = Counter(used), Counter(Fraction(v) for v in values)
    invalid = [n for n in used_count if n not in card_count]
    reused = [n for n in used_count if n in card_count and used_count[n] > card_count[n]]
    unused = [n for n in card_count if used_count[n] < card_count[n]]
    parts = []
    if invalid:
        parts.append(f"{_join(invalid)} {'is' if len(invalid) == 1 else 'are'} not among the cards' numbers")
    if reused:
        parts.append(f"{_join(reused)} {'is' if len(reused) == 1 else 'are'} used more often than dealt")
    if unused:
        parts.append(f"{_join(unused)} {'is' if len(unused) == 1 else 'are'} not used")
    if not parts:
        return ""
    return "Each card's number must be used exactly once: " + "; ".join(parts) + "."


def _recognition(answer: ParsedAnswer, cards: Sequence[str]) -> bool:
    reported = [normalise_rank(card) for card in answer.cards or ()]
    return Counter(reported) == Counter(cards)


def _verdict(table: GPRewardTable, outcome: str, feedback: str,
             answer: ParsedAnswer | None = None, **extra: object) -> GPVerdict:
    answer = answer or ParsedAnswer()
    return GPVerdict(
        reward=getattr(table, outcome),
        success=outcome == "success",
        outcome=outcome,
        feedback=feedback,
        parsed_answer=answer.formula or "",
        cards=answer.cards or (),
        numbers=answer.numbers or (),
        formula=answer.formula or "",
        **extra,
    )


def _show(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _join(numbers: Sequence[Fraction]) -> str:
    return ", ".join(_show(n) for n in sorted(numbers))
