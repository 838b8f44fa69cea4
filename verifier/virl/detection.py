"""The V-IRL-VL detection check: did the answer report what the image shows?

The rule, applied to the answer's "current observation" field (case, punctuation and spacing
ignored):
1. every landmark in sight is named;
2. no other landmark of the route is named (a name inside a longer named name does not count);
3. an intersection is reported when, and only when, the walker stands at one. A mention of
   "intersection", "crossing", "crossroads" or "junction" counts as reporting one unless a
   negation ("no", "not", "without", "n't", "none", "between") comes within the four words
   before it in the same clause.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_CLAUSES = re.compile(r"[.;,!?\n]+")
_WORDS = re.compile(r"[a-z0-9]+")
_CROSSING_WORDS = {"intersection", "intersections", "crossing", "crossroad", "crossroads",
                   "junction"}
_NEGATIONS = {"no", "not", "without", "t", "none", "nor", "neither", "never", "between"}


def _normal(text: str) -> str:
    return " " + " ".join(_WORDS.findall(text.lower())) + " "


def named_landmarks(observation: str, names: Sequence[str]) -> set[str]:
    """Which of `names` the observation mentions, longest names matched (and removed) first."""
    text, found = _normal(observation), set()
    for name in sorted(names, key=len, reverse=True):
        needle = _normal(name)
        if needle.strip() and needle in text:
            found.add(name)
            text = text.replace(needle, " | ")
    return found


def reports_intersection(observation: str) -> bool:
    """Whether the observation says the walker is at an intersection (see the module rule)."""
    for clause in _CLAUSES.split(observation.lower()):
        words = _WORDS.findall(clause)
        for i, word in enumerate(words):
            if word in _CROSSING_WORDS and not _NEGATIONS.intersection(words[max(0, i - 4) : i]):
                return True
    return False


def detection_problem(observation: str | None, visible: Sequence[str], others: Sequence[str],
                      at_intersection: bool) -> str:
    """One sentence saying what the observation got wrong; empty when it passes the rule."""
    if not observation:
        return "The answer has no current observation, so nothing in sight was reported."
    named = named_landmarks(observation, [*visible, *others])
    missed = [name for name in visible if name not in named]
    if missed:
        return f"The observation misses {_join(missed)}, which {_be(missed)} in sight."
    wrong = [name for name in others if name in named]
    if wrong:
        return f"The observation names {_join(wrong)}, which {_be(wrong)} not in sight here."
    claims = reports_intersection(observation)
    if at_intersection and not claims:
        return "The observation misses the intersection you are standing at."
    if claims and not at_intersection:
        return "The observation reports an intersection, but there is none here."
    return ""


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _be(names: Sequence[str]) -> str:
    return "is" if len(names) == 1 else "are"
