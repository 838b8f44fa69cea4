"""Verifier for GeneralPoints: parse, check and score answers without executing them."""

from verifier.general_points.arithmetic import Formula, FormulaError, parse_formula
from verifier.general_points.cards import FACE_RANKS, RANKS, card_value, normalise_rank
from verifier.general_points.parse import ParsedAnswer, parse_answer
from verifier.general_points.verify import GPVerdict, verify

__all__ = [
    "FACE_RANKS", "RANKS", "Formula", "FormulaError", "GPVerdict",
    "ParsedAnswer", "card_value", "normalise_rank", "parse_answer", "parse_formula",
    "verify",
]
