"""Exact GeneralPoints solver: rational arithmetic over every order, operator and bracketing.

Values reachable from each sub-multiset of numbers are memoised (with a few expressions per
value), so the solver answers in about a millisecond and counting all 1,820 four-card
multisets takes well under a second. At the top level it does not enumerate full formulas:
for each split of the hand and each value of one side it computes the value the other side
would need, and looks it up.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction
from functools import lru_cache
from itertools import combinations

_EXPRESSIONS_PER_VALUE = 3
_ATOM, _PRODUCT, _SUM = 3, 2, 1
_PRECEDENCE = {"+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT}

Expression = tuple[str, int]
"""Formula text and the precedence of its outermost operator (for minimal parentheses)."""


def solve(numbers: Sequence[int], target: int = 24, limit: int | None = None) -> list[str]:
    """Formulas that use every number exactly once and evaluate exactly to `target`.

    Returns an empty list when there is none; at most `limit` formulas when given. The order
    is deterministic.
    """
    found: list[str] = []
    for formula in _solutions(tuple(sorted(numbers)), Fraction(target)):
        if formula not in found:
            found.append(formula)
            if limit is not None and len(found) >= limit:
                break
    return found


def is_solvable(numbers: Sequence[int], target: int = 24) -> bool:
    """Whether any formula over `numbers` reaches `target`."""
    return bool(solve(numbers, target, limit=1))


def _solutions(numbers: tuple[int, ...], target: Fraction) -> Iterator[str]:
    if len(numbers) == 1:
        if numbers[0] == target:
            yield str(numbers[0])
        return
    for left_numbers, right_numbers in _splits(numbers):
        left, right = _reachable(left_numbers), _reachable(right_numbers)
        for left_value, left_expressions in left.items():
            for operator, right_value, swapped in _partners(left_value, target, right):
                for a in left_expressions:
                    for b in right[right_value]:
                        yield _combine(operator, b, a)[0] if swapped else _combine(operator, a, b)[0]


def _partners(
    value: Fraction, target: Fraction, right: dict[Fraction, list[Expression]]
) -> Iterator[tuple[str, Fraction, bool]]:
    """(operator, right value, swapped) such that `value op right` (or `right op value`) = target."""
    wanted = [("+", target - value, False), ("-", value - target, False), ("-", target + value, True)]
    if value != 0:
        wanted += [("*", target / value, False), ("/", target * value, True)]
        if target != 0:
            wanted.append(("/", value / target, False))
    else:
        if target == 0:
            wanted += [("*", v, False) for v in right] + [("/", v, False) for v in right if v]
    for operator, right_value, swapped in wanted:
        if right_value in right and not (operator == "/" and not swapped and right_value == 0):
            yield operator, right_value, swapped


@lru_cache(maxsize=16384)
def _reachable(numbers: tuple[int, ...]) -> dict[Fraction, list[Expression]]:
    """Every value reachable from a sorted multiset of numbers, with a few expressions each."""
    if len(numbers) == 1:
        return {Fraction(numbers[0]): [(str(numbers[0]), _ATOM)]}
    values: dict[Fraction, list[Expression]] = {}
    for left_numbers, right_numbers in _splits(numbers):
        left, right = _reachable(left_numbers), _reachable(right_numbers)
        for a_value, a_expressions in left.items():
            for b_value, b_expressions in right.items():
                for value, operator, swapped in _results(a_value, b_value):
                    slot = values.setdefault(value, [])
                    if len(slot) < _EXPRESSIONS_PER_VALUE:
                        a, b = a_expressions[0], b_expressions[0]
                        slot.append(_combine(operator, b, a) if swapped else _combine(operator, a, b))
    return values


def _results(a: Fraction, b: Fraction) -> Iterator[tuple[Fraction, str, bool]]:
    yield a + b, "+", False
    yield a - b, "-", False
    yield b - a, "-", True
    yield a * b, "*", False
    if b:
        yield a / b, "/", False
    if a:
        yield b / a, "/", True


def _splits(numbers: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Unordered splits into two non-empty sorted sub-multisets, each listed once."""
    seen: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
    indices = range(len(numbers))
    for size in range(1, len(numbers) // 2 + 1):
        for chosen in combinations(indices, size):
            left = tuple(numbers[i] for i in chosen)
            right = tuple(numbers[i] for i in indices if i not in chosen)
            key = min((left, right), (right, left))
            if key not in seen:
                seen.add(key)
                yield left, right


def _combine(operator: str, left: Expression, right: Expression) -> Expression:
    precedence = _PRECEDENCE[operator]
    left_text = left[0] if left[1] >= precedence else f"({left[0]})"
    tight = right[1] > precedence or (right[1] == precedence and operator in "+*")
    right_text = right[0] if tight else f"({right[0]})"
    return f"{left_text}{operator}{right_text}", precedence
