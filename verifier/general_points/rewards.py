"""The GeneralPoints reward table: one outcome per verification step, one reward per outcome."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class GPRewardTable(BaseModel):
    """Rewards per outcome, defaulting to the study's table.

    The study's original code summed several penalties and paid a hidden +1 for partial
    solutions; Revisor scores each answer with exactly one row of this table.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    success: float = 5.0
    """Legal formula, every card used once, equals the target."""
    wrong_value: float = -1.0
    """Legal formula, every card used once, another value (or a division by zero)."""
    step_limit: float = -1.0
    """The last allowed attempt failed: the episode ran out of verification steps."""
    wrong_numbers: float = -2.0
    """The formula uses numbers that are not the cards' numbers, or misses or repeats one."""
    illegal: float = -3.0
    """No formula, unknown symbols, unbalanced brackets, bad syntax, or an over-long answer."""
    wrong_cards: float = -1.5
    """Vision only: the reported cards are not the cards in the image (checked first)."""

    def values(self) -> frozenset[float]:
        """Every reward a verification step can receive."""
        return frozenset(self.model_dump().values())
