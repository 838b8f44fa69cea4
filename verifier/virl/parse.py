"""Tolerant reading of a navigation answer: current observation, current instruction, action.

Models write the answer object loosely: single or double quotes, trailing commas, code fences,
prose around it, 'Turn_Direction( East )'. This reader finds each field by its key, so the
object never has to be valid JSON, and reduces the action to one canonical spelling. It is
pure text processing: nothing the model wrote is executed.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

_KEY = re.compile(
    r"""(["'`]?)\b(current[ _-]*observation|observation|current[ _-]*instruction|instruction"""
    r"""|current[ _-]*action|next[ _-]*action|action)\1[ \t]*[:=][ \t]*""",
    re.IGNORECASE,
)
_ACTION_CALL = re.compile(
    r"\b(forward[ \t]*\([ \t]*\)|stop[ \t]*\([ \t]*\)|turn[ _-]?direction[ \t]*\([^()\n]{0,40}\))",
    re.IGNORECASE,
)
_ACTION = re.compile(r"(forward|stop|turn[ _-]?direction|turn)(?:[ \t]*\((.*)\)|[ \t:]+([a-z][a-z _-]*))?\.?")
_QUOTES = "\"'`"
_VALUE_ENDS = ",}\n"
_CLOSES = re.compile(r"[ \t]*(?:[,}\n]|$)")
_DIRECTIONS = {
    "n": "north", "north": "north", "ne": "northeast", "northeast": "northeast",
    "e": "east", "east": "east", "se": "southeast", "southeast": "southeast",
    "s": "south", "south": "south", "sw": "southwest", "southwest": "southwest",
    "w": "west", "west": "west", "nw": "northwest", "northwest": "northwest",
    "left": "left", "right": "right", "slightlyleft": "slightly left",
    "slightleft": "slightly left", "slightlyright": "slightly right",
    "slightright": "slightly right",
}


class ParsedAnswer(BaseModel):
    """The fields found in an answer; None where a field is missing."""

    model_config = ConfigDict(frozen=True)

    observation: str | None = None
    instruction: str | None = None
    action: str | None = None
    """The action as written (before normalisation)."""


def parse_answer(response: str) -> ParsedAnswer:
    """Find the three fields by key (the last occurrence of each wins).

    Without an action field, the last action call written anywhere ('... so stop()') is used.
    """
    text = response.replace("```json", "").replace("```", "")
    fields: dict[str, str] = {}
    position = 0
    while (match := _KEY.search(text, position)) is not None:
        key = match.group(2).lower()
        name = "observation" if "observation" in key else "instruction" if "instruction" in key \
            else "action"
        value, position = read_value(text, match.end())
        fields[name] = value.strip()
    if not fields.get("action"):
        calls = _ACTION_CALL.findall(text)
        if calls:
            fields["action"] = calls[-1]
    return ParsedAnswer(**fields)


def read_value(text: str, start: int) -> tuple[str, int]:
    """The value starting at `start` and where it ends.

    A quoted value runs to its closing quote (one followed by , } or a line end), so quotes
    inside a value need no escaping; a bare value runs to the next comma, brace or line end.
    """
    if start < len(text) and text[start] in _QUOTES:
        quote, i = text[start], start + 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == quote and _CLOSES.match(text, i + 1):
                return _unescape(text[start + 1 : i]), i + 1
            i += 1
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        return _unescape(text[start + 1 : end]).rstrip(quote + ", "), end
    end = start
    while end < len(text) and text[end] not in _VALUE_ENDS:
        end += 1
    return text[start:end], end


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": " ", "t": " "}.get(m.group(1), m.group(1)), value)


def normalise_action(action: str) -> str | None:
    """'forward()', 'stop()' or 'turn_direction(<direction>)'; None when it is no action.

    Case, spacing, quotes, underscores and hyphens do not matter ('Turn Direction("North-East")'
    is 'turn_direction(northeast)'); a direction Revisor does not know is kept as written so
    that the feedback can name it.
    """
    compact = " ".join(action.strip().strip(_QUOTES + " .").lower().split())
    match = _ACTION.fullmatch(compact)
    if match is None:
        return None
    verb = match.group(1)
    argument = (match.group(2) or match.group(3) or "").strip().strip(_QUOTES).strip()
    if verb in ("forward", "stop"):
        return None if argument else f"{verb}()"
    if not argument:
        return None
    words = " ".join(re.sub(r"[_-]+", " ", argument).split())
    return f"turn_direction({_DIRECTIONS.get(words.replace(' ', ''), words)})"
