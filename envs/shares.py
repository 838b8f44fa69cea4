"""Shares of document kinds in a generated corpus: checking them and drawing by them."""

from __future__ import annotations

import random
from collections.abc import Mapping


def check_shares(name: str, shares: Mapping[str, float]) -> None:
    """Raise ValueError unless `shares` (the setting `name`) are non-negative with a positive
    sum: the weights a corpus draws its documents' kinds by."""
    if not shares or any(share < 0 for share in shares.values()) or sum(shares.values()) <= 0:
        raise ValueError(f"{name} must be non-negative with a positive sum: {dict(shares)}")


def draw(rng: random.Random, shares: Mapping[str, float]) -> str:
    """One name of `shares`, drawn with its share as weight."""
    names, weights = zip(*shares.items(), strict=True)
    return rng.choices(names, weights)[0]
