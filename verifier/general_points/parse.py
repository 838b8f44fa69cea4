"""Tolerant reading of the answer object a model writes.

Models write the answer object loosely: single or double quotes, trailing commas, code
fences, prose around it, "= 24" after the formula. This reader finds each field by its key and
never needs the whole object to be valid JSON. It is pure text processing: nothing the model
wrote is executed.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

_KEY = re.compile(r"""(["'`]?)\b(cards?|numbers?|formula)\1\s*[:=]\s*""", re.IGNORECASE)
_TRAILING_RESULT = re.compile(r"\s*=+\s*[-+]?[0-9]+(?:\.[0-9]+)?\s*$")
_BARE_FORMULA = re.compile(r"^[0-9+\-*/().\s]+$")
_OPERATOR_SPELLINGS = str.maketrans({"×": "*", "·": "*", "÷": "/", "−": "-", "–": "-"})
_QUOTES = "\"'`"


class ParsedAnswer(BaseModel):
    """The fields found in an answer; None where a field is missing."""

    model_config = ConfigDict(frozen=True)

    cards: tuple[str, ...] | None = None
    numbers: tuple[str, ...] | None = None
    formula: str | None = None


def parse_answer(response: str) -> ParsedAnswer:
    """Find the cards, numbers and formula fields (the last occurrence of each wins)."""
    text = response.replace("```json", "").replace("```", "")
    fields: dict[str, object] = {}
    for match in _KEY.finditer(text):
        key = match.group(2).lower().rstrip("s")
        if key == "formula":
            fields["formula"] = clean_formula(_read_scalar(text, match.end()))
        else:
            fields[f"{key}s"] = _read_list(text, match.end())
    if "formula" not in fields:
        bare = clean_formula(text.strip())
        if bare and _BARE_FORMULA.match(bare):
            fields["formula"] = bare
    return ParsedAnswer(**fields)


def clean_formula(formula: str) -> str:
    """Drop a trailing '= 24', surrounding quotes and unusual operator spellings."""
    formula = formula.strip().strip(_QUOTES).translate(_OPERATOR_SPELLINGS)
    return _TRAILING_RESULT.sub("", formula).strip()


def _read_scalar(text: str, start: int) -> str:
    if start < len(text) and text[start] in _QUOTES:
        end = text.find(text[start], start + 1)
        end = _line_end(text, start) if end < 0 else end
        return text[start + 1 : end]
    end = start
    while end < len(text) and text[end] not in ",}\n":
        end += 1
    return text[start:end]


def _read_list(text: str, start: int) -> tuple[str, ...]:
    if start < len(text) and text[start] == "[":
        end = text.find("]", start)
        body = text[start + 1 : end if end >= 0 else _line_end(text, start)]
    else:
        body = _read_scalar(text, start)
    items = (item.strip().strip(_QUOTES).strip() for item in body.split(","))
    return tuple(item for item in items if item)


def _line_end(text: str, start: int) -> int:
    end = text.find("\n", start)
    return len(text) if end < 0 else end
