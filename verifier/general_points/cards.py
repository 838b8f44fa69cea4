"""Card ranks and the rules that turn them into numbers.

The verifier owns these facts because scoring depends on them; the environment imports them
from here, so the dependency runs one way (envs -> verifier).
"""

from __future__ import annotations

import re

from contracts.tasks import Rule

RANKS: tuple[str, ...] = ("A", "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K")
FACE_RANKS: frozenset[str] = frozenset({"J", "Q", "K"})

_FACE_VALUES: dict[Rule, dict[str, int]] = {
    "id": {"J": 10, "Q": 10, "K": 10},
    "ood": {"J": 11, "Q": 12, "K": 13},
}

_RANK_WORDS = {
    "a": "A", "ace": "A", "1": "A",
    "j": "J", "jack": "J", "q": "Q", "queen": "Q", "k": "K", "king": "K",
    "t": "10", "ten": "10",
} | {str(n): str(n) for n in range(2, 11)}

_SUIT_NOISE = re.compile(
    r"(of\s+)?(spades?|clubs?|hearts?|diamonds?)|[\u2660-\u2667]|[\"'`\s]", re.IGNORECASE
)


def card_value(rank: str, rule: Rule) -> int:
    """The number a card counts as under `rule`; raises ValueError for an unknown rank."""
    if rank in FACE_RANKS:
        return _FACE_VALUES[rule][rank]
    if rank == "A":
        return 1
    if rank in RANKS:
        return int(rank)
    raise ValueError(f"unknown card rank {rank!r}; expected one of {', '.join(RANKS)}")


def normalise_rank(text: str) -> str | None:
    """Read a rank the way a model may write it ('Q', 'queen', 'Q of spades', '10♥').

    Returns the canonical rank symbol, or None when the text names no rank.
    """
    cleaned = _SUIT_NOISE.sub("", text[:40]).lower()
    return _RANK_WORDS.get(cleaned)
