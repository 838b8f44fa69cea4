"""A small, safe arithmetic language for the model's formulas.

Model output is untrusted, so formulas are never handed to Python's eval: this module
tokenises and parses them itself (numbers, + - * /, parentheses, unary signs), evaluates with
exact fractions, and bounds length and nesting so that no input can make it slow or deep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

MAX_FORMULA_CHARS = 512
MAX_NESTING = 32

_TOKEN = re.compile(r"\s*(?:([0-9]+(?:\.[0-9]+)?)|([-+*/()]))")


class FormulaError(ValueError):
    """The formula is not legal; the message is a feedback phrase for the model."""


@dataclass(frozen=True)
class Formula:
    """A parsed formula: the numbers it uses (in order) and its exact value."""

    text: str
    numbers: tuple[Fraction, ...]
    value: Fraction | None
    """None when the formula divides by zero."""


def parse_formula(text: str) -> Formula:
    """Parse and evaluate `text`; raises FormulaError naming what makes it illegal."""
    text = text.strip()
    if not text:
        raise FormulaError("the formula is empty")
    if len(text) > MAX_FORMULA_CHARS:
        raise FormulaError(f"the formula is longer than {MAX_FORMULA_CHARS} characters")
    tokens = _tokenise(text)
    _check_brackets(tokens)
    parser = _Parser(tokens)
    value = parser.expression()
    if not parser.at_end():
        raise FormulaError(f"unexpected {parser.peek()!r} after a complete formula")
    return Formula(text=text, numbers=tuple(parser.numbers), value=value)


def _tokenise(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            rest = text[position:].lstrip()
            if not rest:
                break
            raise FormulaError(
                f"the symbol {rest[0]!r} is not allowed (use numbers, + - * / and parentheses)"
            )
        tokens.append(match.group(1) or match.group(2))
        position = match.end()
    return tokens


def _check_brackets(tokens: list[str]) -> None:
    depth = 0
    for token in tokens:
        depth += {"(": 1, ")": -1}.get(token, 0)
        if depth < 0:
            raise FormulaError("the parentheses are unbalanced (a ')' closes nothing)")
        if depth > MAX_NESTING:
            raise FormulaError(f"the parentheses are nested deeper than {MAX_NESTING} levels")
    if depth:
        raise FormulaError("the parentheses are unbalanced (a '(' is never closed)")


class _Parser:
    """Recursive descent over a bracket-checked token list, evaluating as it goes.

    Recursion depth is bounded by MAX_NESTING (checked before parsing); operator chains are
    parsed in loops, so a long formula never recurses deeply.
    """

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.position = 0
        self.numbers: list[Fraction] = []

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def at_end(self) -> bool:
        return self.position >= len(self.tokens)

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise FormulaError("the formula ends too early")
        self.position += 1
        return token

    def expression(self) -> Fraction | None:
        value = self.term()
        while self.peek() in ("+", "-"):
            operator, right = self.take(), self.term()
            value = _apply(operator, value, right)
        return value

    def term(self) -> Fraction | None:
        value = self.factor()
        while self.peek() in ("*", "/"):
            operator, right = self.take(), self.factor()
            value = _apply(operator, value, right)
        return value

    def factor(self) -> Fraction | None:
        sign = 1
        while self.peek() in ("+", "-"):
            sign = -sign if self.take() == "-" else sign
        value = self.atom()
        return None if value is None else sign * value

    def atom(self) -> Fraction | None:
        token = self.take()
        if token == "(":
            value = self.expression()
            if self.take() != ")":
                raise FormulaError("a parenthesised part is not closed where it should be")
            return value
        if token in "+-*/)":
            raise FormulaError(f"{token!r} stands where a number or '(' should be")
        number = Fraction(token)
        self.numbers.append(number)
        return number


def _apply(operator: str, left: Fraction | None, right: Fraction | None) -> Fraction | None:
    if left is None or right is None:
        return None
    if operator == "+":
        return left + right
    if operator == "-":
        return left - right
    if operator == "*":
        return left * right
    return None if right == 0 else left / right
