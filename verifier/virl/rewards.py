"""The V-IRL reward table: one outcome per verification step, one reward per outcome."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class VIRLRewardTable(BaseModel):
    """Rewards per outcome, defaulting to the study's table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    correct: float = 1.0
    """The action is the one the route calls for here."""
    wrong_action: float = -1.0
    """Another action, or a direction outside the action space."""
    unparseable: float = -1.0
    """No action could be read from the answer: scored as a wrong action."""
    step_limit: float = -1.0
    """The last allowed attempt at a position failed: the walker is moved on along the route."""
    detection_failed: float = -1.5
    """Vision only: the answer's observation misses what is in sight (checked first)."""

    def values(self) -> frozenset[float]:
        """Every reward a verification step can receive."""
        return frozenset(self.model_dump().values())
